"""Claude Code hook command ``kpiloop hook session-start`` (standard library only).

Reads Claude Code's SessionStart payload on stdin, resolves the agent type and prints one hook
JSON object whose ``hookSpecificOutput.additionalContext`` states, as facts:

- the plan's "Performance Baselines" table for the agent type (``{data_dir}/baselines/{agent}.json``),
- the active suggestions of the agent type **assigned to this session** (``optimizations/active.json``):
  suggestion ``S`` is included in session ``X`` iff the first byte of ``sha256("X:S")`` is below 128,
- open incidents of the agent type (``incidents/{agent}-{kpi}-{timestamp}.md`` younger than 7 days).

Every line comes from a fixed template filled with numbers, known KPI names, the sanitized agent
type, our own file paths, and the rule-template text of active.json (titles, guidance, magnitude):
never free text from telemetry or from the hook payload. When nothing applies it prints ``{}``.

The assignment is appended to ``{data_dir}/optimizations/assignments.jsonl`` (one line per start,
with the agent type and ``cwd``) so the close can tell treated from control sessions, and the
SessionStart is forwarded to the collector like ``kpiloop hook event`` does.

Pages (``alerts/pages.json``, :mod:`kpiloop.feedback.pages`): an acknowledged incident is no
longer listed as open; an open CRITICAL hard-threshold page is listed too. When the feedback config
has ``block_on_critical`` (copied into pages.json by every close, since this path reads no YAML),
the agent type's unacknowledged pages are also shown to the user as ``systemMessage`` until
``kpiloop alerts ack``.

It never breaks a session: it exits 0, prints ``{}`` on any internal error and notes the error in
``{data_dir}/logs/hooks.log``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

from kpiloop import hooks, storage
from kpiloop.feedback.assignment import assigned
from kpiloop.identity import DEFAULT_AGENT_TYPE, sanitize_agent_type, sanitize_session_id

MAX_CONTEXT_CHARS = 10_000
"""Claude Code's cap on ``additionalContext``; the text always stays strictly below it."""
CONTEXT_BUDGET = MAX_CONTEXT_CHARS - 1
PROJECT_CONFIG = ".kpiloop.yaml"
INCIDENT_MAX_AGE_S = 7 * 24 * 3600
MAX_INCIDENTS = 10
MAX_READ_BYTES = 4 * 1024 * 1024
MAX_TITLE_CHARS = 200
MAX_GUIDANCE_CHARS = 600
MAX_MAGNITUDE_CHARS = 80
MAX_SUGGESTION_ID_CHARS = 200
MAX_PATH_CHARS = 500
ASSIGNMENTS_FILE = ("optimizations", "assignments.jsonl")
PAGES_FILE = ("alerts", "pages.json")
"""Written by the feedback stage (:mod:`kpiloop.feedback.pages`)."""

KPI_NAMES: tuple[str, ...] = (
    "token_efficiency",
    "task_completion_rate",
    "active_time_ratio",
    "tool_overhead_ratio",
    "cache_efficiency",
    "error_rate",
    "quality_relevance",
    "quality_faithfulness",
    "quality_coherence",
    "quality_hallucination",
    "cost_per_output_token",
)
"""Every KPI kpiloop computes (``kpiloop.model.KPI_DIRECTIONS``, copied: that module is not stdlib-only)."""

TARGETS: dict[str, str] = {
    "token_efficiency": "> 0.05",
    "task_completion_rate": "> 0.95",
    "active_time_ratio": "> 0.60",
    "tool_overhead_ratio": "< 0.50",
    "cache_efficiency": "> 0.90",
    "error_rate": "0%",
    "quality_relevance": "> 0.90",
    "quality_faithfulness": "> 0.90",
    "quality_coherence": "> 0.90",
    "quality_hallucination": "< 0.05",
}
"""The plan's targets ("Session-Start Hook Integration"); other KPIs show ``--``."""

DIRECTIONS = ("increase", "decrease")
DECIDED_STATES = ("retired", "promoted")


