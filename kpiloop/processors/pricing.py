"""The cost of one API call: the source's own figure, else the configured price table."""

from __future__ import annotations

from collections.abc import Mapping

from kpiloop.model import ApiCall
from kpiloop.processors.session_kpi_config import ModelPrice

PER_MILLION = 1_000_000


def find_price(model: str, prices: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The price whose key is the longest prefix of ``model``; None when no key matches."""
    best = max((key for key in prices if model.startswith(key)), key=len, default=None)
    return prices[best] if best is not None else None


def call_cost(call: ApiCall, prices: Mapping[str, ModelPrice]) -> float | None:
    """USD of one call: ``cost_usd`` when the source sent it; 0 for a call that used no tokens;
    else tokens × the model's price; None for a model without a price."""
    if call.cost_usd is not None:
        return call.cost_usd
    tokens = (
        call.input_tokens,
        call.output_tokens,
        call.cache_read_tokens,
        call.cache_write_5m_tokens,
        call.cache_write_1h_tokens,
    )
    if not any(tokens):
        return 0.0
    price = find_price(call.model, prices)
    if price is None:
        return None
    rates = (price.input, price.output, price.cache_read, price.cache_write_5m, price.cache_write_1h)
    return sum(count * rate for count, rate in zip(tokens, rates, strict=True)) / PER_MILLION
