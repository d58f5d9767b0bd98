"""``kpiloop install claude-code`` / ``uninstall``: merge kpiloop's hooks and telemetry variables into
Claude Code's settings without clobbering what is there, and take out exactly what was added.

What goes where (facts from Claude Code 2.1.332):

- hooks, ``OTEL_RESOURCE_ATTRIBUTES`` (``agent.type``) and the hooks' own variables
  (``KPILOOP_AGENT_TYPE``, ``KPILOOP_ENDPOINT``) go into the scope's settings file. Claude Code strips
  ``OTEL_RESOURCE_ATTRIBUTES`` from hook processes, so the hooks learn the agent type from
  ``KPILOOP_AGENT_TYPE``;
- the telemetry switches (:data:`USER_ONLY_ENV`) are ignored in project and local settings ("project-
  scoped settings can't set this key. Set it in ~/.claude/settings.json or managed settings
  instead"), so a project or local install puts them into ``~/.claude/settings.json``.

What an install added to each file is recorded in ``{data_dir}/install/claude-code-{scope}.json``
(and ``claude-code-{scope}-user.json`` for the user-file part of a project or local install);
uninstall removes those hook entries and those environment values (only while they still hold the
value kpiloop wrote) and takes ``agent.type`` back out of ``OTEL_RESOURCE_ATTRIBUTES``.
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
USER_ONLY_ENV = frozenset(
    {
        "CLAUDE_CODE_ENABLE_TELEMETRY",
        "OTEL_LOGS_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    }
)
"""Variables Claude Code reads only from user or managed settings, never from a project's."""


@dataclass(frozen=True, slots=True)
class InstallOptions:
    """What to install and where."""

    scope: Scope
    command: str
    agent_type: str | None = None
    endpoint: str = "http://127.0.0.1:4317"
    protocol: str = "grpc"
    tool_events: bool = False
    hook_endpoint: str | None = None
    """``KPILOOP_ENDPOINT`` for the hooks (OTLP/HTTP); None leaves the hooks' default."""


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


def hook_env(options: InstallOptions) -> dict[str, str]:
    """The variables the hook commands read: the agent type, and where kpiloop's OTLP/HTTP receiver is."""
    env = {}
    if options.agent_type:
        env["KPILOOP_AGENT_TYPE"] = options.agent_type
    if options.hook_endpoint:
        env["KPILOOP_ENDPOINT"] = options.hook_endpoint
    return env


def install(
    path: Path, options: InstallOptions, data_dir: Path, dry_run: bool, user_path: Path | None = None
) -> tuple[str, list[str]]:
    """Merge kpiloop into the settings file at ``path`` (and, for a project or local install, the
    telemetry switches into ``user_path``, the user's settings.json); return the diff and warnings
    (nothing written on a dry run). Installing twice changes nothing the second time."""
    telemetry, record = telemetry_env(options), manifest_path(data_dir, options.scope)
    if options.scope == "user" or user_path is None:
        return _install_file(path, options, telemetry | hook_env(options), True, record, dry_run)
    scoped = {k: v for k, v in telemetry.items() if k not in USER_ONLY_ENV} | hook_env(options)
    user_only = {k: v for k, v in telemetry.items() if k in USER_ONLY_ENV}
    shown, warnings = _install_file(path, options, scoped, True, record, dry_run)
    user_options = InstallOptions(scope="user", command=options.command)
    user_manifest = manifest_path(data_dir, options.scope, "user")
    shown_user, warnings_user = _install_file(user_path, user_options, user_only, False, user_manifest, dry_run)
    return shown + shown_user, warnings + warnings_user


def _install_file(
    path: Path, options: InstallOptions, env: dict[str, str], with_hooks: bool, record: Path, dry_run: bool
) -> tuple[str, list[str]]:
    settings, before = read_settings(path)
    merged, manifest, warnings = merge(settings, options, env, with_hooks)
    after = render(merged) if manifest.hooks or manifest.env or manifest.resource_attribute else before
    if dry_run or after == before:
        return diff(path, before, after), warnings
    manifest.settings_path = str(path)
    manifest.original_text = before if path.exists() else None
    manifest.installed_text = after
    write_text(path, after)
    write_text(record, manifest_to_json(manifest))
    return diff(path, before, after), warnings


def uninstall(scope: Scope, data_dir: Path, dry_run: bool) -> list[tuple[Path, str]]:
    """Take out what the recorded install of ``scope`` added, from each file it changed; the paths and
    diffs. FileNotFoundError when no install of ``scope`` is recorded.

    If a settings file is exactly as kpiloop left it, its earlier bytes come back unchanged;
    otherwise only kpiloop's entries are removed and the user's later edits are kept.
    """
    records = [manifest_path(data_dir, scope), manifest_path(data_dir, scope, "user")]
    if not any(record.exists() for record in records):
        raise FileNotFoundError(records[0])
    return [_uninstall_file(record, dry_run) for record in records if record.exists()]


def _uninstall_file(record: Path, dry_run: bool) -> tuple[Path, str]:
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


def merge(
    settings: dict[str, Any], options: InstallOptions, env_values: dict[str, str] | None = None, with_hooks: bool = True
) -> tuple[dict[str, Any], Manifest, list[str]]:
    """Settings with kpiloop added (hooks when ``with_hooks``, the ``env_values`` — by default every
    variable of a user install —, and ``agent.type``), what was added, and warnings about values left
    as the user set them."""
    if env_values is None:
        env_values = telemetry_env(options) | hook_env(options)
    merged: dict[str, Any] = json.loads(json.dumps(settings))
    manifest = Manifest(settings_path="")
    warnings: list[str] = []
    if with_hooks:
        _merge_hooks(merged, options, manifest)
    env = merged.setdefault("env", {})
    for key, value in env_values.items():
        if key not in env:
            env[key] = value
            manifest.env[key] = value
        elif env[key] != value:
            warnings.append(f"kept your {key}={env[key]!r} (kpiloop would set {value!r})")
    if options.agent_type and with_hooks:
        manifest.resource_attribute = _merge_resource(env, options.agent_type, warnings)
    for key in ("hooks", "env"):
        if key in merged and not merged[key] and key not in settings:
            del merged[key]
    return merged, manifest, warnings


def _merge_hooks(merged: dict[str, Any], options: InstallOptions, manifest: Manifest) -> None:
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


def manifest_path(data_dir: Path, scope: Scope, part: str = "") -> Path:
    """Where an install's manifest is kept (``part="user"``: the user-file part of a project or local install)."""
    return data_dir / "install" / f"claude-code-{scope}{'-' + part if part else ''}.json"


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
