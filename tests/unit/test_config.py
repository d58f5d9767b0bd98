from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kpiloop.config import (
    DEFAULT_DATA_DIR,
    AuthConfig,
    ExportersConfig,
    JsonlReceiverConfig,
    KpiloopConfig,
    OtlpProtocols,
    OtlpReceiverConfig,
    PipelineConfig,
    ProcessorsConfig,
    PrometheusExporterConfig,
    ProtocolConfig,
    ReceiversConfig,
    ServiceConfig,
    TlsConfig,
    as_dict,
    expand_env,
    load_config,
    parse_config,
    resolve_data_dir,
)
from kpiloop.errors import ConfigError
from kpiloop.exporters.otlp_metrics_config import OtlpExporterConfig
from kpiloop.feedback.config import FeedbackConfig, HardThreshold, RuleCondition, RuleOverride
from kpiloop.processors.session_kpi_config import DEFAULT_PRICES, ModelPrice, SessionKpiConfig, ToolSets


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    return next(parent for parent in here.parents if (parent / "pyproject.toml").is_file())


CONFIG_YAML = _repo_root() / "tests" / "testdata" / "config.yaml"


def expected_testdata_config(data_dir: str = "/srv/kpiloop") -> KpiloopConfig:
    return KpiloopConfig(
        receivers=ReceiversConfig(
            otlp=OtlpReceiverConfig(
                protocols=OtlpProtocols(
                    grpc=ProtocolConfig(
                        endpoint="127.0.0.1:14317",
                        max_request_bytes=4 * 1024 * 1024,
                        tls=TlsConfig(
                            cert_file=Path("/etc/kpiloop/tls/server.pem"),
                            key_file=Path("/etc/kpiloop/tls/server.key"),
                            client_ca_file=Path("/etc/kpiloop/tls/clients-ca.pem"),
                        ),
                        auth=AuthConfig(bearer_token_file=Path("/etc/kpiloop/grpc-token")),
                    ),
                    http=ProtocolConfig(
                        endpoint="0.0.0.0:14318",
                        max_request_bytes=1024 * 1024,
                        tls=TlsConfig(
                            cert_file=Path("/etc/kpiloop/tls/server.pem"), key_file=Path("/etc/kpiloop/tls/server.key")
                        ),
                        auth=AuthConfig(bearer_token_file=Path("/etc/kpiloop/http-token")),
                    ),
                ),
                auth=AuthConfig(bearer_token_file=Path("/etc/kpiloop/token")),
                max_queued_events=5000,
            ),
            jsonl=JsonlReceiverConfig(
                paths=["~/.claude/telemetry/traces-*.jsonl", "/var/log/agents/evaluations-2026-02-12.jsonl"]
            ),
        ),
        processors=ProcessorsConfig(
            session_kpi=SessionKpiConfig(
                idle_timeout=2700.0,
                end_signal_idle_timeout=43200.0,
                default_agent_type="code-reviewer",
                tool_sets=ToolSets(
                    management=frozenset({"TaskCreate", "TodoWrite"}), productive=frozenset({"Read", "Edit", "Bash"})
                ),
                prices={
                    "claude-sonnet-4": ModelPrice(
                        input=3, output=15, cache_read=0.3, cache_write_5m=3.75, cache_write_1h=6
                    ),
                    "my-local-model": ModelPrice(input=0, output=0, cache_read=0, cache_write_5m=0, cache_write_1h=0),
                },
                max_open_sessions=500,
                max_closed_sessions=0,
                dedup_window=128,
                reorder_window=8,
            )
        ),
        exporters=ExportersConfig(
            prometheus=PrometheusExporterConfig(endpoint="127.0.0.1:19464"),
            feedback=FeedbackConfig(
                data_dir=Path(data_dir),
                agents_dir=Path("/srv/agents"),
                rules=[
                    RuleOverride(id="batch-task-operations", enabled=False),
                    RuleOverride(
                        id="short-sessions",
                        condition=RuleCondition(metric="active_time_ratio", operator=">", threshold=0.95),
                        priority="LOW",
                        category="workflow",
                        title="Keep sessions short",
                        description="Sessions this busy rarely pause.",
                        implementation="Split long tasks.",
                        impact="fewer idle minutes",
                        target_kpi="active_time_ratio",
                        direction="decrease",
                        magnitude="10%",
                        evidence="active time ratio {active_time_ratio:.2f}",
                    ),
                ],
                hard_thresholds={
                    "code-reviewer": [
                        HardThreshold(
                            kpi="error_rate", operator=">", threshold=0.2, severity="CRITICAL", priority="HIGH"
                        )
                    ]
                },
                alert_bands="plan",
                baseline_window=50,
                bootstrap_sessions=8,
                min_scale={"error_rate": 3.0},
                cusum_k=0.25,
                cusum_h=6.0,
                effectiveness="plan",
                max_tracked_sessions=40,
                block_on_critical=True,
                max_active=2,
                claude_md="user",
            ),
            otlp=OtlpExporterConfig(
                enabled=False,
                endpoint="https://ingest.eu.signoz.cloud:443",
                protocol="http/protobuf",
                headers={"signoz-ingestion-key": "test-key"},
                insecure=False,
                timeout=5.0,
                export_interval=15.0,
                include_session_id=True,
            ),
        ),
        service=ServiceConfig(
            pipelines={
                "sessions": PipelineConfig(
                    receivers=["otlp"], processors=["session_kpi"], exporters=["prometheus", "feedback", "otlp"]
                ),
                "replay": PipelineConfig(receivers=["jsonl"], processors=["session_kpi"], exporters=["feedback"]),
            }
        ),
    )


