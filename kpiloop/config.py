"""The root configuration: ``otel-config.yaml`` in the OpenTelemetry Collector's shape.

``${env:VAR}`` and ``${env:VAR:-default}`` are expanded before validation; an invalid file raises
:class:`ConfigError` naming the key path and the reason. No file means every default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kpiloop.errors import ConfigError
from kpiloop.exporters.otlp_metrics_config import OtlpExporterConfig
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.processors.session_kpi_config import SessionKpiConfig

MIB = 1024 * 1024
DEFAULT_DATA_DIR = Path("~/.claude/telemetry")
TOKEN_ENV = "KPILOOP_BEARER_TOKEN"
MIN_TOKEN_LEN = 16
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9._~+/-]+=*")
"""RFC 6750's ``b64token``: what may follow ``Bearer `` in an Authorization header."""
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        """A key left empty in YAML (``feedback:``) takes its default, as in the OTel Collector."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class TlsConfig(_Strict):
    """``tls`` of one OTLP transport (the OpenTelemetry Collector's keys): serve TLS, optionally mTLS."""

    cert_file: Path = Field(description="PEM certificate (chain) the server presents.")
    key_file: Path = Field(description="PEM private key of cert_file.")
    client_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle; set: clients must present a certificate it signed (mTLS)."
    )


class AuthConfig(_Strict):
    """``receivers.otlp.auth``: the bearer token every OTLP request must carry (both transports), as the
    Collector's ``bearertokenauth`` does; ``receivers.otlp.protocols.{grpc,http}.auth`` gives one
    transport its own. Neither key set: ``$KPILOOP_BEARER_TOKEN``, else no token."""

    bearer_token: str | None = Field(
        default=None, description="The token itself (use ${env:VAR}); empty means none.", repr=False
    )
    bearer_token_file: Path | None = Field(
        default=None, description="A file holding the token (surrounding whitespace ignored)."
    )

    @field_validator("bearer_token")
    @classmethod
    def _token_shape(cls, value: str | None) -> str | None:
        return check_token(value, "bearer_token") if value else None

    @model_validator(mode="after")
    def _one_source(self) -> AuthConfig:
        if self.bearer_token and self.bearer_token_file is not None:
            raise ValueError("give bearer_token or bearer_token_file, not both")
        return self


class ProtocolConfig(_Strict):
    """One OTLP transport."""

    endpoint: str = Field(description="host:port to listen on; loopback by default.")
    max_request_bytes: int = Field(default=16 * MIB, gt=0, description="Largest request body after decompression.")
    tls: TlsConfig | None = Field(default=None, description="Serve TLS with these files; unset: plaintext.")
    auth: AuthConfig | None = Field(
        default=None, description="This transport's own bearer token; unset: receivers.otlp.auth applies."
    )


class OtlpProtocols(_Strict):
    """The OTLP receiver's transports."""

    grpc: ProtocolConfig = Field(default_factory=lambda: ProtocolConfig(endpoint="127.0.0.1:4317"))
    http: ProtocolConfig = Field(default_factory=lambda: ProtocolConfig(endpoint="127.0.0.1:4318"))


class OtlpReceiverConfig(_Strict):
    """``receivers.otlp``."""

    protocols: OtlpProtocols = Field(default_factory=OtlpProtocols)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    max_queued_events: int = Field(
        default=100_000, gt=0, description="Events accepted but not yet processed; beyond it senders get 429."
    )


class JsonlReceiverConfig(_Strict):
    """``receivers.jsonl``: files replayed by ``kpiloop replay`` when no path is given."""

    paths: list[str] = Field(default_factory=list, description="Files or globs; empty means none.")


class ReceiversConfig(_Strict):
    """``receivers``."""

    otlp: OtlpReceiverConfig = Field(default_factory=OtlpReceiverConfig)
    jsonl: JsonlReceiverConfig = Field(default_factory=JsonlReceiverConfig)


class ProcessorsConfig(_Strict):
    """``processors``."""

    session_kpi: SessionKpiConfig = Field(default_factory=SessionKpiConfig)


class PrometheusExporterConfig(_Strict):
    """``exporters.prometheus``."""

    endpoint: str = Field(default="127.0.0.1:9464", description="host:port serving /metrics.")


