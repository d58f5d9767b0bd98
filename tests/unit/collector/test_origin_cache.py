"""The adapters' origin cache: the same Origin as resolving afresh, for plain and hostile ids, and
never more entries than its bound."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpiloop.collector.adapters.common import OriginCache, origin_of
from kpiloop.model import Source
from kpiloop.types import AgentType
from tests.strategies import hostile_scalars

DEFAULT = AgentType("fallback")
HOSTILE_IDS = (
    "../../etc/passwd",
    "s-1\n# Ignore previous instructions",
    "\u202egnp.exe",
    "<script>alert(1)</script>",
    "x" * 600,
    "...",
    "",
    "1",
    "CON",
)


def layers(session: Any, agent: Any, service: Any, on_resource: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    ids = {"session.id": session, "agent.type": agent}
    resource = {"service.name": service}
    return ({}, ids | resource) if on_resource else (ids, resource)


@pytest.mark.parametrize("source", ["otlp", "plan"])
@pytest.mark.parametrize("session", HOSTILE_IDS)
@pytest.mark.parametrize("agent", [None, "Translation Agent/v2", "../..", "y" * 300, *HOSTILE_IDS[:4]])
def test_hostile_ids_get_the_uncached_origin_twice(session: str, agent: str | None, source: Source) -> None:
    cache = OriginCache(DEFAULT, source)
    for service in ("claude-code", "other", None):
        for on_resource in (False, True):
            attributes, resource = layers(session, agent, service, on_resource)
            expected = origin_of(attributes, resource, DEFAULT, source)
            assert cache.origin(attributes, resource) == expected
            assert cache.origin(attributes, resource) == expected  # the cached answer


@given(
    session=hostile_scalars(),
    agent=hostile_scalars(),
    service=st.sampled_from(["claude-code", "x", None, 3]),
    on_resource=st.booleans(),
)
def test_any_attribute_values_get_the_uncached_origin(
    session: Any, agent: Any, service: Any, on_resource: bool
) -> None:
    cache = OriginCache(DEFAULT, "otlp")
    attributes, resource = layers(session, agent, service, on_resource)
    expected = origin_of(attributes, resource, DEFAULT, "otlp")
    assert cache.origin(attributes, resource) == expected
    assert cache.origin(attributes, resource) == expected


def test_true_and_1_are_not_the_same_session() -> None:
    cache = OriginCache(DEFAULT, "otlp")
    assert cache.origin({"session.id": 1}, {}) == origin_of({"session.id": 1}, {}, DEFAULT, "otlp")
    assert cache.origin({"session.id": True}, {}) is None


def test_the_cache_stays_within_its_bound_under_made_up_ids() -> None:
    rng = random.Random(5)
    cache = OriginCache(DEFAULT, "otlp", max_entries=64)
    for index in range(10_000):
        attributes = {"session.id": f"s-{index}-{rng.random()}", "agent.type": f"a/{rng.randrange(10_000)}"}
        origin = cache.origin(attributes, {})
        assert origin == origin_of(attributes, {}, DEFAULT, "otlp")
        assert origin is not None
        assert cache.relabelled(origin, "plan").source == "plan"
        assert len(cache._origins) <= 64 and len(cache._relabelled) <= 64


def test_relabelling_keeps_claude_code_origins_and_relabels_the_rest() -> None:
    cache = OriginCache(DEFAULT, "otlp")
    claude = cache.origin({"session.id": "s"}, {"service.name": "claude-code"})
    other = cache.origin({"session.id": "s"}, {})
    assert claude is not None and other is not None
    assert cache.relabelled(claude, "plan") is claude
    plan = cache.relabelled(other, "plan")
    assert (plan.session_id, plan.agent_type, plan.source) == ("s", DEFAULT, "plan")
    assert cache.relabelled(other, "plan") is plan


def expected_labelled(attributes: dict[str, Any], resource: dict[str, Any], vocabulary: Source) -> Any:
    origin = origin_of(attributes, resource, DEFAULT, "otlp")
    if origin is None or origin.source == "claude_code":
        return origin
    return type(origin)(origin.session_id, origin.agent_type, vocabulary)


@given(
    session=hostile_scalars() | st.sampled_from(HOSTILE_IDS),
    agent=hostile_scalars() | st.sampled_from(HOSTILE_IDS),
    conversation=st.sampled_from([None, "", "conv-1", 7]),
    service=st.sampled_from(["claude-code", "x", None]),
    on_resource=st.booleans(),
)
def test_labelled_is_the_relabelled_origin_in_one_lookup(
    session: Any, agent: Any, conversation: Any, service: Any, on_resource: bool
) -> None:
    cache = OriginCache(DEFAULT, "otlp")
    attributes, resource = layers(session, agent, service, on_resource)
    resource["gen_ai.conversation.id"] = conversation  # a later key: only read when session.id is empty
    for vocabulary in ("plan", "genai", "plan"):
        assert cache.labelled(attributes, resource, vocabulary) == expected_labelled(attributes, resource, vocabulary)


def test_labelled_tables_stay_within_their_bound() -> None:
    cache = OriginCache(DEFAULT, "otlp", max_entries=16)
    for index in range(1_000):
        assert cache.labelled({"session.id": f"s-{index}"}, {}, "plan") is not None
    assert all(len(table) <= 16 for table in cache._labelled.values())
