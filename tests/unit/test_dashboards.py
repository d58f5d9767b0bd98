"""dashboards/kpiloop.json: a Grafana dashboard over the Prometheus datasource that compose provisions,
loaded from the path docker-compose.yml mounts, naming only metrics in the catalogue. (Every
expression is run through a real Prometheus in tests/integration/test_prometheus_dashboards.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import yaml

from kpiloop.exporters import catalogue

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "dashboards" / "kpiloop.json"


def panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for item in items for p in (item, *panels(item.get("panels", [])))]


def test_the_dashboard_uses_the_provisioned_datasource_and_the_template_variables():
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    assert dashboard["schemaVersion"] >= 38
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    (provisioned,) = datasource["datasources"]
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["current"]["value"] == provisioned["uid"]
    for name in ("agent_type", "model"):
        assert variables[name]["definition"].startswith("label_values(agent_performance_sessions_total")
    graphs = [p for p in panels(dashboard["panels"]) if p["type"] != "row"]
    ids = [p["id"] for p in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    for panel in graphs:
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
            if "agent_performance_" in target["expr"] and "open_sessions)" not in target["expr"]:
                assert 'agent_type=~"$agent_type"' in target["expr"], target["expr"]
    titles = " ".join(p["title"] for p in graphs)
    for kpi in catalogue.KPI_METRICS:
        assert f"{kpi}: median" in titles and f"{kpi}: distribution" in titles


def test_the_dashboard_names_only_metrics_kpiloop_exports():
    exported = set()
    for metric in catalogue.ALL_METRICS:
        suffixes = ("_bucket", "_sum", "_count") if metric.kind == "histogram" else ("",)
        exported |= {metric.prom_name + suffix for suffix in suffixes}
    text = DASHBOARD.read_text(encoding="utf-8")
    named = set(re.findall(r"\b(?:agent_performance|kpiloop)_[a-z_]+", text))
    assert named and named <= exported, named - exported


def test_grafana_loads_the_dashboard_from_the_path_compose_mounts():
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/kpiloop.yml").read_text())
    (dashboards,) = provider["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./dashboards/kpiloop.json"] == f"{dashboards['options']['path']}/kpiloop.json"
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