def config_error(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ or {})
    return str(caught.value)


# Defaults


def test_no_file_and_an_empty_file_mean_every_default() -> None:
    assert load_config(None) == KpiloopConfig()
    assert parse_config("", {}) == KpiloopConfig()
    assert parse_config("# nothing but a comment\n", {}) == KpiloopConfig()
    assert parse_config("processors:\n", {}) == parse_config("processors: {}\n", {})


def test_default_values() -> None:
    config = KpiloopConfig()
    assert config.receivers.otlp.protocols.grpc.endpoint == "127.0.0.1:4317"
    assert config.receivers.otlp.protocols.http.endpoint == "127.0.0.1:4318"
    assert config.receivers.otlp.protocols.http.max_request_bytes == 16 * 1024 * 1024
    assert config.receivers.jsonl.paths == []
    assert config.processors.session_kpi.idle_timeout == 1800.0
    assert config.processors.session_kpi.end_signal_idle_timeout == 86400.0
    assert config.processors.session_kpi.default_agent_type == "default"
    assert config.processors.session_kpi.prices == DEFAULT_PRICES
    assert config.exporters.prometheus.endpoint == "127.0.0.1:9464"
    assert config.exporters.feedback.data_dir is None
    assert config.exporters.otlp == OtlpExporterConfig(enabled=True, endpoint=None, headers={}, timeout=None)
    assert not config.service.uses_exporter("otlp")
    assert config.service.pipelines == {
        "sessions": PipelineConfig(
            receivers=["otlp", "jsonl"], processors=["session_kpi"], exporters=["prometheus", "feedback"]
        )
    }


def test_partial_sections_keep_the_other_defaults() -> None:
    config = parse_config("receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 0.0.0.0:4318\n", {})
    assert config.receivers.otlp.protocols.http == ProtocolConfig(endpoint="0.0.0.0:4318")
    assert config.receivers.otlp.protocols.grpc == KpiloopConfig().receivers.otlp.protocols.grpc
    assert config.processors == KpiloopConfig().processors


def test_config_is_frozen() -> None:
    config = KpiloopConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.exporters.prometheus.endpoint = "0.0.0.0:1"


# The full file in tests/testdata


def test_testdata_config_loads_to_the_expected_model() -> None:
    assert load_config(CONFIG_YAML, environ={}) == expected_testdata_config()


def test_testdata_config_takes_the_data_dir_from_the_environment() -> None:
    config = load_config(CONFIG_YAML, environ={"KPILOOP_TEST_DATA_DIR": "/data/kpi"})
    assert config == expected_testdata_config("/data/kpi")


