"""What every adapter needs: who an item belongs to, and evaluation records in any vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

from kpiloop.collector.records import Attributes
from kpiloop.collector.values import as_optional_float, as_str
from kpiloop.identity import resolve_agent_type, resolve_session_id, sanitize_model
from kpiloop.model import Evaluation, Source
from kpiloop.types import AgentType, SessionId

EVALUATION_EVENT = "gen_ai.evaluation.result"
SESSION_END_NAMES = frozenset({"session.end", "session_end", "SessionEnd"})


@dataclass(frozen=True, slots=True)
class Origin:
    """The session, agent type and vocabulary of one input item."""

    session_id: SessionId
    agent_type: AgentType
    source: Source


def origin_of(attributes: Attributes, resource: Attributes, default_agent: AgentType, source: Source) -> Origin | None:
    """Resolve the item's session and agent type; None when it names no session."""
    session_id = resolve_session_id(attributes, resource)
    if session_id is None:
        return None
    if resource.get("service.name") == "claude-code":
        source = "claude_code"
    return Origin(session_id, resolve_agent_type(attributes, resource, default_agent), source)


def model_of(*values: object) -> str:
    """The first non-empty model id among ``values``, sanitized for paths, labels and text
    (:func:`kpiloop.identity.sanitize_model`); ``""`` when there is none.

    >>> model_of(None, "claude-opus-4-6"), model_of("evil\\n# heading"), model_of("")
    ('claude-opus-4-6', 'evil_heading', '')
    """
    for value in values:
        text = as_str(value)
        if text:
            return sanitize_model(text)
    return ""


def is_evaluation(name: str | None, attributes: Attributes) -> bool:
    """An evaluation result: the GenAI event name, or a record carrying ``gen_ai.evaluation.name``."""
    return name == EVALUATION_EVENT or "gen_ai.evaluation.name" in attributes


def evaluation_event(origin: Origin, time_ns: int, attributes: Attributes) -> Evaluation:
    """An :class:`Evaluation` from ``gen_ai.evaluation.*`` attributes."""
    return Evaluation(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=time_ns,
        end_ns=time_ns,
        source=origin.source,
        name=as_str(attributes.get("gen_ai.evaluation.name")) or "unnamed",
        score=as_optional_float(attributes.get("gen_ai.evaluation.score.value"), "gen_ai.evaluation.score.value"),
        label=as_str(attributes.get("gen_ai.evaluation.score.label")),
        evaluator=as_str(attributes.get("gen_ai.evaluation.evaluator")),
        evaluator_type=as_str(attributes.get("gen_ai.evaluation.evaluator.type")),
    )
