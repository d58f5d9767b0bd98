"""A real Prometheus (the Debian ``prometheus`` binary) scrapes a real in-process ``kpiloop serve`` fed
with sessions over OTLP/JSON, with deploy/prometheus/rules.yml loaded; every PromQL expression of
dashboards/kpiloop.json and of the rules is run through Prometheus's HTTP API and must evaluate, and
the session and KPI series must hold the values computed by hand. Also: every metric name the
dashboards and rules reference is on a fresh kpiloop's /metrics (all families registered at start)."""

from __future__ import annotations

import math
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from kpiloop.config import KpiloopConfig
from kpiloop.pipeline import Endpoints, Server, build_server
from kpiloop.types import SystemClock
from tests.otlp_requests import json_kv as kv

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "dashboards" / "kpiloop.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
S = 1_000_000_000
T0 = 1_770_000_000 * S
AGENT = "prom-agent"
MODEL = "claude-sonnet-4-5"
# (session id, input, output, cache_read, cache_creation, tool call succeeded). Sessions 1a and 1b are
# scraped before 2 and 3 close. Labelled series appear at their first increment, and rate()/increase()
# extrapolate a series towards zero when its first sample is small next to its increase: 1a (in every
# bucket of the histogram) and 1b (the bulk of the first _sum) keep each first sample large enough
# that every series over the window is extrapolated alike, so the dashboard's ratios come out exact.
SESSIONS = [
    ("prom-s1a", 1000, 1, 1000, 999, True),  # token efficiency 1 / 3000, below the first bucket (0.0005)
    ("prom-s1b", 300, 200, 400, 100, True),  # 200 / 1000 = 0.2
    ("prom-s2", 2000, 500, 2000, 500, True),  # 500 / 5000 = 0.1
    ("prom-s3", 500, 250, 1000, 250, False),  # 250 / 2000 = 0.125; error rate 1/2: CRITICAL
]
TEMPLATE = {"$agent_type": AGENT, "$model": MODEL, "$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}
NAME = re.compile(r"\b(?:agent_performance|kpiloop)_[a-z_]+")


def dashboard_expressions() -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            yield from (target["expr"] for target in panel.get("targets", []))
            yield from walk(panel.get("panels", []))

    return list(walk(orjson.loads(DASHBOARD.read_bytes())["panels"]))


def substitute(expr: str) -> str:
    for variable in sorted(TEMPLATE, key=len, reverse=True):
        expr = expr.replace(variable, TEMPLATE[variable])
    assert "$" not in expr, expr
    return expr


def rule_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return orjson.loads(response.read())


class Prometheus:
    """A real Prometheus on a free loopback port, scraping one target every second."""

    def __init__(self, workdir: Path, target: str | None, flags: tuple[str, ...] = ("--web.enable-lifecycle",)) -> None:
        """Scrape ``target`` every second with the rules loaded; with no target, no scraping and no
        rules (data then comes by remote write, with ``--web.enable-remote-write-receiver`` in ``flags``)."""
        assert shutil.which("prometheus"), "prometheus missing: .ci/run installs Debian's prometheus package"
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}
        if target is not None:
            config["rule_files"] = [str(RULES)]
            config["scrape_configs"] = [{"job_name": "kpiloop", "static_configs": [{"targets": [target]}]}]
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(workdir / "prometheus.log", "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
                *flags,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait(lambda: self._ready(), "Prometheus ready")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def wait(self, condition: Any, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}: {self.log.name}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.1)

    def query(self, expr: str, at_ms: int | None = None) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) ``expr`` evaluates to, now or at ``at_ms``;
        fails on any error or warning."""
        params: dict[str, object] = {"query": expr} if at_ms is None else {"query": expr, "time": at_ms / 1000}
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            body = get_json(url)
        except urllib.error.HTTPError as error:
            pytest.fail(f"{expr}: HTTP {error.code} {error.read().decode()}")
        assert body["status"] == "success", (expr, body)
        assert not body.get("warnings"), (expr, body["warnings"])
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        assert data["resultType"] == "vector", (expr, data)
        return list(data["result"])

    def value(self, expr: str) -> float:
        (sample,) = self.query(expr)
        return float(sample["value"][1])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.log.close()


def send_session(server: Server, index: int) -> None:
    session, inp, out, read, write, success = SESSIONS[index]
    start = T0 + index * 1000 * S

    def span(number: int, name: str, offset: int, attrs: dict[str, object]) -> dict[str, Any]:
        return {
            "traceId": f"{index + 1:032x}",
            "spanId": f"{index * 16 + number + 1:016x}",
            "name": name,
            "startTimeUnixNano": str(start + offset * S),
            "endTimeUnixNano": str(start + (offset + 10) * S),
            "attributes": [kv(k, v) for k, v in {**attrs, "session.id": session}.items()],
            "status": {"code": "STATUS_CODE_OK"},
        }

    tokens = {"tokens.input": inp, "tokens.output": out, "tokens.cache_read": read, "tokens.cache_creation": write}
    spans = [
        span(0, "hook:token-metrics-extraction", 0, {**tokens, "tokens.model": MODEL}),
        span(1, "hook:builtin-post-tool", 10, {"builtin.tool": "Read", "builtin.success": success}),
    ]
    resource = {"attributes": [kv("service.name", "my-agent"), kv("agent.type", AGENT)]}
    end = {"timeUnixNano": str(start + 30 * S), "eventName": "session.end", "attributes": [kv("session.id", session)]}
    for path, body in (
        ("/v1/traces", {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {}, "spans": spans}]}]}),
        ("/v1/logs", {"resourceLogs": [{"resource": resource, "scopeLogs": [{"scope": {}, "logRecords": [end]}]}]}),
    ):
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.http.port}{path}",
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert orjson.loads(response.read()) == {}


def wait_for_history(server: Server, lines: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    path = server.data_dir / "history" / "kpis.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(found := path.read_bytes().splitlines()) >= lines:
            return [orjson.loads(line) for line in found]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {lines} history lines after {timeout} s")


def metrics_text(server: Server) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.prometheus.port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def exposed_names(text: str) -> set[str]:
    """Every series name a scrape can hold for the families declared on ``text`` (by ``# TYPE``)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            names |= {family + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {family}
    return names


def sessions_total(prometheus: Prometheus) -> float:
    found = prometheus.query(f'sum(agent_performance_sessions_total{{agent_type="{AGENT}"}})')
    return float(found[0]["value"][1]) if found else 0.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Prometheus, list[dict[str, Any]]]]:
    """kpiloop, then Prometheus scraping it; sessions 1a and 1b are scraped before sessions 2 and 3
    close, so ``rate()`` and ``increase()`` over the last minute see sessions 2 and 3 only."""
    tmp = tmp_path_factory.mktemp("prometheus-dashboards")
    endpoints = Endpoints("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
    server = build_server(KpiloopConfig(), tmp / "data", SystemClock(), endpoints)
    server.start()
    prometheus: Prometheus | None = None
    try:
        prometheus = Prometheus(tmp / "prometheus", f"127.0.0.1:{server.prometheus.port}")
        running = prometheus
        running.wait(lambda: running.query('up{job="kpiloop"} == 1') != [], "the first scrape")
        send_session(server, 0)
        send_session(server, 1)
        wait_for_history(server, 2)
        running.wait(lambda: sessions_total(running) == 2, "sessions 1a and 1b scraped")
        time.sleep(2.0)  # a few samples of the first values
        send_session(server, 2)
        send_session(server, 3)
        history = wait_for_history(server, 4)
        running.wait(lambda: sessions_total(running) == 4, "sessions 2 and 3 scraped")
        time.sleep(1.5)  # one more scrape and rule evaluation after the last change
        yield server, running, history
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.shutdown()


def test_every_dashboard_expression_evaluates(stack):
    _, prometheus, _ = stack
    expressions = dashboard_expressions()
    assert len(expressions) > 50
    empty = [expr for expr in expressions if not prometheus.query(substitute(expr))]
    # series kpiloop only has once something happened: no baseline yet (3 sessions), no incident,
    # suggestion, refusal, export, late event; every KPI the three sessions have has data
    for expr in empty:
        assert re.search(
            r"baseline|incidents|suggestions|refused|export_failures|late_events|empty_sessions|"
            r"task_completion_rate|quality_|open_sessions|tool_overhead_ratio",
            expr,
        ), f"no data: {expr}"
    assert not [
        e for e in empty if ("token_efficiency" in e or "agent_performance_sessions" in e) and "baseline" not in e
    ]


def test_every_rule_expression_evaluates_and_the_rules_are_loaded(stack):
    _, prometheus, history = stack
    for _, expr in rule_expressions():
        prometheus.query(expr)
    rules = [r for g in get_json(f"{prometheus.url}/api/v1/rules")["data"]["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules} == {name for name, _ in rule_expressions()}
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    critical = {a["kpi"] for line in history for a in line["alerts"] if a["severity"] == "CRITICAL"}
    assert "error_rate" in critical  # session 3: 1 failed tool call of 2 calls
    expr = dict(rule_expressions())["KpiloopHardThresholdCritical"]
    assert {(s["metric"]["agent_type"], s["metric"]["kpi"]) for s in prometheus.query(expr)} == {
        (AGENT, kpi) for kpi in critical
    }
    firing = {
        (a["labels"]["alertname"], a["labels"].get("kpi"))
        for a in get_json(f"{prometheus.url}/api/v1/alerts")["data"]["alerts"]
        if a["state"] == "firing"
    }
    assert {("KpiloopHardThresholdCritical", kpi) for kpi in critical} <= firing
    assert ("KpiloopCriticalSessions", None) in firing
    assert not {name for name, _ in firing} & {"KpiloopIncidentOpened", "KpiloopRefusingInput", "KpiloopDown"}


def test_the_session_and_kpi_series_hold_the_expected_values(stack):
    _, prometheus, history = stack
    assert [line["session_id"] for line in history] == [s[0] for s in SESSIONS]
    efficiencies = [out / (inp + out + read + write) for _, inp, out, read, write, _ in SESSIONS]
    assert [line["kpis"]["token_efficiency"] for line in history] == efficiencies
    selector = f'{{agent_type="{AGENT}",model="{MODEL}"}}'
    assert prometheus.value(f"sum(agent_performance_sessions_total{selector})") == len(SESSIONS)
    levels: dict[str, int] = {}
    for line in history:
        levels[line["alert_level"]] = levels.get(line["alert_level"], 0) + 1
    by_level = prometheus.query(f"sum by (alert_level) (agent_performance_sessions_total{selector})")
    assert {s["metric"]["alert_level"]: float(s["value"][1]) for s in by_level} == levels
    mean = prometheus.value(
        f"agent_performance_token_efficiency_sum{selector} / agent_performance_token_efficiency_count{selector}"
    )
    assert math.isclose(mean, sum(efficiencies) / len(SESSIONS), rel_tol=1e-12)
    assert (
        prometheus.value(f'agent_performance_tokens_total{{type="output",agent_type="{AGENT}"}}') == 1 + 200 + 500 + 250
    )
    cost = sum(line["cost_usd"] for line in history)
    assert math.isclose(prometheus.value(f"agent_performance_cost_usd_total{selector}"), cost, rel_tol=1e-9)
    outcomes = prometheus.query(f'agent_performance_tool_calls_total{{agent_type="{AGENT}"}}')
    assert {s["metric"]["outcome"]: float(s["value"][1]) for s in outcomes} == {"success": 3.0, "failure": 1.0}
    # the dashboard's own expressions, over the window in which sessions 2 and 3 closed
    expressions = [substitute(e) for e in dashboard_expressions() if "agent_performance_token_efficiency" in e]
    (trend_mean,) = [e for e in expressions if "_sum" in e]
    assert math.isclose(prometheus.value(trend_mean), (efficiencies[2] + efficiencies[3]) / 2, rel_tol=1e-9)
    (median,) = [e for e in expressions if e.startswith("histogram_quantile(0.5,")]
    assert math.isclose(prometheus.value(median), 0.1, rel_tol=1e-9)  # bucket (0.05, 0.1] holds half
    (hit_rate,) = [e for e in map(substitute, dashboard_expressions()) if "[1h]" in e and "cache_read" in e]
    assert math.isclose(prometheus.value(hit_rate), 3000 / (2500 + 3000 + 750), rel_tol=1e-9)  # 2 and 3


def test_every_name_the_dashboards_and_rules_reference_is_on_a_fresh_kpiloops_metrics(tmp_path):
    endpoints = Endpoints("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
    server = build_server(KpiloopConfig(), tmp_path / "data", SystemClock(), endpoints)
    server.start()
    try:
        exposed = exposed_names(metrics_text(server))
    finally:
        server.shutdown()
    referenced = {name for expr in dashboard_expressions() for name in NAME.findall(expr)}
    referenced |= {name for _, expr in rule_expressions() for name in NAME.findall(expr)}
    assert len(referenced) > 30
    assert referenced <= exposed, sorted(referenced - exposed)
