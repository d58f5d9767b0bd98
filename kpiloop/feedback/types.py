"""Data shared by the feedback parts: baselines, and the history the feedback stage keeps in view."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

BaselineStatus = Literal["bootstrap", "converged", "plan"]


@dataclass(frozen=True, slots=True)
class KpiBaseline:
    """One KPI's baseline.

    ``center``/``scale`` are the robust median and 1.4826·MAD (floored at the KPI's minimum
    scale) on the KPI's transformed scale; ``mean``, ``std_dev``, ``p50``, ``p95``, ``p99`` are on
    the KPI's own scale, as in the plan's files. ``raw`` baselines (a plan-format file, or the
    plan's bootstrap defaults) compare on the KPI's own scale with ``mean``/``std_dev`` instead.
    """

    mean: float
    std_dev: float
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    center: float | None = None
    scale: float | None = None
    count: int = 0
    status: BaselineStatus = "converged"
    low_confidence: bool = False
    raw: bool = False


@dataclass(frozen=True, slots=True)
class Baseline:
    """All KPI baselines of one agent type (and model)."""

    agent_type: str
    model: str | None
    session_count: int
    kpis: Mapping[str, KpiBaseline]
    method: str = "robust"
    last_updated: str = ""
    version: str = "1.0.0"
    bootstrap_threshold: int = 5
    window: int = 100
    cusum: Mapping[str, float] = field(default_factory=dict)

    @property
    def status(self) -> BaselineStatus:
        """bootstrap below the threshold, plan for a plan-format file, else converged."""
        if self.method == "plan":
            return "plan"
        return "bootstrap" if self.session_count < self.bootstrap_threshold else "converged"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One closed session as feedback remembers it (the latest revision of its history line)."""

    session_id: str
    date: str
    agent_type: str
    model: str
    kpis: Mapping[str, float | None]
    baselines: Mapping[str, float] = field(default_factory=dict)
    critical_kpis: frozenset[str] = frozenset()
    threshold_kpis: frozenset[str] = frozenset()
