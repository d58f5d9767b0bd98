"""Adapters: records in any vocabulary → events. They dispatch on span and event names (and on
attribute shape for GenAI), whatever the ``service.name``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from kpiloop.collector.adapters import claude_code
from kpiloop.collector.adapters.common import (
    SESSION_END_NAMES,
    Origin,
    OriginCache,
    evaluation_event,
    is_evaluation,
)
from kpiloop.collector.adapters.genai import genai_span_events, is_genai_span
from kpiloop.collector.adapters.hook import HOOK_EVENT, hook_events
from kpiloop.collector.adapters.plan import PLAN_SPANS, plan_span_events
from kpiloop.collector.records import Attributes, DataPointRecord, LogRecord, SpanRecord
from kpiloop.errors import InputError
from kpiloop.identity import DEFAULT_AGENT_TYPE
from kpiloop.model import Event, SessionEnd, Source
from kpiloop.types import AgentType


@dataclass
class AdapterStats:
    """What the adapter saw but could not use: counted, never raised."""

    unattributed: int = 0
    ignored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class EventAdapter:
    """Turns records into events; one instance per pipeline (its stats are that pipeline's)."""

    def __init__(self, default_agent_type: AgentType = DEFAULT_AGENT_TYPE, source: Source = "otlp") -> None:
        self._origins = OriginCache(default_agent_type, source)
        self._claude = claude_code.ClaudeCodeCorrelator()
        self.stats = AdapterStats()

    def from_span(self, span: SpanRecord) -> list[Event]:
        """Events for one span; raises InputError for a span with unusable values."""
        origin = self._origin(span.attributes, span.resource)
        if origin is None:
            return []
        events: list[Event] = []
        if span.name in PLAN_SPANS:
            events = plan_span_events(span, self._origins.relabelled(origin, "plan"))
        elif span.name in SESSION_END_NAMES:
            events = [_session_end(origin, span.end_ns, span.attributes.get("session.end.reason"))]
        elif span.name.startswith(claude_code.PREFIX):
            events = self._claude.events(span, origin)
        elif is_genai_span(span):
            events = genai_span_events(span, self._origins.relabelled(origin, "genai"))
        for span_event in span.events:
            if is_evaluation(span_event.name, span_event.attributes):
                events.append(evaluation_event(origin, span_event.time_ns, span_event.attributes))
        return self._counted(events)

    def plan_origin(self, attributes: Attributes, resource: Attributes) -> Origin | None:
        """The origin of one of the plan's hook spans, re-labelled ``plan`` (as :meth:`from_span`
        gives its events); None when it names no session, counted by nothing here: the span is
        for :meth:`from_span` then."""
        return self._origins.labelled(attributes, resource, "plan")

    def from_log(self, log: LogRecord) -> list[Event]:
        """Events for one log record: evaluation results, session ends, forwarded hook payloads and
        Claude Code's events."""
        origin = self._origin(log.attributes, log.resource)
        if origin is None:
            return []
        name = log_name(log)
        if is_evaluation(name, log.attributes):
            return [evaluation_event(origin, log.time_ns, log.attributes)]
        if name in SESSION_END_NAMES:
            return [_session_end(origin, log.time_ns, log.attributes.get("reason"))]
        if name == HOOK_EVENT:
            return self._counted(hook_events(log, origin))
        if isinstance(log.body, str) and log.body.startswith(claude_code.PREFIX):
            return self._counted(self._claude.log_events(log.body.removeprefix(claude_code.PREFIX), log, origin))
        if origin.source == "claude_code" and name is not None:
            return self._counted(self._claude.log_events(name.removeprefix(claude_code.PREFIX), log, origin))
        return self._counted([])

    def from_point(self, point: DataPointRecord) -> list[Event]:
        """Events for one metric data point (Claude Code's ``claude_code.*`` metrics)."""
        origin = self._origin(point.attributes, point.resource)
        if origin is None:
            return []
        if point.metric.startswith(claude_code.PREFIX):
            return self._counted(claude_code.metric_events(point, origin))
        return self._counted([])

    def reject(self, error: InputError) -> None:
        """Count an item whose values were unusable."""
        self.stats.rejected[error.reason] += 1

    def _origin(self, attributes: Attributes, resource: Attributes) -> Origin | None:
        origin = self._origins.origin(attributes, resource)
        if origin is None:
            self.stats.unattributed += 1
        return origin

    def _counted(self, events: list[Event]) -> list[Event]:
        if not events:
            self.stats.ignored += 1
        return events


def log_name(log: LogRecord) -> str | None:
    """The record's event name: the OTLP field, the ``event.name`` attribute, else a string body."""
    if log.event_name:
        return log.event_name
    name = log.attributes.get("event.name")
    if isinstance(name, str) and name:
        return name
    return log.body if isinstance(log.body, str) else None


def _session_end(origin: Origin, time_ns: int, reason: object) -> SessionEnd:
    return SessionEnd(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=time_ns,
        end_ns=time_ns,
        source=origin.source,
        reason=reason if isinstance(reason, str) else None,
    )
