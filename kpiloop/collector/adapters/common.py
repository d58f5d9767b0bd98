"""What every adapter needs: who an item belongs to, and evaluation records in any vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

from kpiloop.collector.records import Attributes
from kpiloop.collector.values import as_optional_float, as_str
from kpiloop.identity import (
    MAX_AGENT_TYPE_LEN,
    MAX_SESSION_ID_LEN,
    raw_agent_type,
    raw_session_id,
    resolve_agent_type,
    resolve_session_id,
    sanitize_agent_type,
    sanitize_model,
    sanitize_session_id,
)
from kpiloop.model import Evaluation, Source
from kpiloop.types import AgentType, SessionId

EVALUATION_EVENT = "gen_ai.evaluation.result"
SESSION_END_NAMES = frozenset({"session.end", "session_end", "SessionEnd"})
ORIGIN_CACHE_SIZE = 4096
"""Origins an :class:`OriginCache` keeps (per kind) before it starts over: more than the sessions a
receiver sees at once, so a session's items resolve their origin once, not once per item."""


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


class OriginCache:
    """:func:`origin_of` and its re-labelled copies, remembered per raw session id, raw agent type
    and Claude Code-or-not: the same few values repeat on every item of a session. Only string ids
    of a sane length are remembered (others resolve uncached); each table is emptied when it
    reaches ``max_entries``, so made-up ids cost memory for at most that many entries."""

    def __init__(self, default_agent: AgentType, source: Source, max_entries: int = ORIGIN_CACHE_SIZE) -> None:
        self._default = default_agent
        self._source = source
        self._max = max_entries
        self._origins: dict[_Key, Origin | None] = {}
        self._relabelled: dict[tuple[str, str, Source], Origin] = {}
        self._labelled: dict[Source, dict[_Key, Origin | None]] = {}

    def origin(self, attributes: Attributes, resource: Attributes) -> Origin | None:
        """The same as ``origin_of(attributes, resource, default_agent, source)``."""
        key = _key(attributes, resource)
        if key is None:
            return origin_of(attributes, resource, self._default, self._source)
        try:
            return self._origins[key]
        except KeyError:
            origin = _resolved(key, self._default, self._source)
        return self._remember(self._origins, key, origin)

    def labelled(self, attributes: Attributes, resource: Attributes, vocabulary: Source) -> Origin | None:
        """The same as ``relabelled(origin(attributes, resource), vocabulary)`` (None for no
        session), in one lookup."""
        key = _key(attributes, resource)
        table = self._labelled.setdefault(vocabulary, {})
        if key is not None and key in table:
            return table[key]
        origin = self.origin(attributes, resource)
        found = None if origin is None else self.relabelled(origin, vocabulary)
        return found if key is None else self._remember(table, key, found)

    def relabelled(self, origin: Origin, vocabulary: Source) -> Origin:
        """``origin`` re-labelled with the vocabulary that matched, unless it is Claude Code's own."""
        if origin.source == "claude_code":
            return origin
        key = (origin.session_id, origin.agent_type, vocabulary)
        found = self._relabelled.get(key)
        if found is None:
            found = Origin(origin.session_id, origin.agent_type, vocabulary)
            if len(self._relabelled) >= self._max:
                self._relabelled.clear()
            self._relabelled[key] = found
        return found

    def _remember(self, table: dict[_Key, Origin | None], key: _Key, origin: Origin | None) -> Origin | None:
        if len(table) >= self._max:
            table.clear()
        table[key] = origin
        return origin


_Key = tuple[str, str | None, bool]
"""Raw session id, raw agent type (None for none), and whether the item is Claude Code's."""


def _key(attributes: Attributes, resource: Attributes) -> _Key | None:
    """The cache key of an item's origin; None when its ids are not strings of a sane length.
    Reads ``session.id`` and ``agent.type`` from the item's attributes first: where they nearly
    always are, and what :func:`raw_session_id` and :func:`raw_agent_type` would return."""
    session = attributes.get("session.id")
    if type(session) is not str or not session:
        session = raw_session_id(attributes, resource)
    agent = attributes.get("agent.type")
    if type(agent) is not str or not agent:
        agent = raw_agent_type(attributes, resource)
    if type(session) is not str or len(session) > 4 * MAX_SESSION_ID_LEN:
        return None
    if agent is not None and (type(agent) is not str or len(agent) > 4 * MAX_AGENT_TYPE_LEN):
        return None
    return session, agent, resource.get("service.name") == "claude-code"


def _resolved(key: _Key, default_agent: AgentType, source: Source) -> Origin | None:
    session, agent, claude = key
    session_id = sanitize_session_id(session)
    if session_id is None:
        return None
    return Origin(session_id, sanitize_agent_type(agent, default_agent), "claude_code" if claude else source)


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
