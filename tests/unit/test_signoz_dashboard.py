"""The SigNoz dashboard dashboards/signoz-kpiloop.json: the structure of SigNoz's dashboard JSON (v5, the
widgets/layout format of SigNoz/dashboards' ``*/v1/*.json`` templates), and — the point — every metric it
queries is one kpiloop really exports, named as SigNoz names it.

SigNoz v0.88.0 and later store OTLP metrics under their OTLP names (the ``signozclickhousemetrics``
exporter of SigNoz/signoz-otel-collector): a histogram ``h`` becomes ``h.bucket`` (with ``le``), ``h.sum``,
``h.count`` (and ``h.min``, ``h.max``); sums and gauges keep their name, with no ``_total`` added. PromQL
reaches dotted names with the quoted form ``{"agent.performance.sessions", ...}``. kpiloop's
self-metrics are not sent over OTLP; the health row reads them as the collector's prometheus receiver
names them when it scrapes /metrics: counters and gauges keep their exposition name, a histogram gets
the same ``.bucket``/``.sum``/``.count`` suffixes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kpiloop.exporters import catalogue as c
from kpiloop.feedback.transforms import KPI_SCALES

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "dashboards" / "signoz-kpiloop.json"
GRAFANA = ROOT / "dashboards" / "kpiloop.json"
GRID_COLUMNS = 12
"""SigNoz's react-grid-layout is 12 columns wide (full-width rows in the templates have w=12)."""
PANEL_TYPES = {"graph", "value", "row"}
"""Panel types used here; graph and value are the ones SigNoz's own PromQL templates use."""
HISTOGRAM_SUFFIXES = (".bucket", ".sum", ".count", ".min", ".max")
QUOTED = re.compile(r'\{\s*"(?P<name>[^"]+)"(?P<matchers>(?:\s*,\s*[A-Za-z_]\w*\s*(?:=~|!~|!=|=)\s*"[^"]*")*)\s*\}')
BARE = re.compile(r"(?<![\"\w])(?P<name>kpiloop_[a-z_]+)\b(?:\{(?P<matchers>[^}]*)\})?")
MATCHER = re.compile(r'(?P<label>[A-Za-z_]\w*)\s*(?:=~|!~|!=|=)\s*"')
BY = re.compile(r"\bby\s*\((?P<labels>[^)]*)\)")
VARIABLE = re.compile(r"\{\{\s*\.(?P<go>\w+)\s*\}\}|\$(?P<dollar>[A-Za-z_]\w*)")
UNQUOTED_DOTTED = re.compile(r"(?:^|[{,(\s])([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)+)(?:[}\s,=!~)\[]|$)")
"""SigNoz's own check for the old, unquoted dotted-name syntax (pkg/querier/promql_query.go)."""


def load() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(DASHBOARD.read_bytes())
    return data


def panels() -> list[dict[str, Any]]:
    return [w for w in load()["widgets"] if w["panelTypes"] != "row"]


def queries() -> Iterator[tuple[str, str]]:
    """(widget title, PromQL) of every query of every panel."""
    for widget in panels():
        for entry in widget["query"]["promql"]:
            yield widget["title"], entry["query"]


def signoz_names() -> dict[str, c.MetricDef]:
    """Every series name SigNoz holds for kpiloop's metrics → the catalogue entry it comes from."""
    names: dict[str, c.MetricDef] = {}
    for metric in c.ALL_METRICS:
        base = metric.otlp_name or metric.prom_name  # OTLP name; a self-metric as the prometheus receiver names it
        if metric.kind == "histogram":
            names.update({base + suffix: metric for suffix in HISTOGRAM_SUFFIXES})
        else:
            names[base] = metric
    return names


def referenced(query: str) -> list[tuple[str, list[str]]]:
    """(series name, label names matched) of every selector in ``query``."""
    found = [(m["name"], MATCHER.findall(m["matchers"] or "")) for m in QUOTED.finditer(query)]
    return found + [(m["name"], MATCHER.findall(m["matchers"] or "")) for m in BARE.finditer(query)]


# --- the SigNoz dashboard format ---


