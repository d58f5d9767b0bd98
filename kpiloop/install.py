"""``kpiloop install claude-code`` / ``uninstall``: merge kpiloop's hooks and telemetry variables into
Claude Code's settings without clobbering what is there, and take out exactly what was added.

What an install added is recorded in ``{data_dir}/install/claude-code-{scope}.json``; uninstall
removes those hook entries and those environment values (only while they still hold the value
kpiloop wrote) and takes ``agent.type`` back out of ``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kpiloop.storage import atomic_write

Scope = Literal["user", "project", "local"]
HOOK_EVENTS = {"SessionStart": "session-start", "SessionEnd": "session-end"}
TOOL_HOOK_EVENTS = {"PostToolUse": "event", "PostToolUseFailure": "event"}
RESOURCE_KEY = "OTEL_RESOURCE_ATTRIBUTES"


@dataclass(frozen=True, slots=True)
class InstallOptions:
    """What to install and where."""

    scope: Scope
    command: str
    agent_type: str | None = None
    endpoint: str = "http://127.0.0.1:4317"
    protocol: str = "grpc"
    tool_events: bool = False


@dataclass
class Manifest:
    """What one install added, so uninstall can remove exactly that."""

    settings_path: str
    hooks: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    resource_attribute: str | None = None
    original_text: str | None = None
    installed_text: str = ""


def settings_path(scope: Scope, home: Path, project: Path) -> Path:
    """``~/.claude/settings.json`` (user), ``.claude/settings.json`` (project) or ``settings.local.json`` (local)."""
    if scope == "user":
        return home / ".claude" / "settings.json"
    return project / ".claude" / ("settings.local.json" if scope == "local" else "settings.json")


def telemetry_env(options: InstallOptions) -> dict[str, str]:
    """The variables that point Claude Code's OTLP exporters at kpiloop."""
    return {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": options.protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": options.endpoint,
    }


def install(path: Path, options: InstallOptions, data_dir: Path, dry_run: bool) -> tuple[str, list[str]]:
    """Merge kpiloop into the settings file at ``path``; return the diff and warnings (nothing written
    on a dry run). Installing twice changes nothing the second time."""
    settings, before = read_settings(path)
    merged, manifest, warnings = merge(settings, options)
    after = render(merged) if manifest.hooks or manifest.env or manifest.resource_attribute else before
    if dry_run or after == before:
        return diff(path, before, after), warnings
    manifest.settings_path = str(path)
    manifest.original_text = before if path.exists() else None
    manifest.installed_text = after
    write_text(path, after)
    write_text(manifest_path(data_dir, options.scope), manifest_to_json(manifest))
    return diff(path, before, after), warnings


def uninstall(scope: Scope, data_dir: Path, dry_run: bool) -> tuple[Path, str]:
    """Take out what the recorded install of ``scope`` added; FileNotFoundError when none is recorded.

    If the settings file is exactly as kpiloop left it, its earlier bytes come back unchanged;
    otherwise only kpiloop's entries are removed and the user's later edits are kept.
    """
    record = manifest_path(data_dir, scope)
    manifest = manifest_from_json(record.read_text(encoding="utf-8"))
    path = Path(manifest.settings_path)
    settings, current = read_settings(path)
    if current == manifest.installed_text:
        restored = manifest.original_text
    else:
        restored = render(unmerge(settings, manifest))
    if not dry_run:
        if restored is None:
            path.unlink(missing_ok=True)
        else:
            write_text(path, restored)
        record.unlink()
    return path, diff(path, current, restored or "")


def merge(settings: dict[str, Any], options: InstallOptions) -> tuple[dict[str, Any], Manifest, list[str]]:
    """Settings with kpiloop added, what was added, and warnings about values left as the user set them."""
    merged: dict[str, Any] = json.loads(json.dumps(settings))
    manifest = Manifest(settings_path="")
    warnings: list[str] = []
    hooks = merged.setdefault("hooks", {})
    events = HOOK_EVENTS | (TOOL_HOOK_EVENTS if options.tool_events else {})
    for event, subcommand in events.items():
        command = f"{options.command} hook {subcommand}"
        if not _has_command(hooks.get(event, []), command):
            entry: dict[str, Any] = {"hooks": [{"type": "command", "command": command}]}
            if event in TOOL_HOOK_EVENTS:
                entry["matcher"] = "*"
            hooks.setdefault(event, []).append(entry)
            manifest.hooks[event] = command
    env = merged.setdefault("env", {})
    for key, value in telemetry_env(options).items():
        if key not in env:
            env[key] = value
            manifest.env[key] = value
        elif env[key] != value:
            warnings.append(f"kept your {key}={env[key]!r} (kpiloop would set {value!r})")
    if options.agent_type:
        manifest.resource_attribute = _merge_resource(env, options.agent_type, warnings)
    return merged, manifest, warnings


