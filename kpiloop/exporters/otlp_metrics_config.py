"""Configuration of the OTLP metrics exporter (``exporters.otlp`` in otel-config.yaml), resolved
against the standard ``OTEL_EXPORTER_OTLP_*`` environment variables.

Per setting, the config file wins, then the metrics-specific variable
(``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``), then the generic one (``OTEL_EXPORTER_OTLP_ENDPOINT``),
then the default. Headers merge name by name in the same order. Times in variables are
milliseconds, as the OpenTelemetry specification says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from opentelemetry.util.re import parse_env_headers
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kpiloop.durations import Duration
from kpiloop.errors import ConfigError

OtlpProtocol = Literal["grpc", "http/protobuf"]
Temporality = Literal["cumulative", "delta", "lowmemory"]
DEFAULT_TIMEOUT = 10.0
DEFAULT_EXPORT_INTERVAL = 60.0
METRICS_PATH = "/v1/metrics"
KEY = "exporters.otlp"
_HEADER_NAME = re.compile(r"[0-9a-z_.-]+")


class OtlpExporterConfig(BaseModel):
    """``exporters.otlp``: where and how the ``agent.performance.*`` metrics are sent over OTLP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="Export when a pipeline names `otlp`; false turns it off without editing the pipelines.",
    )
    endpoint: str | None = Field(
        default=None,
        description="grpc: host:port or http(s)://host:port; http/protobuf: base URL (/v1/metrics is appended). "
        "Empty: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, then OTEL_EXPORTER_OTLP_ENDPOINT; one is required.",
    )
    protocol: OtlpProtocol | None = Field(
        default=None, description="Empty: OTEL_EXPORTER_OTLP_METRICS_PROTOCOL / _PROTOCOL, else grpc."
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every export (e.g. signoz-ingestion-key), over OTEL_EXPORTER_OTLP_HEADERS; "
        "names are lower-cased; empty: none of its own.",
    )
    insecure: bool | None = Field(
        default=None,
        description="Plaintext instead of TLS for an endpoint written without http:// or https:// (those decide "
        "by themselves). Empty: OTEL_EXPORTER_OTLP_INSECURE, else TLS.",
    )
    timeout: Duration | None = Field(
        default=None,
        gt=0,
        description="Seconds per export, retries included; empty: OTEL_EXPORTER_OTLP_TIMEOUT, else 10s.",
    )
    export_interval: Duration | None = Field(
        default=None, gt=0, description="Seconds between exports; empty: OTEL_METRIC_EXPORT_INTERVAL, else 60s."
    )
    include_session_id: bool = Field(
        default=False,
        description="Add a session_id attribute to per-session data points: one series per session, so only for "
        "backends built for it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    @model_validator(mode="after")
    def _scheme_agrees_with_insecure(self) -> OtlpExporterConfig:
        scheme = self.endpoint.partition("://")[0] if self.endpoint and "://" in self.endpoint else None
        if self.insecure is not None and scheme in ("http", "https") and self.insecure != (scheme == "http"):
            raise ValueError(f"insecure: {str(self.insecure).lower()} contradicts the {scheme}:// endpoint")
        return self


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    """The exporter's settings after the environment is applied: every value final.

    ``endpoint`` is a URL: ``scheme://host:port`` for grpc, the full ``.../v1/metrics`` URL for
    http/protobuf; ``insecure`` is True exactly when its scheme is ``http``.
    """

    endpoint: str
    protocol: OtlpProtocol
    headers: Mapping[str, str]
    insecure: bool
    timeout: float
    export_interval: float
    include_session_id: bool = False
    temporality: Temporality = "cumulative"


def resolve_otlp_settings(config: OtlpExporterConfig, environ: Mapping[str, str]) -> OtlpSettings:
    """Apply ``OTEL_EXPORTER_OTLP_*`` under ``config``; raise ConfigError naming the key or variable.

    >>> resolve_otlp_settings(OtlpExporterConfig(endpoint="collector:4317", insecure=True), {}).endpoint
    'http://collector:4317'
    """
    env = _Env(environ)
    protocol = config.protocol or _protocol(env)
    insecure = config.insecure if config.insecure is not None else env.flag("INSECURE")
    endpoint = _endpoint(config.endpoint, env, protocol, insecure)
    return OtlpSettings(
        endpoint=endpoint,
        protocol=protocol,
        headers=_headers(config.headers, env),
        insecure=endpoint.startswith("http://"),
        timeout=config.timeout or _seconds(env.get("TIMEOUT")) or DEFAULT_TIMEOUT,
        export_interval=config.export_interval
        or _seconds(env.raw("OTEL_METRIC_EXPORT_INTERVAL"))
        or DEFAULT_EXPORT_INTERVAL,
        include_session_id=config.include_session_id,
        temporality=_temporality(env),
    )


class _Env:
    """The ``OTEL_EXPORTER_OTLP_METRICS_<X>`` variable, else ``OTEL_EXPORTER_OTLP_<X>``, checked."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, suffix: str) -> tuple[str, str] | None:
        """(variable name, value) of the first one set and not empty."""
        for name in (f"OTEL_EXPORTER_OTLP_METRICS_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
            value = self._environ.get(name, "").strip()
            if value:
                return name, value
        return None

    def flag(self, suffix: str) -> bool | None:
        """A true/false variable (any case)."""
        found = self.get(suffix)
        if found is None:
            return None
        name, value = found
        if value.lower() not in ("true", "false"):
            raise ConfigError(f"{name}: {value!r} is neither true nor false")
        return value.lower() == "true"

    def raw(self, name: str) -> tuple[str, str] | None:
        """One variable, if set and not empty."""
        value = self._environ.get(name, "").strip()
        return (name, value) if value else None


def _seconds(found: tuple[str, str] | None) -> float | None:
    """A variable holding a positive number of milliseconds, in seconds."""
    if found is None:
        return None
    name, value = found
    try:
        millis = float(value)
    except ValueError:
        millis = -1.0
    if not 0 < millis < float("inf"):
        raise ConfigError(f"{name}: {value!r} is not a positive number of milliseconds")
    return millis / 1000


def _protocol(env: _Env) -> OtlpProtocol:
    found = env.get("PROTOCOL")
    if found is None:
        return "grpc"
    name, value = found
    if value not in ("grpc", "http/protobuf"):
        raise ConfigError(f"{name}: {value!r} cannot export metrics; set {KEY}.protocol to grpc or http/protobuf")
    return "grpc" if value == "grpc" else "http/protobuf"


def _endpoint(configured: str | None, env: _Env, protocol: OtlpProtocol, insecure: bool | None) -> str:
    if configured:
        source, raw, full_url = f"{KEY}.endpoint", configured.strip(), False
    elif found := env.get("ENDPOINT"):
        (source, raw), full_url = found, found[0] == "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
    else:
        raise ConfigError(
            f"{KEY}.endpoint: not set, and neither OTEL_EXPORTER_OTLP_METRICS_ENDPOINT nor "
            "OTEL_EXPORTER_OTLP_ENDPOINT is (kpiloop itself listens on localhost:4317, the OTLP default)"
        )
    parsed = _parse_url(raw if "://" in raw else f"{'http' if insecure else 'https'}://{raw}", source)
    if protocol == "grpc":
        if parsed.port is None:
            raise ConfigError(f"{source}: {raw!r} names no port (grpc needs host:port)")
        return f"{parsed.scheme}://{parsed.netloc}"
    path = parsed.path.rstrip("/")
    if not full_url and not path.endswith(METRICS_PATH):
        path += METRICS_PATH
    return parsed._replace(path=path, fragment="").geturl()


def _parse_url(url: str, source: str) -> SplitResult:
    parsed = urlsplit(url)
    try:
        port_ok = parsed.port is None or parsed.port > 0
    except ValueError:
        port_ok = False
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not port_ok:
        raise ConfigError(f"{source}: {url!r} must be host:port or an http:// or https:// URL")
    return parsed


def _headers(configured: Mapping[str, str], env: _Env) -> dict[str, str]:
    merged: dict[str, tuple[str, str]] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS"):
        found = env.raw(name)
        if found is not None:
            merged |= {key: (name, value) for key, value in parse_env_headers(found[1], liberal=True).items()}
    merged |= {key.strip().lower(): (f"{KEY}.headers.{key}", value) for key, value in configured.items()}
    for key, (source, value) in merged.items():
        if not _HEADER_NAME.fullmatch(key):
            raise ConfigError(f"{source}: header name {key!r} may hold only a-z, 0-9, '-', '_' and '.'")
        if not value.strip():
            raise ConfigError(f"{source}: the value of header {key!r} is empty (is its ${{env:...}} variable set?)")
    return {key: value.strip() for key, (_, value) in merged.items()}


def _temporality(env: _Env) -> Temporality:
    found = env.raw("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")
    if found is None:
        return "cumulative"
    name, value = found
    lowered = value.lower()
    if lowered == "delta":
        return "delta"
    if lowered == "lowmemory":
        return "lowmemory"
    if lowered != "cumulative":
        raise ConfigError(f"{name}: {value!r} is not cumulative, delta or lowmemory")
    return "cumulative"