def test_top_level_fields_of_a_signoz_v5_dashboard() -> None:
    data = load()
    assert data["version"] == "v5"
    assert data["title"] and isinstance(data["title"], str)
    assert isinstance(data["tags"], list) and "kpiloop" in data["tags"]
    assert isinstance(data["layout"], list) and isinstance(data["widgets"], list)
    assert isinstance(data["variables"], dict)
    assert "v0.88" in data["description"] and "cumulative" in data["description"]


def test_every_widget_is_in_the_layout_and_every_layout_item_is_a_widget() -> None:
    data = load()
    widget_ids = [w["id"] for w in data["widgets"]]
    layout_ids = [item["i"] for item in data["layout"]]
    assert len(set(widget_ids)) == len(widget_ids), "widget ids must be unique"
    assert len(set(layout_ids)) == len(layout_ids), "layout ids must be unique"
    assert set(widget_ids) == set(layout_ids)
    query_ids = [w["query"]["id"] for w in panels()]
    assert len(set(query_ids)) == len(query_ids)


def test_layout_fits_the_12_column_grid_without_overlaps() -> None:
    cells: set[tuple[int, int]] = set()
    for item in load()["layout"]:
        assert item["w"] > 0 and item["h"] > 0 and item["x"] >= 0 and item["y"] >= 0, item
        assert item["x"] + item["w"] <= GRID_COLUMNS, item
        columns, lines = range(item["x"], item["x"] + item["w"]), range(item["y"], item["y"] + item["h"])
        mine = {(x, y) for x in columns for y in lines}
        assert not cells & mine, f"{item['i']} overlaps another widget"
        cells |= mine


def test_rows_span_the_grid_and_panel_map_lists_the_widgets_under_each_row() -> None:
    data = load()
    kinds = {w["id"]: w["panelTypes"] for w in data["widgets"]}
    ordered = sorted(data["layout"], key=lambda item: (item["y"], item["x"]))
    assert kinds[ordered[0]["i"]] == "row", "the first widget must be a row"
    expected: dict[str, list[str]] = {}
    row = ""
    for item in ordered:
        if kinds[item["i"]] == "row":
            row = item["i"]
            assert item["w"] == GRID_COLUMNS and item["h"] == 1, item
            expected[row] = []
        else:
            expected[row].append(item["i"])
    panel_map = data["panelMap"]
    assert set(panel_map) == set(expected)
    layout = {item["i"]: item for item in data["layout"]}
    for row, widgets in expected.items():
        assert panel_map[row]["collapsed"] is False
        assert sorted(w["i"] for w in panel_map[row]["widgets"]) == sorted(widgets), row
        assert all(w == layout[w["i"]] for w in panel_map[row]["widgets"]), row


def test_every_panel_is_a_non_empty_promql_query() -> None:
    for widget in load()["widgets"]:
        assert widget["panelTypes"] in PANEL_TYPES, widget["id"]
        assert widget["title"], widget["id"]
        if widget["panelTypes"] == "row":
            continue
        assert widget["description"], widget["id"]
        query = widget["query"]
        assert query["queryType"] == "promql", widget["id"]
        promql = query["promql"]
        assert promql, widget["id"]
        assert [entry["name"] for entry in promql] == list("ABCDEFGH"[: len(promql)]), widget["id"]
        for entry in promql:
            assert set(entry) == {"disabled", "legend", "name", "query"}, entry
            assert entry["disabled"] is False and entry["query"].strip() and entry["legend"], (widget["id"], entry)
            text = entry["query"]
            assert text.count("(") == text.count(")") and text.count("{") == text.count("}"), text
            assert text.count("[") == text.count("]") and text.count('"') % 2 == 0, text


def test_variables_are_query_variables_keyed_by_id_and_every_reference_is_defined() -> None:
    variables = load()["variables"]
    names = {v["name"] for v in variables.values()}
    assert names == {"agent_type", "model"}
    for key, variable in variables.items():
        assert key == variable["id"]
        assert variable["type"] == "QUERY" and variable["multiSelect"] and variable["showALLOption"]
        assert variable["queryValue"].startswith("SELECT ")
        for label in re.findall(r"JSONExtractString\(labels, '(\w+)'\)", variable["queryValue"]):
            for name in re.findall(r"'(agent\.performance\.\w+)'", variable["queryValue"]):
                assert label in signoz_names()[name].labels, (label, name)
    texts = [query for _, query in queries()] + [v["queryValue"] for v in variables.values()]
    used = set()
    for text in texts:
        for match in VARIABLE.finditer(text):
            used.add(match["go"] or match["dollar"])
    assert used == names, used
    for _, query in queries():  # multi-select values arrive joined by "|": only a regex matcher takes them
        assert not re.search(r'[^~]="\{\{', query), query


