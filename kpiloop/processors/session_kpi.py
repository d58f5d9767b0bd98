"""The streaming session processor: events in, one :class:`SessionSummary` per closed session out.

Sessions open on their first event and close on an explicit end, on an idle timeout measured on
*arrival* time (so backfilled data does not close sessions at once), when the open-session cap is
reached (the least recently active first), or when the caller closes them (end of replay input).
A closed session is remembered for a while: late events reopen it, and its next close emits a
cumulative summary with a higher ``close_count``. Empty sessions are counted, not emitted.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from kpiloop.model import Event, SessionEnd, SessionSummary, Source
from kpiloop.processors.base import LiveObserver, SummaryConsumer
from kpiloop.processors.pricing import PriceTable
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.processors.session_state import SessionState, decode_state, encode_state
from kpiloop.processors.usage import CallTokens
from kpiloop.types import AgentType, Clock, SessionId

log = logging.getLogger(__name__)

CLOSE_SESSION_END = "session_end"
CLOSE_IDLE = "idle_timeout"
CLOSE_END_OF_INPUT = "end_of_input"
CLOSE_EVICTED = "open_session_cap"


class EventOrigin(Protocol):
    """Whose session an item belongs to and its vocabulary, as an adapter resolved them."""

    @property
    def session_id(self) -> SessionId: ...

    @property
    def agent_type(self) -> AgentType: ...

    @property
    def source(self) -> Source: ...


@dataclass
class ProcessorStats:
    """Self-observation of the processor (exported as ``kpiloop_*`` metrics)."""

    events: int = 0
    closed_sessions: int = 0
    empty_sessions: int = 0
    reopened_sessions: int = 0
    late_events: int = 0
    stray_ends: int = 0
    duplicate_late_events: int = 0


class SessionKpiProcessor:
    """Keeps a :class:`SessionState` per open session and emits summaries to ``next_consumer``."""

    def __init__(
        self,
        next_consumer: SummaryConsumer,
        config: SessionKpiConfig,
        clock: Clock,
        observer: LiveObserver | None = None,
    ) -> None:
        self._next = next_consumer
        self._observer = observer
        self._config = config
        self._clock = clock
        self._open: dict[SessionId, SessionState] = {}
        self._closed: OrderedDict[SessionId, SessionState] = OrderedDict()
        self._warned_models: set[str] = set()
        self._prices = PriceTable(config.prices)
        self.stats = ProcessorStats()

    def start(self) -> None:
        """Nothing to start: the processor is driven by ``consume`` and ``expire``."""

    def shutdown(self) -> None:
        """Forget nothing silently: sessions still open stay open (the caller persists or closes them)."""

    def consume(self, event: Event) -> None:
        """Fold one event into its session; an explicit end closes the session."""
        self.stats.events += 1
        state = self._open.get(event.session_id)
        if state is None:
            state = self._reopen_or_open(event)
            if state is None:
                return
        state.update(event, self._clock.now())
        if isinstance(event, SessionEnd):
            self.close(event.session_id, CLOSE_SESSION_END)

    def fold_request(
        self,
        origin: EventOrigin,
        model: str,
        tokens: CallTokens,
        source_cost: float | None,
        ok: bool,
        start_ns: int,
        end_ns: int,
    ) -> bool:
        """Count an API call given as its parts, as :meth:`consume` counts an :class:`ApiCall` without
        request id or subagent, but only in a session already open and with no live observer
        waiting for the event; otherwise count nothing and return False (send the event instead)."""
        state = self._open.get(origin.session_id)
        if state is None or self._observer is not None:
            return False
        self.stats.events += 1
        state.arrive(origin.source, origin.agent_type, self._clock.now())
        state.add_request(model, tokens, source_cost, ok, start_ns, end_ns)
        return True

    def fold_tool_use(self, origin: EventOrigin, tool: str, ok: bool, start_ns: int, end_ns: int) -> bool:
        """Count a tool call given as its parts, as :meth:`consume` counts a :class:`ToolCall` without
        tool-use id, subagent, task status or denial, under the same conditions as :meth:`fold_request`."""
        state = self._open.get(origin.session_id)
        if state is None or self._observer is not None:
            return False
        self.stats.events += 1
        state.arrive(origin.source, origin.agent_type, self._clock.now())
        state.add_tool_use(tool, ok, start_ns, end_ns)
        return True

    def open_sessions(self) -> int:
        """How many sessions are open."""
        return len(self._open)

    def open_by_agent(self) -> dict[str, int]:
        """Open sessions per agent type."""
        counts: dict[str, int] = {}
        for state in self._open.values():
            counts[state.agent_type] = counts.get(state.agent_type, 0) + 1
        return counts

    def export_state(self) -> dict[str, Any]:
        """Every open and remembered closed session, as plain JSON data, for the next start."""
        return {
            "open": [encode_state(state) for state in self._open.values()],
            "closed": [encode_state(state) for state in self._closed.values()],
        }

    def import_state(self, data: dict[str, Any]) -> int:
        """Restore sessions saved by :meth:`export_state`; idle timers restart now. Returns how many
        open sessions were restored; a session that cannot be decoded is skipped with a warning."""
        now = self._clock.now()
        restored = 0
        for kind in ("closed", "open"):
            for item in data.get(kind, []):
                try:
                    state = decode_state(item, self._config, self._observer, self._prices)
                except (KeyError, TypeError, ValueError) as error:
                    log.warning("skipped a saved session that could not be restored: %r", error)
                    continue
                state.last_arrival = now
                if kind == "open":
                    self._open[state.session_id] = state
                    restored += 1
                else:
                    self._remember(state)
        return restored

    def expire(self) -> int:
        """Close every session idle past its timeout (arrival time); return how many closed."""
        now = self._clock.now()
        idle = [sid for sid, state in self._open.items() if now - state.last_arrival >= self._timeout(state)]
        for session_id in idle:
            self.close(session_id, CLOSE_IDLE)
        return len(idle)

    def close(self, session_id: SessionId, reason: str) -> SessionSummary | None:
        """Close one session and emit its summary; None when it was not open or was empty."""
        state = self._open.pop(session_id, None)
        if state is None:
            return None
        self._remember(state)
        self.stats.closed_sessions += 1
        if state.is_empty():
            self.stats.empty_sessions += 1
            if self._observer is not None:
                self._observer.session_empty()
            return None
        state.close_count += 1
        self._warn_unpriced(state)
        started = time.perf_counter()
        summary = state.summary(reason)
        self._next.consume(summary)
        if self._observer is not None:
            self._observer.session_closed(time.perf_counter() - started)
        return summary

    def close_all(self, reason: str = CLOSE_END_OF_INPUT) -> list[SessionSummary]:
        """Close every open session in the order of its last event, as they would have closed live."""
        order = sorted(self._open.values(), key=lambda s: (s.last_ns or 0, s.session_id))
        closed = (self.close(state.session_id, reason) for state in order)
        return [summary for summary in closed if summary is not None]

    def _reopen_or_open(self, event: Event) -> SessionState | None:
        """The state for an event of a session not open now; None when the event must be dropped."""
        if isinstance(event, SessionEnd):
            self.stats.stray_ends += 1  # an end for a session already closed (or never seen): no reopen
            return None
        closed = self._closed.get(event.session_id)
        if closed is not None and closed.adds_nothing(event):
            self.stats.duplicate_late_events += 1  # a late copy of something already counted
            return None
        return self._state_for(event.session_id)

    def _state_for(self, session_id: SessionId) -> SessionState:
        state = self._closed.pop(session_id, None)
        if state is not None:
            self.stats.reopened_sessions += 1
            self.stats.late_events += 1
            if self._observer is not None:
                self._observer.late_event()
        else:
            state = SessionState(session_id, self._config, self._observer, self._prices)
        if len(self._open) >= self._config.max_open_sessions:
            self._evict_least_recent()
        self._open[session_id] = state
        return state

    def _evict_least_recent(self) -> None:
        oldest = min(self._open.values(), key=lambda s: s.last_arrival)
        self.close(oldest.session_id, CLOSE_EVICTED)

    def _remember(self, state: SessionState) -> None:
        if self._config.max_closed_sessions == 0:
            return
        self._closed[state.session_id] = state
        while len(self._closed) > self._config.max_closed_sessions:
            self._closed.popitem(last=False)

    def _timeout(self, state: SessionState) -> float:
        expects_end = "claude_code" in state.sources or state.saw_start_hook
        return self._config.end_signal_idle_timeout if expects_end else self._config.idle_timeout

    def _warn_unpriced(self, state: SessionState) -> None:
        for model in sorted(state.unpriced_models - self._warned_models):
            self._warned_models.add(model)
            log.warning(
                "no price for model %r: cost_usd is null for its sessions; add it to processors.session_kpi.prices",
                model,
            )
