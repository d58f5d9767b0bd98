"""Installing kpiloop into Claude Code's settings and taking it out again."""

from __future__ import annotations

import json

import pytest

from kpiloop.install import InstallOptions, install, manifest_path, merge, settings_path, uninstall

COMMAND = "/opt/kpiloop/bin/kpiloop"
EXISTING: dict = {
    "model": "opus",
    "hooks": {
        "SessionEnd": [{"hooks": [{"type": "command", "command": "notify-send bye"}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "audit.sh"}]}],
    },
    "env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_RESOURCE_ATTRIBUTES": "team=infra"},
}


def options(**changes) -> InstallOptions:
    return InstallOptions(**{"scope": "project", "command": COMMAND, "agent_type": "coder", **changes})


def test_merge_adds_hooks_and_env_without_clobbering():
    merged, manifest, warnings = merge(EXISTING, options(tool_events=True))
    assert merged["model"] == "opus"
    assert merged["hooks"]["SessionEnd"] == [
        {"hooks": [{"type": "command", "command": "notify-send bye"}]},
        {"hooks": [{"type": "command", "command": f"{COMMAND} hook session-end"}]},
    ]
    assert merged["hooks"]["PreToolUse"] == EXISTING["hooks"]["PreToolUse"]
    assert merged["hooks"]["PostToolUse"] == [
        {"matcher": "*", "hooks": [{"type": "command", "command": f"{COMMAND} hook event"}]}
    ]
    assert merged["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4317"  # the user's value is kept
    assert merged["env"]["OTEL_RESOURCE_ATTRIBUTES"] == "team=infra,agent.type=coder"
    assert merged["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in manifest.env
    assert any("OTEL_EXPORTER_OTLP_ENDPOINT" in w for w in warnings)
    assert EXISTING["env"]["OTEL_RESOURCE_ATTRIBUTES"] == "team=infra"  # input not mutated


def test_install_then_uninstall_leaves_the_file_byte_for_byte(tmp_path):
    path = settings_path("project", tmp_path / "home", tmp_path / "repo")
    path.parent.mkdir(parents=True)
    original = json.dumps(EXISTING, indent=4) + "\n"  # the user's own formatting
    path.write_text(original)
    data_dir = tmp_path / "data"
    shown, _ = install(path, options(), data_dir, dry_run=False)
    assert f"{COMMAND} hook session-end" in shown
    assert f"{COMMAND} hook session-start" in path.read_text()
    again, _ = install(path, options(), data_dir, dry_run=False)
    assert again == ""  # installing twice changes nothing
    uninstall("project", data_dir, dry_run=False)
    assert path.read_text() == original
    assert not manifest_path(data_dir, "project").exists()


def test_uninstall_keeps_edits_made_after_install(tmp_path):
    path = tmp_path / ".claude" / "settings.json"
    data_dir = tmp_path / "data"
    install(path, options(), data_dir, dry_run=False)
    edited = json.loads(path.read_text())
    edited["env"]["MY_VAR"] = "1"
    edited["hooks"]["Stop"] = [{"hooks": [{"type": "command", "command": "say done"}]}]
    path.write_text(json.dumps(edited))
    uninstall("project", data_dir, dry_run=False)
    assert json.loads(path.read_text()) == {
        "env": {"MY_VAR": "1"},
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]},
    }


def test_a_file_that_did_not_exist_is_removed_again(tmp_path):
    path = tmp_path / ".claude" / "settings.local.json"
    install(path, options(scope="local"), tmp_path / "data", dry_run=False)
    assert path.exists()
    uninstall("local", tmp_path / "data", dry_run=False)
    assert not path.exists()


def test_dry_run_writes_nothing(tmp_path):
    path = tmp_path / ".claude" / "settings.json"
    shown, _ = install(path, options(), tmp_path / "data", dry_run=True)
    assert "hook session-end" in shown and "OTEL_LOGS_EXPORTER" in shown
    assert not path.exists() and not (tmp_path / "data").exists()


def test_invalid_settings_are_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        install(path, options(), tmp_path / "data", dry_run=False)
    assert path.read_text() == "{not json"


def test_scopes_map_to_claude_codes_settings_files(tmp_path):
    home, project = tmp_path / "home", tmp_path / "repo"
    assert settings_path("user", home, project) == home / ".claude" / "settings.json"
    assert settings_path("project", home, project) == project / ".claude" / "settings.json"
    assert settings_path("local", home, project) == project / ".claude" / "settings.local.json"


def test_a_project_install_puts_the_telemetry_switches_into_the_user_settings(tmp_path):
    """Claude Code 2.1.332 ignores CLAUDE_CODE_ENABLE_TELEMETRY and the OTEL exporter variables in
    project and local settings, and strips OTEL_RESOURCE_ATTRIBUTES from hook processes."""
    home, project, data_dir = tmp_path / "home", tmp_path / "repo", tmp_path / "data"
    user_file = settings_path("user", home, project)
    user_file.parent.mkdir(parents=True)
    user_original = '{"theme": "dark", "env": {"EDITOR": "vim"}}\n'
    user_file.write_text(user_original)
    project_file = settings_path("project", home, project)
    shown, warnings = install(project_file, options(hook_endpoint="http://127.0.0.1:14318"), data_dir, False, user_file)
    assert warnings == [] and str(user_file) in shown and str(project_file) in shown

    scoped = json.loads(project_file.read_text())
    assert scoped["env"] == {
        "KPILOOP_AGENT_TYPE": "coder",
        "KPILOOP_ENDPOINT": "http://127.0.0.1:14318",
        "OTEL_RESOURCE_ATTRIBUTES": "agent.type=coder",
    }
    assert set(scoped["hooks"]) == {"SessionStart", "SessionEnd"}
    user = json.loads(user_file.read_text())
    assert user == {
        "theme": "dark",
        "env": {
            "EDITOR": "vim",
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        },
    }
    assert install(project_file, options(hook_endpoint="http://127.0.0.1:14318"), data_dir, False, user_file)[0] == ""

    changes = uninstall("project", data_dir, dry_run=False)
    assert [path for path, _ in changes] == [project_file, user_file]
    assert not project_file.exists()
    assert user_file.read_text() == user_original
    assert not (data_dir / "install").exists() or not list((data_dir / "install").iterdir())


def test_a_user_install_sets_everything_in_one_file(tmp_path):
    home, data_dir = tmp_path / "home", tmp_path / "data"
    path = settings_path("user", home, tmp_path)
    install(path, options(scope="user"), data_dir, False, path)
    env = json.loads(path.read_text())["env"]
    assert env["KPILOOP_AGENT_TYPE"] == "coder" and env["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
    assert "KPILOOP_ENDPOINT" not in env  # the hooks' default endpoint matches kpiloop serve's default
    assert not manifest_path(data_dir, "user", "user").exists()
    uninstall("user", data_dir, dry_run=False)
    assert not path.exists()
