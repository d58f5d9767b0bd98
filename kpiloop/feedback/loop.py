"""The close of the loop, called by the feedback stage on every session close.

- :func:`track_and_decide`: for each enabled active suggestion of the session's agent type that the
  session-start hook assigned to this session (``optimizations/assignments.jsonl``), record the
  session's target-KPI value with its arm (treated/control), decide
  (:mod:`kpiloop.feedback.experiment`), and promote (PROVEN) or retire (HARMFUL, INEFFECTIVE).
  Sessions the hook never saw are not tracked.
- :func:`activate_from`: put the session's new suggestions into active.json's free slots.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kpiloop.feedback import active as active_file
from kpiloop.feedback.assignment import arm_of, recorded_cwd, session_assignments
from kpiloop.feedback.baselines import BaselineStore
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.experiment import Decision, apply_decision, decide, record_result
from kpiloop.feedback.promotion import promote, retire
from kpiloop.feedback.suggestions import SAFE_NAME, Suggestion
from kpiloop.feedback.transforms import KPI_SCALES
from kpiloop.model import SessionSummary

log = logging.getLogger(__name__)


def track_and_decide(summary: SessionSummary, data_dir: Path, config: FeedbackConfig, now: str) -> tuple[str, ...]:
    """Track this session in every experiment it belongs to, decide, promote or retire.

    Returns the ids of the enabled suggestions that were active for ``summary.agent_type`` when the
    session closed (before any of them was promoted or retired by this call).
    """
    records = session_assignments(data_dir, summary.session_id)
    agent_types = {summary.agent_type} | {r["agent_type"] for r in records if isinstance(r.get("agent_type"), str)}
    cwd = recorded_cwd(records)
    baselines = _baseline_centres(data_dir, summary.agent_type)
    kpis: dict[str, float | None] = dict(summary.kpis) | {"cost_per_output_token": summary.cost_per_output_token}
    decided: list[tuple[dict[str, Any], Decision]] = []

    def change(document: dict[str, Any]) -> tuple[str, ...]:
        active_ids = tuple(
            entry["id"]
            for entry in active_file.suggestions_of(document, summary.agent_type)
            if active_file.is_enabled(entry)
        )
        for entry in active_file.suggestions_of(document):
            if entry.get("agent_type") not in agent_types or not active_file.is_enabled(entry):
                continue
            arm = arm_of(records, entry["id"])
            kpi = str((entry.get("expected_impact") or {}).get("kpi", ""))
            value = kpis.get(kpi)
            if arm not in ("treated", "control") or value is None:
                continue
            tracking = entry.get("tracking")
            if not isinstance(tracking, dict):
                tracking = entry["tracking"] = active_file.new_tracking()
            record_result(tracking, summary.session_id, "treated" if arm == "treated" else "control",
                          baselines.get(kpi), value)  # fmt: skip
            decision = decide(entry, config)
            apply_decision(tracking, decision)
            if decision.effectiveness != "TRACKING":
                decided.append((entry, decision))
        for entry, decision in decided:
            if decision.effectiveness == "PROVEN":
                promote(data_dir, entry, decision, cwd, config, now)
            else:
                retire(data_dir, entry, decision, now)
        if decided:
            gone = {id(entry) for entry, _ in decided}
            document["suggestions"] = [e for e in document.get("suggestions", []) if id(e) not in gone]
        return active_ids

    return active_file.update_active(data_dir, change, now)


def activate_from(
    summary: SessionSummary, suggestions: Sequence[Suggestion], data_dir: Path, config: FeedbackConfig, now: str
) -> list[str]:
    """Add this session's suggestions to active.json's free slots for its agent type; returns the new ids."""
    if not suggestions:
        return []
    retired = active_file.load_retired(data_dir)

    def change(document: dict[str, Any]) -> list[str]:
        current = active_file.suggestions_of(document)
        added = active_file.activate(
            suggestions, summary.agent_type, summary.session_id, now, config, current=current, retired=retired
        )
        document.setdefault("suggestions", []).extend(added)
        return [entry["id"] for entry in added]

    return active_file.update_active(data_dir, change, now)


def _baseline_centres(data_dir: Path, agent_type: str) -> dict[str, float]:
    """The stored baseline's centre of each KPI on the KPI's own scale (the plan's ``kpi_before``)."""
    if not SAFE_NAME.fullmatch(agent_type):
        return {}
    try:
        baseline = BaselineStore(data_dir).load(agent_type)
    except ValueError:
        return {}
    if baseline is None:
        return {}
    centres = {}
    for kpi, kb in baseline.kpis.items():
        if kb.center is not None and not kb.raw and kpi in KPI_SCALES:
            centres[kpi] = KPI_SCALES[kpi].inverse(kb.center)
        else:
            centres[kpi] = kb.mean
    return centres
