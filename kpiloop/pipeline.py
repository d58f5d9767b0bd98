"""Wiring: the only module (beside cli.py) that imports concrete components and connects them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.jsonl_replay import JsonlReplay, LineProblem
from kpiloop.config import KpiloopConfig
from kpiloop.exporters.console import SummaryTable
from kpiloop.exporters.history import HistoryWriter
from kpiloop.model import SessionSummary
from kpiloop.processors.base import SummaryConsumer
from kpiloop.processors.known_sessions import SkipKnownSessions
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.types import AgentType, Clock


class FanOut:
    """Hands each summary to every sink in order."""

    def __init__(self, sinks: Sequence[SummaryConsumer]) -> None:
        self._sinks = list(sinks)

    def consume(self, summary: SessionSummary) -> None:
        """Pass ``summary`` to every sink."""
        for sink in self._sinks:
            sink.consume(summary)


@dataclass
class ReplayPipeline:
    """A replay's components, connected: receiver → processor → (skip known) → history + table."""

    receiver: JsonlReplay
    adapter: EventAdapter
    processor: SessionKpiProcessor
    history: HistoryWriter
    table: SummaryTable

    def run(self) -> None:
        """Replay all input, then close every session still open (end of input)."""
        self.receiver.run()
        self.processor.close_all()
        self.processor.shutdown()
        self.history.shutdown()


def build_replay_pipeline(
    config: KpiloopConfig,
    paths: Sequence[str],
    data_dir: Path,
    clock: Clock,
    on_problem: Callable[[LineProblem], None],
    *,
    force: bool = False,
    agent_type: AgentType | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayPipeline:
    """Connect a replay of ``paths`` into ``data_dir``; ``force`` re-records sessions already in history."""
    settings = config.processors.session_kpi
    if agent_type is not None:
        settings = settings.model_copy(update={"default_agent_type": agent_type})
    history = HistoryWriter(data_dir)
    history.start()
    table = SummaryTable()
    sinks: SummaryConsumer = FanOut([history, table])
    if not force:
        known_before = history.session_ids()
        sinks = SkipKnownSessions(sinks, known_before.__contains__, table.skipped)
    processor = SessionKpiProcessor(sinks, settings, clock)
    adapter = EventAdapter(AgentType(settings.default_agent_type))
    receiver = JsonlReplay(paths, processor, adapter, on_problem, on_progress)
    return ReplayPipeline(receiver, adapter, processor, history, table)