def run(argv: list[str]) -> int:
    """``kpiloop hook session-start [--agent-type T] [--data-dir DIR] [--endpoint URL]``; always 0."""
    options = hooks._options(["session-start", *argv])
    try:
        payload = hooks._read_payload(sys.stdin.buffer)
        agent_type = resolve_agent_type(options["agent_type"], payload.get("cwd"))
        session_id = sanitize_session_id(payload.get("session_id"))
        pages = read_pages(options["data_dir"])
        context, included, excluded, omitted = build_context(
            options["data_dir"], agent_type, session_id, time.time(), pages
        )
        message = system_message(pages, agent_type)
    except Exception as error:  # never break the session: an empty, valid answer
        _emit({})
        _note_error(options["data_dir"], error)
        return 0
    _emit(hook_output(context, message))
    if session_id is not None:
        _guarded(options["data_dir"], record_assignment, options["data_dir"], session_id, agent_type, payload,
                 included, excluded, omitted)  # fmt: skip
        _guarded(options["data_dir"], _forward, payload, agent_type, options)
    return 0


def hook_output(context: str, message: str = "") -> dict[str, Any]:
    """The hook's JSON answer: ``hookSpecificOutput`` with the context when there is one, and
    ``systemMessage`` (shown to the user) when there is a message; ``{}`` for neither."""
    answer: dict[str, Any] = {}
    if context:
        answer["hookSpecificOutput"] = {"hookEventName": "SessionStart", "additionalContext": context}
    if message:
        answer["systemMessage"] = message
    return answer


def read_pages(data_dir: str) -> dict[str, Any]:
    """The pages document (``{}`` when missing or corrupt; a corrupt file is noted in hooks.log)."""
    document = _read_json(data_dir, *PAGES_FILE)
    if not isinstance(document, dict) or not isinstance(document.get("pages", []), list):
        return {}
    return document


def system_message(pages: dict[str, Any], agent_type: str) -> str:
    """With ``block_on_critical``: the agent type's unacknowledged pages, for the user; else ``""``."""
    if pages.get("block_on_critical") is not True:
        return ""
    found = sorted({f"{page['kpi']} ({_KIND_WORDS[page['kind']]})" for page in _clean_pages(pages, agent_type)})
    if not found:
        return ""
    return (
        f"kpiloop: {len(found)} unacknowledged page{'s' if len(found) != 1 else ''} for agent type {agent_type}: "
        + ", ".join(found[:MAX_INCIDENTS])
        + ". See `kpiloop alerts list`; acknowledge with `kpiloop alerts ack`."
    )


# --- agent type -------------------------------------------------------------------------------


def resolve_agent_type(flag: str, cwd: object) -> str:
    """``--agent-type``, else ``KPILOOP_AGENT_TYPE``, else ``agent.type`` in ``OTEL_RESOURCE_ATTRIBUTES``,
    else ``agent_type`` in the nearest ``.kpiloop.yaml`` from ``cwd`` upwards, else ``default``; sanitized."""
    chosen = flag or os.environ.get("KPILOOP_AGENT_TYPE", "")
    if not chosen:
        for pair in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
            key, _, value = pair.partition("=")
            if key.strip() == "agent.type" and value.strip():
                chosen = value.strip()
    if not chosen and isinstance(cwd, str) and cwd:
        chosen = project_agent_type(cwd) or ""
    return str(sanitize_agent_type(chosen)) if chosen else str(DEFAULT_AGENT_TYPE)


