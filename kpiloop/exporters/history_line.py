"""The history line (DESIGN.md section 4): one JSON object per closed session in
``{data_dir}/history/kpis.jsonl``. Pure mapping from a summary; the writer adds revisions."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from kpiloop.model import KPI_NAMES, Alert, SessionSummary, SubagentUsage

SCHEMA_VERSION = 1


def iso_utc(nanos: int) -> str:
    """Nanoseconds since the epoch as ``YYYY-MM-DDTHH:MM:SSZ``.

    >>> iso_utc(1770920880_000000000)
    '2026-02-12T18:28:00Z'
    """
    return datetime.fromtimestamp(nanos // 1_000_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history_line(summary: SessionSummary, revision: int = 1, supersedes: int | None = None) -> dict[str, Any]:
    """The plan's ``HistoryEntry`` fields plus kpiloop's counts and provenance.

    ``baselines`` (the centres the session was compared with, on the KPI's own scale),
    ``optimizations_active``, ``alert_level`` and ``alerts`` come from the feedback stage; without
    it they are ``{}``, ``[]``, ``null`` and ``[]``. ``supersedes`` names the revision of this
    session's earlier line that this one replaces (a reopened or force-replayed session).
    """
    tokens = summary.tokens
    assessment = summary.assessment
    return {
        "session_id": summary.session_id,
        "date": iso_utc(summary.start_ns),
        "agent_type": summary.agent_type,
        "model": summary.model,
        "duration_seconds": summary.duration_seconds,
        "kpis": {name: summary.kpis.get(name) for name in KPI_NAMES},
        "baselines": dict(assessment.baselines) if assessment else {},
        "optimizations_active": list(assessment.optimizations_active) if assessment else [],
        "alert_level": assessment.alert_level if assessment else None,
        "alerts": [_alert(alert) for alert in assessment.alerts] if assessment else [],
        "tokens": {
            "input": tokens.input,
            "output": tokens.output,
            "cache_read": tokens.cache_read,
            "cache_creation": tokens.cache_creation,
            "cache_creation_5m": tokens.cache_write_5m,
            "cache_creation_1h": tokens.cache_write_1h,
        },
        "cost_usd": summary.cost_usd,
        "cost_per_output_token": summary.cost_per_output_token,
        "api_requests": summary.api_requests,
        "api_errors": summary.api_errors,
        "tool_calls": summary.tool_calls,
        "tool_failures": summary.tool_failures,
        "tool_denials": summary.tool_denials,
        "tools_by_name": dict(summary.tools_by_name),
        "tasks": {
            "created": summary.tasks_created,
            "completed": summary.tasks_completed,
            "updates": summary.task_updates,
        },
        "active_seconds": summary.active_seconds,
        "subagents": {name: _subagent(usage) for name, usage in summary.subagents.items()},
        "data_completeness": {**asdict(summary.data_completeness), "sources": list(summary.data_completeness.sources)},
        "close_reason": summary.close_reason,
        "revision": revision,
        "supersedes": supersedes,
        "schema_version": SCHEMA_VERSION,
    }


def _alert(alert: Alert) -> dict[str, Any]:
    return {
        "kpi": alert.kpi,
        "severity": alert.severity,
        "kind": alert.kind,
        "value": alert.value,
        "baseline": alert.baseline,
        "z": alert.z,
    }


def _subagent(usage: SubagentUsage) -> dict[str, Any]:
    tokens = usage.tokens
    return {
        "api_requests": usage.api_requests,
        "tool_calls": usage.tool_calls,
        "tokens": {
            "input": tokens.input,
            "output": tokens.output,
            "cache_read": tokens.cache_read,
            "cache_creation": tokens.cache_creation,
        },
        "cost_usd": usage.cost_usd,
    }
