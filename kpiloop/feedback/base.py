"""Role contracts of the feedback stage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class FeedbackObserver(Protocol):
    """Told what feedback concluded, for metrics (``agent_performance_baseline``, ``..._incidents_total``,
    ``agent_performance_suggestions``)."""

    def baseline_updated(self, agent_type: str, kpi: str, center: float, scale: float) -> None: ...

    def incident(self, agent_type: str, kpi: str) -> None: ...

    def suggestions_counted(self, agent_type: str, counts: Mapping[str, int]) -> None: ...