def project_agent_type(cwd: str) -> str | None:
    """``agent_type`` of the nearest ``.kpiloop.yaml`` in ``cwd`` or a parent; None when there is none."""
    folder = os.path.abspath(cwd)
    while True:
        candidate = os.path.join(folder, PROJECT_CONFIG)
        if os.path.isfile(candidate):
            return read_agent_type_line(candidate)
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def read_agent_type_line(path: str) -> str | None:
    """The value of a top-level ``agent_type: value`` line (quotes and a trailing ``# comment`` removed).

    Only that one line form is understood; any other YAML is ignored.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(64 * 1024)
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep or key != "agent_type":
            continue
        value = value.split(" #", 1)[0].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1].strip()
        return value or None
    return None


# --- context ----------------------------------------------------------------------------------


def build_context(
    data_dir: str, agent_type: str, session_id: str | None, now: float, pages: dict[str, Any] | None = None
) -> tuple[str, list[str], list[str], list[str]]:
    """The additionalContext text and the suggestion ids included, excluded (control) and omitted (no room)."""
    pages = pages if pages is not None else {}
    baselines = baseline_section(_read_json(data_dir, "baselines", f"{agent_type}.json"), agent_type)
    warnings = warning_section(data_dir, agent_type, now, pages)
    header = f"# kpiloop performance context (agent type: {agent_type})\n"
    room = max(0, CONTEXT_BUDGET - len(header) - len(baselines) - len(warnings))
    suggestions = active_suggestions(_read_json(data_dir, "optimizations", "active.json"), agent_type)
    included, excluded, omitted = [], [], []
    blocks: list[str] = []
    used = len(SUGGESTIONS_INTRO)
    for entry in suggestions:
        if session_id is None or not assigned(session_id, entry["id"]):
            excluded.append(entry["id"])
            continue
        block = suggestion_block(entry)
        if used + len(block) > room:
            omitted.append(entry["id"])
            continue
        blocks.append(block)
        used += len(block)
        included.append(entry["id"])
    optimizations = SUGGESTIONS_INTRO + "".join(blocks) if blocks else ""
    body = baselines + optimizations + warnings
    context = header + body if body else ""
    return context[:CONTEXT_BUDGET], included, excluded, omitted


def baseline_section(document: object, agent_type: str) -> str:
    """The plan's "## Performance Baselines" table; empty without usable rows."""
    if not isinstance(document, dict) or not isinstance(document.get("baselines"), dict):
        return ""
    rows = []
    for kpi, stats in document["baselines"].items():
        if kpi not in KPI_NAMES or not isinstance(stats, dict):
            continue
        mean, p95 = _number(stats.get("mean")), _number(stats.get("p95"))
        if mean is None and p95 is None:
            continue
        rows.append(f"| {_title(kpi)} | {TARGETS.get(kpi, '--')} | {_fixed(mean)} | {_fixed(p95)} |\n")
    if not rows:
        return ""
    count = document.get("session_count")
    sessions = ""
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        sessions = f" ({count} session{'s' if count != 1 else ''})"
    return (
        "\n## Performance Baselines\n\n"
        f"Your historical performance for {agent_type}{sessions}:\n\n"
        "| Metric | Target | Your Average | Your p95 |\n"
        "|--------|--------|--------------|----------|\n"
        + "".join(rows)
        + "\nAim to meet or exceed your p95 performance.\n"
    )


SUGGESTIONS_INTRO = (
    "\n## Active Performance Optimizations\n\nBased on recent session analysis, apply these optimizations:\n\n"
)


def active_suggestions(document: object, agent_type: str) -> list[dict[str, str]]:
    """The enabled, undecided suggestions of ``agent_type`` in active.json order, reduced to clean fields."""
    if not isinstance(document, dict) or not isinstance(document.get("suggestions"), list):
        return []
    found: list[dict[str, str]] = []
    seen: set[str] = set()
    for entry in document["suggestions"]:
        if not isinstance(entry, dict) or not _is_live(entry):
            continue
        if sanitize_agent_type(entry.get("agent_type"), DEFAULT_AGENT_TYPE) != agent_type:
            continue
        suggestion_id, title = entry.get("id"), _clean(entry.get("title"), MAX_TITLE_CHARS)
        if not isinstance(suggestion_id, str) or not suggestion_id or len(suggestion_id) > MAX_SUGGESTION_ID_CHARS:
            continue
        if suggestion_id in seen or not title:
            continue
        seen.add(suggestion_id)
        impact = entry.get("expected_impact")
        impact = impact if isinstance(impact, dict) else {}
        kpi, direction = impact.get("kpi"), impact.get("direction")
        found.append(
            {
                "id": suggestion_id,
                "title": title,
                "guidance": _clean(entry.get("implementation_guidance"), MAX_GUIDANCE_CHARS),
                "kpi": kpi if isinstance(kpi, str) and kpi in KPI_NAMES else "",
                "direction": direction if direction in DIRECTIONS else "",
                "magnitude": _clean(impact.get("magnitude"), MAX_MAGNITUDE_CHARS),
            }
        )
    return found


