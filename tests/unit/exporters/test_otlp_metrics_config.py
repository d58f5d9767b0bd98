"""``exporters.otlp`` resolved against the OTEL_EXPORTER_OTLP_* variables: the config file wins,
then the metrics-specific variable, then the generic one, then the default."""

from __future__ import annotations

import pytest

from kpiloop.errors import ConfigError
from kpiloop.exporters.otlp_metrics_config import OtlpExporterConfig, OtlpSettings, resolve_otlp_settings

SIGNOZ = "https://ingest.eu.signoz.cloud:443"


def resolve(environ: dict[str, str] | None = None, **config: object) -> OtlpSettings:
    return resolve_otlp_settings(OtlpExporterConfig.model_validate(config), environ or {})


def error(environ: dict[str, str] | None = None, **config: object) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve(environ, **config)
    return str(caught.value)


def test_signoz_cloud_over_grpc():
    settings = resolve(endpoint=SIGNOZ, headers={"signoz-ingestion-key": "abc123"})
    assert settings == OtlpSettings(
        endpoint=SIGNOZ,
        protocol="grpc",
        headers={"signoz-ingestion-key": "abc123"},
        insecure=False,
        timeout=10.0,
        export_interval=60.0,
        include_session_id=False,
        temporality="cumulative",
    )


def test_a_self_hosted_collector_over_plaintext_grpc():
    settings = resolve(endpoint="signoz-otel-collector:4317", insecure=True, timeout="5s", export_interval="15s")
    assert (settings.endpoint, settings.insecure) == ("http://signoz-otel-collector:4317", True)
    assert (settings.timeout, settings.export_interval) == (5.0, 15.0)


def test_an_endpoint_without_scheme_is_tls_unless_insecure():
    assert resolve(endpoint="collector:4317").endpoint == "https://collector:4317"
    assert resolve({"OTEL_EXPORTER_OTLP_INSECURE": "TRUE"}, endpoint="collector:4317").insecure is True


@pytest.mark.parametrize(
    ("endpoint", "insecure", "url"),
    [
        ("https://ingest.us.signoz.cloud:443", None, "https://ingest.us.signoz.cloud:443/v1/metrics"),
        ("https://ingest.us.signoz.cloud:443/", None, "https://ingest.us.signoz.cloud:443/v1/metrics"),
        ("http://collector:4318/v1/metrics", None, "http://collector:4318/v1/metrics"),
        ("http://gateway/otlp", None, "http://gateway/otlp/v1/metrics"),
        ("collector:4318", True, "http://collector:4318/v1/metrics"),
        ("collector:4318", None, "https://collector:4318/v1/metrics"),
    ],
)
def test_http_protobuf_appends_the_metrics_path_to_a_base_url(endpoint, insecure, url):
    config = {"endpoint": endpoint, "protocol": "http/protobuf"} | ({"insecure": insecure} if insecure else {})
    settings = resolve(**config)
    assert settings.endpoint == url
    assert settings.insecure is url.startswith("http://")


def test_the_environment_fills_what_the_config_leaves_empty():
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://gateway:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "signoz-ingestion-key=from-env,x-team=kpi%20loop",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_METRIC_EXPORT_INTERVAL": "30000",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta",
    }
    settings = resolve(environ)
    assert settings == OtlpSettings(
        endpoint="http://gateway:4318/v1/metrics",
        protocol="http/protobuf",
        headers={"signoz-ingestion-key": "from-env", "x-team": "kpi loop"},
        insecure=True,
        timeout=2.5,
        export_interval=30.0,
        temporality="delta",
    )


def test_the_metrics_variables_win_over_the_generic_ones():
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4317",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:4318/custom/path",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=generic,b=generic",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "b=metrics",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "3000",
    }
    settings = resolve(environ)
    assert settings.endpoint == "http://metrics:4318/custom/path"  # the signal's own URL is used as it is
    assert settings.protocol == "http/protobuf"
    assert settings.headers == {"a": "generic", "b": "metrics"}
    assert settings.timeout == 3.0


def test_the_config_wins_over_the_environment():
    environ = {
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://env:4318/v1/metrics",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "signoz-ingestion-key=env,x-env=1",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    }
    settings = resolve(
        environ,
        endpoint="ingest.in.signoz.cloud:443",
        protocol="grpc",
        headers={"Signoz-Ingestion-Key": "config"},
        insecure=False,
        timeout=7,
        export_interval="2m",
    )
    assert settings.endpoint == "https://ingest.in.signoz.cloud:443"
    assert settings.protocol == "grpc"
    assert settings.headers == {"signoz-ingestion-key": "config", "x-env": "1"}  # merged by name, lower-cased
    assert (settings.insecure, settings.timeout, settings.export_interval) == (False, 7.0, 120.0)


def test_include_session_id_is_carried():
    assert resolve(endpoint=SIGNOZ, include_session_id=True).include_session_id is True


@pytest.mark.parametrize(
    ("environ", "config", "named"),
    [
        ({}, {}, "exporters.otlp.endpoint: not set"),
        ({}, {"endpoint": "collector"}, "exporters.otlp.endpoint: 'collector' names no port"),
        ({}, {"endpoint": "ftp://collector:21"}, "exporters.otlp.endpoint: 'ftp://collector:21' must be host:port"),
        ({}, {"endpoint": "http://collector:99999"}, "exporters.otlp.endpoint"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://:4317"}, {}, "OTEL_EXPORTER_OTLP_ENDPOINT: 'http://:4317'"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, {"endpoint": SIGNOZ},
         "OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' cannot export metrics"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, {"endpoint": SIGNOZ}, "OTEL_EXPORTER_OTLP_TIMEOUT: 'soon'"),
        ({"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "0"}, {"endpoint": SIGNOZ}, "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "-5"}, {"endpoint": SIGNOZ}, "OTEL_METRIC_EXPORT_INTERVAL: '-5'"),
        ({"OTEL_EXPORTER_OTLP_INSECURE": "yes"}, {"endpoint": SIGNOZ}, "OTEL_EXPORTER_OTLP_INSECURE: 'yes'"),
        ({"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes"}, {"endpoint": SIGNOZ},
         "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"),
        ({}, {"endpoint": SIGNOZ, "headers": {"signoz-ingestion-key": ""}},
         "exporters.otlp.headers.signoz-ingestion-key: the value of header 'signoz-ingestion-key' is empty"),
        ({}, {"endpoint": SIGNOZ, "headers": {"bad header": "x"}}, "exporters.otlp.headers.bad header: header name"),
    ],
)  # fmt: skip
def test_problems_name_the_key_or_the_variable(environ, config, named):
    assert named in error(environ, **config)


@pytest.mark.parametrize(("endpoint", "insecure"), [("https://c:443", True), ("http://c:4317", False)])
def test_a_scheme_that_contradicts_insecure_is_refused_at_validation(endpoint, insecure):
    with pytest.raises(ValueError, match=f"insecure: {str(insecure).lower()} contradicts the"):
        OtlpExporterConfig(endpoint=endpoint, insecure=insecure)
