"""The commented OTLP exporter examples in the shipped otel-config.yaml stay valid: each one,
uncommented and named in the pipeline, loads and resolves to the endpoint it promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpiloop.config import parse_config
from kpiloop.exporters.otlp_metrics_config import OtlpSettings, resolve_otlp_settings

SHIPPED = Path(__file__).parents[2] / "otel-config.yaml"
PIPELINE = "exporters: [prometheus, feedback]"


def commented_otlp_blocks(text: str) -> list[list[str]]:
    """Each ``  # otlp:`` block with its indented ``  #   ...`` lines."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line == "  # otlp:":
            blocks.append([line])
        elif blocks and line.startswith("  #   ") and blocks[-1][-1].startswith("  #"):
            blocks[-1].append(line)
        elif blocks and blocks[-1][-1] != "":
            blocks[-1].append("")  # the block ended
    return [[line for line in block if line] for block in blocks]


def with_block_enabled(text: str, block: list[str]) -> str:
    for line in block:
        text = text.replace(line + "\n", "  " + line[4:] + "\n", 1)
    assert PIPELINE in text
    return text.replace(PIPELINE, "exporters: [prometheus, feedback, otlp]", 1)


def resolved(index: int) -> OtlpSettings:
    text = SHIPPED.read_text(encoding="utf-8").replace("{region}", "eu")
    blocks = commented_otlp_blocks(text)
    assert len(blocks) == 2
    config = parse_config(with_block_enabled(text, blocks[index]), {"SIGNOZ_INGESTION_KEY": "key-1"})
    assert config.service.uses_exporter("otlp")
    return resolve_otlp_settings(config.exporters.otlp, {})


def test_the_signoz_cloud_example():
    settings = resolved(0)
    assert settings.endpoint == "https://ingest.eu.signoz.cloud:443"
    assert (settings.protocol, settings.insecure) == ("grpc", False)
    assert settings.headers == {"signoz-ingestion-key": "key-1"}
    assert (settings.timeout, settings.export_interval, settings.include_session_id) == (10.0, 60.0, False)


def test_the_self_hosted_signoz_example():
    settings = resolved(1)
    assert settings.endpoint == "http://signoz-otel-collector:4317"
    assert (settings.protocol, settings.insecure, dict(settings.headers)) == ("grpc", True, {})


@pytest.mark.parametrize("index", [0, 1])
def test_the_examples_only_change_the_otlp_exporter(index):
    text = SHIPPED.read_text(encoding="utf-8").replace("{region}", "eu")
    enabled = parse_config(with_block_enabled(text, commented_otlp_blocks(text)[index]), {"SIGNOZ_INGESTION_KEY": "k"})
    shipped = parse_config(text, {})
    assert enabled.receivers == shipped.receivers
    assert enabled.processors == shipped.processors
    assert (enabled.exporters.prometheus, enabled.exporters.feedback) == (
        shipped.exporters.prometheus,
        shipped.exporters.feedback,
    )
