from __future__ import annotations

import random

from kpiloop.model import ApiCall
from kpiloop.processors.pricing import PriceTable, call_cost
from kpiloop.processors.session_kpi_config import DEFAULT_PRICES
from kpiloop.types import AgentType, SessionId


def test_price_table_costs_exactly_what_call_cost_does():
    rng = random.Random(7)
    table = PriceTable(DEFAULT_PRICES)
    models = [*DEFAULT_PRICES, "claude-sonnet-4-5-20250929", "no-such-model", ""]
    for _ in range(2_000):
        call = ApiCall(
            session_id=SessionId("s"),
            agent_type=AgentType("a"),
            start_ns=1,
            end_ns=2,
            source="plan",
            model=rng.choice(models),
            input_tokens=rng.choice([0, rng.randint(0, 10**7)]),
            output_tokens=rng.choice([0, rng.randint(0, 10**6)]),
            cache_read_tokens=rng.choice([0, rng.randint(0, 10**8)]),
            cache_write_5m_tokens=rng.choice([0, rng.randint(0, 10**6)]),
            cache_write_1h_tokens=rng.choice([0, rng.randint(0, 10**6)]),
            cost_usd=rng.choice([None, None, 0.5]),
        )
        assert table.cost(call) == call_cost(call, DEFAULT_PRICES)


def test_a_model_without_a_price_stays_unpriced_when_remembered():
    table = PriceTable(DEFAULT_PRICES)
    assert table.find("no-such-model") is None
    assert table.find("no-such-model") is None
    assert table.find("claude-opus-4-1-20250805") == DEFAULT_PRICES["claude-opus-4-1"]