def suggestion_block(entry: dict[str, str]) -> str:
    """One suggestion in the plan's format."""
    lines = [f"### {entry['title']}\n"]
    if entry["guidance"]:
        lines.append(f"- **Implementation**: {entry['guidance']}\n")
    if entry["kpi"]:
        words = [entry["magnitude"], entry["direction"], "in" if entry["direction"] else "on", _title(entry["kpi"])]
        lines.append(f"- **Expected Impact**: {' '.join(w for w in words if w)}\n")
    return "".join(lines) + "\n"


def warning_section(data_dir: str, agent_type: str, now: float, pages: dict[str, Any]) -> str:
    """The "Open Warnings" section: open incidents, then open CRITICAL hard-threshold pages."""
    acknowledged = {
        f"{page['agent_type']}-{page['kpi']}-{_file_stamp(page['opened_at'])}"
        for page in _clean_pages(pages, agent_type, acknowledged=True)
        if page["kind"] == "incident"
    }
    lines = incident_lines(data_dir, agent_type, now, acknowledged)
    thresholds = sorted(
        (page for page in _clean_pages(pages, agent_type) if page["kind"] == "threshold"),
        key=lambda page: page["opened_at"],
        reverse=True,
    )
    seen: set[str] = set()
    for page in thresholds:
        if page["kpi"] in seen or len(lines) >= MAX_INCIDENTS:
            continue
        seen.add(page["kpi"])
        value = _number(page.get("value"))
        shown = f" at {_fixed(value)}" if value is not None else ""
        lines.append(
            f"- Open page: {page['kpi']} crossed its CRITICAL hard threshold{shown} ({page['opened_at'][:10]})\n"
        )
    return "\n## Open Warnings\n\n" + "".join(lines) if lines else ""


def incident_lines(data_dir: str, agent_type: str, now: float, acknowledged: set[str]) -> list[str]:
    """One line per KPI with an incident report of ``agent_type`` younger than 7 days (newest report),
    leaving out reports whose page was acknowledged (``acknowledged`` holds their file stems)."""
    folder = os.path.join(data_dir, "incidents")
    prefix = f"{agent_type}-"
    newest: dict[str, tuple[float, str]] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for item in entries:
        name = item.name
        if not name.startswith(prefix) or not name.endswith(".md") or name[: -len(".md")] in acknowledged:
            continue
        rest = name[len(prefix) : -len(".md")]
        kpi = next((k for k in KPI_NAMES if rest.startswith(k + "-") and _safe_stamp(rest[len(k) + 1 :])), None)
        if kpi is None:
            continue
        try:
            mtime = item.stat().st_mtime
        except OSError:
            continue
        if now - mtime > INCIDENT_MAX_AGE_S or (kpi in newest and newest[kpi][0] >= mtime):
            continue
        newest[kpi] = (mtime, os.path.join(folder, name))
    ordered = sorted(newest.items(), key=lambda item: -item[1][0])[:MAX_INCIDENTS]
    return [f"- Open incident: {kpi} degraded (see {_shown(path)})\n" for kpi, (_, path) in ordered]


_KIND_WORDS = {"incident": "sustained degradation", "threshold": "hard threshold"}


def _clean_pages(pages: dict[str, Any], agent_type: str, acknowledged: bool = False) -> list[dict[str, Any]]:
    """The well-formed pages of ``agent_type``, open ones (or acknowledged ones), with known KPI and kind."""
    found = []
    for page in pages.get("pages", []):
        if not isinstance(page, dict) or page.get("agent_type") != agent_type:
            continue
        if page.get("kpi") not in KPI_NAMES or page.get("kind") not in _KIND_WORDS:
            continue
        opened = page.get("opened_at")
        if not isinstance(opened, str) or not _safe_stamp(opened.replace(":", "")):
            continue
        if bool(page.get("acknowledged_at")) == acknowledged:
            found.append(page)
    return found