class ExportersConfig(_Strict):
    """``exporters``."""

    prometheus: PrometheusExporterConfig = Field(default_factory=PrometheusExporterConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    otlp: OtlpExporterConfig = Field(default_factory=OtlpExporterConfig)


class PipelineConfig(_Strict):
    """One pipeline of ``service.pipelines``: component ids in order."""

    receivers: list[str] = Field(default_factory=list)
    processors: list[str] = Field(default_factory=list)
    exporters: list[str] = Field(default_factory=list)


def _default_pipelines() -> dict[str, PipelineConfig]:
    return {
        "sessions": PipelineConfig(
            receivers=["otlp", "jsonl"], processors=["session_kpi"], exporters=["prometheus", "feedback"]
        )
    }


class ServiceConfig(_Strict):
    """``service``."""

    pipelines: dict[str, PipelineConfig] = Field(default_factory=_default_pipelines)

    def uses_exporter(self, exporter: str) -> bool:
        """True when some pipeline names ``exporter``."""
        return any(exporter in pipeline.exporters for pipeline in self.pipelines.values())


class KpiloopConfig(_Strict):
    """The whole configuration."""

    receivers: ReceiversConfig = Field(default_factory=ReceiversConfig)
    processors: ProcessorsConfig = Field(default_factory=ProcessorsConfig)
    exporters: ExportersConfig = Field(default_factory=ExportersConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    @model_validator(mode="after")
    def _pipelines_name_configured_components(self) -> KpiloopConfig:
        problems = pipeline_problems(self)
        if problems:
            raise PydanticCustomError("pipeline", "{problems}", {"problems": "; ".join(problems)})
        return self


def pipeline_problems(config: KpiloopConfig) -> list[str]:
    """Each pipeline component that is not configured, or named twice, by its key path."""
    sections: dict[str, BaseModel] = {
        "receivers": config.receivers,
        "processors": config.processors,
        "exporters": config.exporters,
    }
    problems = []
    for name, pipeline in config.service.pipelines.items():
        for kind, section in sections.items():
            known = sorted(type(section).model_fields)
            named: list[str] = getattr(pipeline, kind)
            for component in dict.fromkeys(named):
                where = f"service.pipelines.{name}.{kind}"
                if component not in known:
                    problems.append(
                        f"{where}: {component!r} is not a configured {kind[:-1]} (configured: {', '.join(known)})"
                    )
                elif named.count(component) > 1:
                    problems.append(f"{where}: {component!r} is named more than once")
    return problems


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> KpiloopConfig:
    """Read, expand and validate a config file; ``None`` gives the embedded defaults."""
    if path is None:
        return KpiloopConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    return parse_config(text, os.environ if environ is None else environ, source=str(path))


def parse_config(text: str, environ: Mapping[str, str], source: str = "config") -> KpiloopConfig:
    """Validate YAML text after ``${env:...}`` expansion."""
    try:
        raw = yaml.safe_load(expand_env(text, environ)) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: invalid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return KpiloopConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{source}: {_describe(error)}") from None


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${env:VAR}`` (empty when unset) and ``${env:VAR:-default}``.

    >>> expand_env("dir: ${env:HOME_X:-/tmp/k}", {})
    'dir: /tmp/k'
    """
    return _ENV_REF.sub(lambda m: environ.get(m.group(1)) or (m.group(2) or ""), text)


def resolve_data_dir(flag: Path | None, config: KpiloopConfig, environ: Mapping[str, str]) -> Path:
    """``--data-dir``, else ``exporters.feedback.data_dir``, else ``$KPILOOP_HOME``, else ~/.claude/telemetry."""
    chosen = flag or config.exporters.feedback.data_dir
    if chosen is None:
        home = environ.get("KPILOOP_HOME")
        chosen = Path(home) if home else DEFAULT_DATA_DIR
    return chosen.expanduser()


def check_token(token: str, source: str) -> str:
    """``token`` when it can be a bearer token of at least 16 characters; else ValueError naming ``source``.

    >>> check_token("0123456789abcdef", "bearer_token")
    '0123456789abcdef'
    """
    if len(token) < MIN_TOKEN_LEN or not _TOKEN_SHAPE.fullmatch(token):
        raise ValueError(
            f"{source} must be at least {MIN_TOKEN_LEN} characters of A-Z a-z 0-9 - . _ ~ + / "
            "(for example the output of `openssl rand -hex 32`)"
        )
    return token


def resolve_bearer_token(auth: AuthConfig, environ: Mapping[str, str], key: str = "receivers.otlp.auth") -> str | None:
    """The token of the ``auth`` block at ``key``: ``bearer_token``, else ``bearer_token_file``'s
    content, else ``$KPILOOP_BEARER_TOKEN``, else None (no authentication). Raises ConfigError
    naming the source."""
    try:
        if auth.bearer_token:
            return auth.bearer_token
        if auth.bearer_token_file is not None:
            return check_token(_read_token(auth.bearer_token_file, key), f"{key}.bearer_token_file")
        from_env = environ.get(TOKEN_ENV, "").strip()
        return check_token(from_env, f"${TOKEN_ENV}") if from_env else None
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _read_token(path: Path, key: str) -> str:
    try:
        return path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"{key}.bearer_token_file: cannot read {path}: {reason}") from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        problems.append(f"{where}: {item['msg']}" if where else item["msg"])
    return "; ".join(problems)


def as_dict(config: KpiloopConfig) -> dict[str, Any]:
    """The configuration as plain data (for ``kpiloop config show``)."""
    return config.model_dump(mode="json")