def test_testdata_config_sets_every_key() -> None:
    def leaves(data: object, prefix: str = "") -> set[str]:
        if isinstance(data, dict) and data:
            return {leaf for key, value in data.items() for leaf in leaves(value, f"{prefix}.{key}".lstrip("."))}
        return {prefix}

    defaults = leaves(as_dict(KpiloopConfig()))
    written = leaves(yaml.safe_load(CONFIG_YAML.read_text(encoding="utf-8")))
    missing = {
        key
        for key in defaults
        if not key.startswith(("processors.session_kpi.prices.", "service.pipelines."))
        and not any(leaf == key or leaf.startswith(key + ".") for leaf in written)
    }
    assert missing == set()


@pytest.mark.parametrize("config", [KpiloopConfig(), expected_testdata_config()], ids=["defaults", "testdata"])
def test_as_dict_round_trips_through_yaml(config: KpiloopConfig) -> None:
    assert parse_config(yaml.safe_dump(as_dict(config)), {}) == config


# ${env:...} expansion


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${env:A}", {"A": "x"}, "x"),
        ("${env:A}", {}, ""),
        ("${env:A:-fallback}", {}, "fallback"),
        ("${env:A:-fallback}", {"A": "set"}, "set"),
        ("${env:A:-fallback}", {"A": ""}, "fallback"),
        ("${env:A:-}", {}, ""),
        ("${env:A:-/tmp/k:v}", {}, "/tmp/k:v"),
        ("${env:HOST}:${env:PORT:-4317}", {"HOST": "h"}, "h:4317"),
        ("${env:_Under_9}", {"_Under_9": "ok"}, "ok"),
        ("${env:9BAD}", {"9BAD": "x"}, "${env:9BAD}"),
        ("${A}", {"A": "x"}, "${A}"),
        ("$HOME", {"HOME": "/h"}, "$HOME"),
    ],
)
def test_expand_env(text: str, environ: dict[str, str], expected: str) -> None:
    assert expand_env(text, environ) == expected


def test_env_expansion_happens_before_validation() -> None:
    text = (
        "processors:\n"
        "  session_kpi:\n"
        "    idle_timeout: ${env:IDLE:-45m}\n"
        "    max_open_sessions: ${env:MAX_OPEN}\n"
        "exporters:\n"
        "  prometheus:\n"
        "    endpoint: ${env:PROM_HOST:-127.0.0.1}:${env:PROM_PORT}\n"
    )
    config = parse_config(text, {"MAX_OPEN": "20", "PROM_PORT": "9999"})
    assert config.processors.session_kpi.idle_timeout == 2700.0
    assert config.processors.session_kpi.max_open_sessions == 20
    assert config.exporters.prometheus.endpoint == "127.0.0.1:9999"
    assert (
        parse_config(text, {"IDLE": "90", "MAX_OPEN": "1", "PROM_PORT": "1"}).processors.session_kpi.idle_timeout == 90
    )


def test_load_config_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "otel-config.yaml"
    path.write_text("exporters:\n  prometheus:\n    endpoint: ${env:KPILOOP_TEST_PROM}\n", encoding="utf-8")
    monkeypatch.setenv("KPILOOP_TEST_PROM", "127.0.0.1:7777")
    assert load_config(path).exporters.prometheus.endpoint == "127.0.0.1:7777"
    assert load_config(path, environ={"KPILOOP_TEST_PROM": "h:1"}).exporters.prometheus.endpoint == "h:1"