# --- side effects -----------------------------------------------------------------------------


def record_assignment(
    data_dir: str,
    session_id: str,
    agent_type: str,
    payload: dict[str, Any],
    included: list[str],
    excluded: list[str],
    omitted: list[str],
) -> None:
    """Append the session's assignment to ``{data_dir}/optimizations/assignments.jsonl``."""
    cwd, source = payload.get("cwd"), payload.get("source")
    record: dict[str, Any] = {
        "session_id": session_id,
        "agent_type": agent_type,
        "cwd": cwd if isinstance(cwd, str) else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source[:50] if isinstance(source, str) else None,
        "included": included,
        "excluded": excluded,
    }
    if omitted:
        record["omitted"] = omitted  # assigned but left out for room: neither treated nor control
    line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    storage.locked_append(hooks._path(os.path.join(data_dir, *ASSIGNMENTS_FILE)), line)


def _forward(payload: dict[str, Any], agent_type: str, options: dict[str, str]) -> None:
    record = hooks.build_record("event", {**payload, "hook_event_name": "SessionStart"}, agent_type, time.time_ns())
    if record is not None:
        hooks.deliver(record, options)


def _guarded(data_dir: str, action: Any, *args: Any) -> None:
    try:
        action(*args)
    except Exception as error:  # the answer is out already; note the problem and go on
        _note_error(data_dir, error)


def _emit(answer: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # Claude Code closed the pipe: nothing left to tell it


def _note_error(data_dir: str, error: Exception) -> None:
    hooks._note_error({"command": "session-start", "data_dir": data_dir}, error)


# --- helpers ----------------------------------------------------------------------------------


def _read_json(data_dir: str, *parts: str) -> object:
    """A JSON file of the data dir; None when missing, unreadable or corrupt (noted in hooks.log)."""
    path = os.path.join(data_dir, *parts)
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read(MAX_READ_BYTES))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        _note_error(data_dir, error)
        return None


def _is_live(entry: dict[str, Any]) -> bool:
    """Enabled and still under test: not disabled, retired or promoted."""
    if entry.get("enabled", True) is False:
        return False
    for key in ("state", "status"):
        if str(entry.get(key, "")).lower() in DECIDED_STATES:
            return False
    tracking = entry.get("tracking")
    if isinstance(tracking, dict):
        effectiveness = tracking.get("effectiveness")
        if effectiveness not in (None, "TRACKING"):
            return False
    return True


def _clean(value: object, limit: int) -> str:
    """One line of printable text, at most ``limit`` characters (an ellipsis marks a cut)."""
    if not isinstance(value, str):
        return ""
    text = " ".join("".join(c if c.isprintable() else " " for c in value[: limit * 4]).split())
    text = text.lstrip("#").strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fixed(value: float | None) -> str:
    """Three decimals as the plan prints them; tiny values in three significant digits; ``-`` when missing."""
    if value is None:
        return "-"
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.001 else f"{value:.3g}"


def _title(kpi: str) -> str:
    """``token_efficiency`` → ``Token Efficiency`` (the plan's column names)."""
    return " ".join(word.capitalize() for word in kpi.split("_"))


def _shown(path: str) -> str:
    """The path, or only ``incidents/<name>`` when the data dir's path is very long."""
    return path if len(path) <= MAX_PATH_CHARS else os.path.join("incidents", os.path.basename(path))


def _file_stamp(iso_time: str) -> str:
    """:func:`kpiloop.feedback.pages.file_stamp`, repeated: importing that module would cost this hook ~2.5 ms."""
    return iso_time.replace(":", "").replace("-", "")


def _safe_stamp(text: str) -> bool:
    return bool(text) and len(text) <= 40 and all(c.isalnum() or c in "._-" for c in text) and text.isascii()
