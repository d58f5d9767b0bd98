"""The history as feedback needs it: the latest revision of each session's line, by agent type,
kept up to date by tailing ``history/kpis.jsonl`` (which other kpiloop processes may append to)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson

from kpiloop.feedback.types import SessionRecord
from kpiloop.storage import LineTail

MAX_RECORDS_PER_AGENT = 2000


def record_from_line(line: dict[str, Any]) -> SessionRecord:
    """A history line as a :class:`SessionRecord`; raises KeyError/TypeError for a line without one
    (or whose ``kpis``/``baselines`` are not objects of numbers, which baselines could not use)."""
    alerts = line.get("alerts") or []
    critical = {a["kpi"] for a in alerts if a.get("severity") == "CRITICAL" and a.get("kind") == "deviation"}
    thresholds = {a["kpi"] for a in alerts if str(a.get("kind", "")).startswith("threshold")}
    return SessionRecord(
        session_id=str(line["session_id"]),
        date=str(line.get("date", "")),
        agent_type=str(line["agent_type"]),
        model=str(line.get("model") or "unknown"),
        kpis=_numbers({**(line.get("kpis") or {}), **_top_level_kpis(line)}, "kpis"),
        baselines={k: v for k, v in _numbers(line.get("baselines") or {}, "baselines").items() if v is not None},
        critical_kpis=frozenset(critical),
        threshold_kpis=frozenset(thresholds),
    )


def _numbers(value: object, where: str) -> dict[str, float | None]:
    """``value`` as a mapping of names to numbers or null; TypeError for anything else."""
    if not isinstance(value, dict):
        raise TypeError(f"{where} must be an object")
    for number in value.values():
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
            raise TypeError(f"{where} values must be numbers or null")
    return {str(k): v for k, v in value.items()}


class HistoryIndex:
    """In-memory view of recent sessions per agent type, refreshed from the file's new lines."""

    def __init__(self, path: Path, max_per_agent: int = MAX_RECORDS_PER_AGENT) -> None:
        self._tail = LineTail(path)
        self._max = max_per_agent
        self._agents: dict[str, OrderedDict[str, SessionRecord]] = {}
        self.malformed_lines = 0

    def refresh(self) -> int:
        """Read lines appended since the last call; return how many were added."""
        return sum(self._add_line(raw) for raw in self._tail.new_lines())

    def records(self, agent_type: str, model: str | None = None) -> list[SessionRecord]:
        """The agent type's sessions, oldest close first; only ``model``'s when given."""
        records = list(self._agents.get(agent_type, {}).values())
        return records if model is None else [r for r in records if r.model == model]

    def find(self, session_id: str) -> SessionRecord | None:
        """The latest record of one session, if it is still in view."""
        for records in self._agents.values():
            if session_id in records:
                return records[session_id]
        return None

    def _add_line(self, raw: bytes) -> int:
        try:
            record = record_from_line(orjson.loads(raw))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            self.malformed_lines += 1
            return 0
        records = self._agents.setdefault(record.agent_type, OrderedDict())
        records.pop(record.session_id, None)  # a later revision replaces the earlier one, and moves last
        records[record.session_id] = record
        while len(records) > self._max:
            records.popitem(last=False)
        return 1


def _top_level_kpis(line: dict[str, Any]) -> dict[str, Any]:
    """KPIs the history line keeps beside the plan's ten (``cost_per_output_token``)."""
    value = line.get("cost_per_output_token")
    return {} if value is None else {"cost_per_output_token": value}
