"""docker-compose.yml, the Dockerfile and deploy/: what can be checked without a Docker engine or the
images — the files parse, agree with each other (service names, ports, mounted files), the collector
config has the Collector's documented structure, and the rules name only metrics kpiloop exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpiloop.config import load_config
from kpiloop.exporters import catalogue
from kpiloop.pipeline import split_endpoint

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
COLLECTOR_SECTIONS = {"receivers", "processors", "exporters", "extensions", "connectors", "service"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(load(ROOT / "docker-compose.yml"))


def test_compose_has_the_four_services(compose):
    assert set(compose["services"]) == {"kpiloop", "otel-collector", "prometheus", "grafana"}
    assert "contrib" in compose["services"]["otel-collector"]["image"]
    assert compose["services"]["kpiloop"]["build"] == "."


def test_every_file_compose_mounts_from_deploy_exists(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./deploy/"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_published_ports_are_loopback_only(compose):
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_kpiloop_container_config_is_valid_and_matches_the_other_services(compose):
    config = load_config(DEPLOY / "kpiloop" / "otel-config.yaml", environ={})
    grpc_host, grpc_port = split_endpoint(config.receivers.otlp.protocols.grpc.endpoint)
    prom_host, prom_port = split_endpoint(config.exporters.prometheus.endpoint)
    assert (grpc_host, prom_host) == ("0.0.0.0", "0.0.0.0")
    assert str(grpc_port) in compose["services"]["kpiloop"]["expose"]
    collector = load(DEPLOY / "otel-collector" / "config.yaml")
    assert collector["exporters"]["otlp/kpiloop"]["endpoint"] == f"kpiloop:{grpc_port}"
    (job,) = load(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"kpiloop:{prom_port}"]
    assert f"127.0.0.1:{prom_port}/metrics" in (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_the_collector_config_has_the_documented_structure():
    config = load(DEPLOY / "otel-collector" / "config.yaml")
    assert set(config) <= COLLECTOR_SECTIONS
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    assert set(config["service"]["pipelines"]) == {"traces", "logs", "metrics"}
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"service.pipelines.{name}.{kind}: {component} is not configured"
                assert re.fullmatch(r"[a-z0-9_]+(/[A-Za-z0-9_.-]+)?", component), component
        assert pipeline["exporters"] == ["otlp/kpiloop"]


def test_the_dockerfile_runs_as_a_non_root_user_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    (user,) = re.findall(r"^USER (\S+)", text, re.M)
    assert not user.startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert "/etc/kpiloop/otel-config.yaml" in text


def test_the_rules_name_only_metrics_kpiloop_exports():
    rules = load(DEPLOY / "prometheus" / "rules.yml")
    exported = set()
    for metric in catalogue.ALL_METRICS:
        suffixes = ("_bucket", "_sum", "_count") if metric.kind == "histogram" else ("",)
        exported |= {metric.prom_name + suffix for suffix in suffixes}
    named = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\b(?:agent_performance|kpiloop)_[a-z_]+", rule["expr"])
    }
    assert named and named <= exported, named - exported


def test_promtool_accepts_the_prometheus_config_and_rules():
    assert shutil.which("promtool"), "promtool missing: .ci/run installs Debian's prometheus package"
    for command in (["check", "config", "prometheus.yml"], ["check", "rules", "rules.yml"]):
        done = subprocess.run(["promtool", *command], cwd=DEPLOY / "prometheus", capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
