"""How many improvement suggestions each agent type has in each state, for the
``agent_performance_suggestions{agent_type, state}`` gauge.

- ``active``: enabled entries of active.json (a user-disabled entry is in no state: it is not being
  tried and was not decided);
- ``promoted`` / ``retired``: entries of the retired.jsonl ledger by their ``state`` field.

A suggestion promoted or retired twice (re-activated after its cool-down) counts each time: the
ledger is a record of decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kpiloop.feedback import active as active_file

STATES = ("active", "promoted", "retired")


def count_states(document: Mapping[str, Any], ledger: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``{agent_type: {state: count}}`` with every state present (0 when none) for every agent type seen."""
    counts: dict[str, dict[str, int]] = {}

    def bump(agent_type: object, state: str) -> None:
        if isinstance(agent_type, str) and state in STATES:
            counts.setdefault(agent_type, dict.fromkeys(STATES, 0))[state] += 1

    for entry in active_file.suggestions_of(document):
        if active_file.is_enabled(entry):
            bump(entry.get("agent_type"), "active")
    for record in ledger:
        bump(record.get("agent_type"), str(record.get("state", "")))
    return counts


def read_states(data_dir: Path) -> dict[str, dict[str, int]]:
    """:func:`count_states` of the files under ``data_dir`` (missing files count as empty)."""
    return count_states(active_file.load_active(data_dir), active_file.load_retired(data_dir))