# Errors name the key path


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("processors:\n  session_kpi:\n    idle_timeout: soon\n", "processors.session_kpi.idle_timeout"),
        ("processors:\n  session_kpi:\n    idle_timeout: 0\n", "processors.session_kpi.idle_timeout"),
        ("processors:\n  session_kpi:\n    idle_timeout: -5\n", "processors.session_kpi.idle_timeout"),
        ("processors:\n  session_kpi:\n    idle_timeout: .nan\n", "processors.session_kpi.idle_timeout"),
        ("processors:\n  session_kpi:\n    end_signal_idle_timeout: 1x\n",
         "processors.session_kpi.end_signal_idle_timeout"),
        ("processors:\n  session_kpi:\n    max_open_sessions: 0\n", "processors.session_kpi.max_open_sessions"),
        ("processors:\n  session_kpi:\n    max_closed_sessions: -1\n", "processors.session_kpi.max_closed_sessions"),
        ("processors:\n  session_kpi:\n    dedup_window: many\n", "processors.session_kpi.dedup_window"),
        ("processors:\n  session_kpi:\n    tool_sets:\n      management: Read\n",
         "processors.session_kpi.tool_sets.management"),
        ("processors:\n  session_kpi:\n    prices:\n      m:\n        input: -1\n        output: 1\n"
         "        cache_read: 1\n        cache_write_5m: 1\n        cache_write_1h: 1\n",
         "processors.session_kpi.prices.m.input"),
        ("processors:\n  session_kpi:\n    prices:\n      m:\n        input: 1\n",
         "processors.session_kpi.prices.m.output"),
        ("receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: {a: 1}\n",
         "receivers.otlp.protocols.grpc.endpoint"),
        ("receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: h:1\n        max_request_bytes: 0\n",
         "receivers.otlp.protocols.http.max_request_bytes"),
        ("receivers:\n  jsonl:\n    paths: 5\n", "receivers.jsonl.paths"),
        ("exporters:\n  prometheus:\n    endpoint: [1]\n", "exporters.prometheus.endpoint"),
        ("service:\n  pipelines:\n    p:\n      receivers: otlp\n", "service.pipelines.p.receivers"),
        ("exporters:\n  otlp:\n    timeout: 0\n", "exporters.otlp.timeout"),
        ("exporters:\n  otlp:\n    export_interval: often\n", "exporters.otlp.export_interval"),
        ("exporters:\n  otlp:\n    protocol: http/json\n", "exporters.otlp.protocol"),
        ("exporters:\n  otlp:\n    headers: [signoz-ingestion-key]\n", "exporters.otlp.headers"),
        ("exporters:\n  otlp:\n    endpoint: https://c:443\n    insecure: true\n", "exporters.otlp"),
        ("processors: 3\n", "processors"),
    ],
)  # fmt: skip
def test_invalid_values_name_the_key_path(text: str, key_path: str) -> None:
    message = config_error(text)
    assert message.startswith("config: ")
    assert f"{key_path}:" in message


# service.pipelines name configured components only


@pytest.mark.parametrize(
    ("pipeline", "problem"),
    [
        ("exporters: [prometheus, otlphttp]",
         "service.pipelines.metrics.exporters: 'otlphttp' is not a configured exporter "
         "(configured: feedback, otlp, prometheus)"),
        ("exporters: [otlp/signoz]", "service.pipelines.metrics.exporters: 'otlp/signoz' is not a configured exporter"),
        ("receivers: [kafka]",
         "service.pipelines.metrics.receivers: 'kafka' is not a configured receiver (configured: jsonl, otlp)"),
        ("processors: [batch]",
         "service.pipelines.metrics.processors: 'batch' is not a configured processor (configured: session_kpi)"),
        ("exporters: [otlp, prometheus, otlp]", "service.pipelines.metrics.exporters: 'otlp' is named more than once"),
    ],
)  # fmt: skip
def test_pipelines_name_only_configured_components(pipeline: str, problem: str) -> None:
    message = config_error(f"service:\n  pipelines:\n    metrics:\n      {pipeline}\n")
    assert message.startswith(f"config: {problem}")


def test_every_pipeline_problem_is_named() -> None:
    text = "service:\n  pipelines:\n    a:\n      exporters: [signoz]\n    b:\n      receivers: [filelog]\n"
    message = config_error(text)
    assert "service.pipelines.a.exporters: 'signoz'" in message
    assert "service.pipelines.b.receivers: 'filelog'" in message


def test_a_pipeline_naming_otlp_turns_the_exporter_on() -> None:
    text = (
        "exporters:\n  otlp:\n    endpoint: https://ingest.us.signoz.cloud:443\n"
        "    headers:\n      signoz-ingestion-key: ${env:SIGNOZ_INGESTION_KEY}\n"
        "service:\n  pipelines:\n    sessions:\n      receivers: [otlp]\n      processors: [session_kpi]\n"
        "      exporters: [prometheus, feedback, otlp]\n"
    )
    config = parse_config(text, {"SIGNOZ_INGESTION_KEY": "k-123"})
    assert config.service.uses_exporter("otlp")
    assert config.exporters.otlp.headers == {"signoz-ingestion-key": "k-123"}
    assert not config.service.uses_exporter("signoz")