def unmerge(settings: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
    """Settings with exactly what ``manifest`` records taken out again."""
    result: dict[str, Any] = json.loads(json.dumps(settings))
    hooks = result.get("hooks", {})
    for event, command in manifest.hooks.items():
        kept = [entry for entry in hooks.get(event, []) if not _is_only(entry, command)]
        if kept:
            hooks[event] = kept
        else:
            hooks.pop(event, None)
    if "hooks" in result and not result["hooks"]:
        del result["hooks"]
    env = result.get("env", {})
    for key, value in manifest.env.items():
        if env.get(key) == value:
            del env[key]
    if manifest.resource_attribute is not None:
        _remove_resource(env, manifest.resource_attribute)
    if "env" in result and not result["env"]:
        del result["env"]
    return result


def render(settings: dict[str, Any]) -> str:
    """Settings as Claude Code writes them: two-space JSON with a final newline."""
    return json.dumps(settings, indent=2) + "\n"


def diff(path: Path, before: str, after: str) -> str:
    """A unified diff of a settings file."""
    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True), str(path), str(path) + " (kpiloop)")
    return "".join(lines)


def read_settings(path: Path) -> tuple[dict[str, Any], str]:
    """The settings file as data and as text ({} and "" when it does not exist); ValueError if unreadable."""
    if not path.exists():
        return {}, ""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); fix it before installing") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return data, text


def write_text(path: Path, text: str) -> None:
    """Write a settings or manifest file atomically."""
    atomic_write(path, text.encode("utf-8"))


def manifest_path(data_dir: Path, scope: Scope) -> Path:
    """Where an install's manifest is kept."""
    return data_dir / "install" / f"claude-code-{scope}.json"


def manifest_to_json(manifest: Manifest) -> str:
    """The manifest file's text."""
    data = {
        "settings_path": manifest.settings_path,
        "hooks": manifest.hooks,
        "env": manifest.env,
        "resource_attribute": manifest.resource_attribute,
        "original_text": manifest.original_text,
        "installed_text": manifest.installed_text,
    }
    return json.dumps(data, indent=2) + "\n"


def manifest_from_json(text: str) -> Manifest:
    """A manifest read back."""
    data = json.loads(text)
    return Manifest(
        settings_path=data["settings_path"],
        hooks=dict(data["hooks"]),
        env=dict(data["env"]),
        resource_attribute=data.get("resource_attribute"),
        original_text=data.get("original_text"),
        installed_text=data.get("installed_text", ""),
    )


def _has_command(entries: list[Any], command: str) -> bool:
    return any(hook.get("command") == command for entry in entries for hook in entry.get("hooks", []))


def _is_only(entry: dict[str, Any], command: str) -> bool:
    commands = [hook.get("command") for hook in entry.get("hooks", [])]
    return commands == [command]


def _merge_resource(env: dict[str, Any], agent_type: str, warnings: list[str]) -> str | None:
    pairs = [p for p in str(env.get(RESOURCE_KEY, "")).split(",") if p.strip()]
    if any(p.split("=", 1)[0].strip() == "agent.type" for p in pairs):
        warnings.append(f"kept the agent.type already in {RESOURCE_KEY}")
        return None
    pair = f"agent.type={agent_type}"
    env[RESOURCE_KEY] = ",".join([*pairs, pair])
    return pair


def _remove_resource(env: dict[str, Any], pair: str) -> None:
    pairs = [p for p in str(env.get(RESOURCE_KEY, "")).split(",") if p.strip() and p.strip() != pair]
    if pairs:
        env[RESOURCE_KEY] = ",".join(pairs)
    else:
        env.pop(RESOURCE_KEY, None)
