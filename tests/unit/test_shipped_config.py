from __future__ import annotations

from pathlib import Path

from kpiloop.config import KpiloopConfig, load_config

REPO = Path(__file__).parents[2]


def test_the_shipped_otel_config_is_valid_and_states_the_defaults():
    assert load_config(REPO / "otel-config.yaml", environ={}) == KpiloopConfig()