def test_invalid_duration_message_gives_the_reason() -> None:
    message = config_error("processors:\n  session_kpi:\n    idle_timeout: soon\n")
    assert "processors.session_kpi.idle_timeout" in message
    assert "invalid duration 'soon'" in message


def test_several_problems_are_all_named() -> None:
    message = config_error("processors:\n  session_kpi:\n    idle_timeout: 0\n    dedup_window: 0\n")
    assert "processors.session_kpi.idle_timeout" in message
    assert "processors.session_kpi.dedup_window" in message


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("processors:\n  session_kpi:\n    idle_timout: 30m\n", "processors.session_kpi.idle_timout"),
        ("receivers:\n  kafka: {}\n", "receivers.kafka"),
        ("receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: h:1\n        keepalive: {}\n",
         "receivers.otlp.protocols.grpc.keepalive"),
        ("exporters:\n  prometheus:\n    namespace: kpi\n", "exporters.prometheus.namespace"),
        ("exporters:\n  otlp:\n    compression: gzip\n", "exporters.otlp.compression"),
        ("service:\n  telemetry: {}\n", "service.telemetry"),
        ("extensions: {}\n", "extensions"),
    ],
)  # fmt: skip
def test_unknown_keys_are_rejected_by_path(text: str, key_path: str) -> None:
    message = config_error(text)
    assert f"{key_path}: Extra inputs are not permitted" in message


def test_invalid_yaml_and_non_mapping_documents() -> None:
    assert "invalid YAML" in config_error("processors: [unclosed\n")
    assert "top level must be a mapping" in config_error("- a\n- b\n")
    assert "top level must be a mapping" in config_error("just a string\n")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="cannot read config .*missing.yaml"):
        load_config(missing, environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("processors:\n  session_kpi:\n    idle_timeout: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(bad, environ={})
    assert str(caught.value).startswith(f"{bad}: processors.session_kpi.idle_timeout:")


def test_default_agent_type_is_sanitized() -> None:
    text = "processors:\n  session_kpi:\n    default_agent_type: ../My Agent\n"
    assert parse_config(text, {}).processors.session_kpi.default_agent_type == "my-agent"


# Data directory


def with_data_dir(path: str | None) -> KpiloopConfig:
    return KpiloopConfig(
        exporters=ExportersConfig(feedback=FeedbackConfig(data_dir=None if path is None else Path(path)))
    )


def test_data_dir_flag_wins_over_everything() -> None:
    environ = {"KPILOOP_HOME": "/env/home"}
    assert resolve_data_dir(Path("/flag"), with_data_dir("/config"), environ) == Path("/flag")


def test_data_dir_config_wins_over_kpiloop_home() -> None:
    assert resolve_data_dir(None, with_data_dir("/config"), {"KPILOOP_HOME": "/env/home"}) == Path("/config")


def test_data_dir_kpiloop_home_wins_over_the_default() -> None:
    assert resolve_data_dir(None, with_data_dir(None), {"KPILOOP_HOME": "/env/home"}) == Path("/env/home")


@pytest.mark.parametrize("environ", [{}, {"KPILOOP_HOME": ""}])
def test_data_dir_default_is_under_the_home_directory(environ: dict[str, str], isolated_home: Path) -> None:
    resolved = resolve_data_dir(None, KpiloopConfig(), environ)
    assert resolved == DEFAULT_DATA_DIR.expanduser() == isolated_home / ".claude" / "telemetry"


def test_data_dir_expands_a_tilde(isolated_home: Path) -> None:
    assert resolve_data_dir(Path("~/kpi"), KpiloopConfig(), {}) == isolated_home / "kpi"
    assert resolve_data_dir(None, with_data_dir("~/cfg"), {}) == isolated_home / "cfg"
    assert resolve_data_dir(None, KpiloopConfig(), {"KPILOOP_HOME": "~/env"}) == isolated_home / "env"


def test_data_dir_from_the_testdata_file() -> None:
    config = load_config(CONFIG_YAML, environ={"KPILOOP_HOME": "/ignored"})
    assert resolve_data_dir(None, config, {"KPILOOP_HOME": "/ignored"}) == Path("/srv/kpiloop")