# --- every metric is one kpiloop exports, named as SigNoz names it ---


def test_every_referenced_metric_is_a_catalogue_metric_as_signoz_names_it() -> None:
    known = signoz_names()
    for title, query in queries():
        found = referenced(query)
        assert found, (title, query)
        for name, labels in found:
            assert name in known, f"{title}: {name} is not a metric kpiloop exports (as SigNoz names it)"
            allowed = set(known[name].labels) | ({"le"} if name.endswith(".bucket") else set())
            assert set(labels) <= allowed, (title, name, labels)
        allowed_by = {label for name, _ in found for label in known[name].labels} | {"le"}
        for group in BY.finditer(query):
            assert {label.strip() for label in group["labels"].split(",")} <= allowed_by, (title, query)


def test_dotted_names_are_quoted_and_otlp_metrics_use_their_otlp_name() -> None:
    for title, query in queries():
        assert not UNQUOTED_DOTTED.search(query), (title, query)
        assert "agent_performance_" not in query, (title, query)
        for name, _ in referenced(query):
            metric = signoz_names()[name]
            if metric.otlp_name is not None:
                assert name.startswith(metric.otlp_name), name
                assert QUOTED.search(query), query


def test_the_metric_families_match_the_grafana_dashboard() -> None:
    """Mirrors dashboards/kpiloop.json: the same catalogue metrics, and every OTLP metric is shown."""
    by_prom_name = {m.prom_name: m for m in c.ALL_METRICS}
    grafana = orjson.loads(GRAFANA.read_bytes())
    grafana_metrics = set()
    for panel in grafana["panels"]:
        for target in panel.get("targets", []):
            for name in re.findall(r"\b(?:agent_performance|kpiloop)_[a-z_]+", target["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                grafana_metrics.add(by_prom_name[base if base in by_prom_name else name].prom_name)
    known = signoz_names()
    signoz_metrics = {known[name].prom_name for _, query in queries() for name, _ in referenced(query)}
    assert signoz_metrics == grafana_metrics
    assert {m.prom_name for m in c.ALL_METRICS if m.otlp_name} <= signoz_metrics


@pytest.mark.parametrize("kpi", sorted(c.KPI_METRICS))
def test_each_kpi_has_its_trend_distribution_and_baseline_panels(kpi: str) -> None:
    widgets = {w["id"]: w for w in panels()}
    name = c.KPI_METRICS[kpi].otlp_name
    trend = [entry["query"] for entry in widgets[f"kpi-{kpi}-trend"]["query"]["promql"]]
    assert [q.split("(")[0] for q in trend[:3]] == ["histogram_quantile"] * 3
    assert [float(q.split("(")[1].split(",")[0]) for q in trend[:3]] == [0.5, 0.9, 0.1]
    assert all(f'"{name}.bucket"' in q for q in trend[:3])
    assert f'"{name}.sum"' in trend[3] and f'"{name}.count"' in trend[3]
    scale = KPI_SCALES[kpi].kind
    assert trend[4].startswith("exp(" if scale == "log" else "1 / (1 + exp(-"), (kpi, scale, trend[4])
    assert f'kpi="{kpi}"' in trend[4] and 'stat="center"' in trend[4]
    (distribution,) = widgets[f"kpi-{kpi}-distribution"]["query"]["promql"]
    assert f'"{name}.bucket"' in distribution["query"] and "by (le)" in distribution["query"]
    (baseline,) = widgets[f"kpi-{kpi}-baseline"]["query"]["promql"]
    assert f'kpi="{kpi}"' in baseline["query"] and f"({scale} scale)" in widgets[f"kpi-{kpi}-baseline"]["title"]
