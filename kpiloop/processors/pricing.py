"""The cost of one API call: the source's own figure, else the configured price table."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kpiloop.model import ApiCall
from kpiloop.processors.session_kpi_config import ModelPrice
from kpiloop.processors.usage import CallTokens, call_tokens

PER_MILLION = 1_000_000


def find_price(model: str, prices: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The price whose key is the longest prefix of ``model``; None when no key matches."""
    best = max((key for key in prices if model.startswith(key)), key=len, default=None)
    return prices[best] if best is not None else None


MAX_REMEMBERED_MODELS = 256


class PriceTable:
    """The price table, remembering which key each model id matched (a handful of ids recur on
    every call, so the prefix search runs once per id, not once per call)."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = prices
        self._found: dict[str, ModelPrice | None] = {}

    def find(self, model: str) -> ModelPrice | None:
        """:func:`find_price` of ``model``."""
        try:
            return self._found[model]
        except KeyError:
            if len(self._found) >= MAX_REMEMBERED_MODELS:
                self._found.clear()
            price = self._found[model] = find_price(model, self._prices)
            return price

    def cost(self, call: ApiCall) -> float | None:
        """:func:`call_cost` of ``call``."""
        return tokens_cost(call.model, call_tokens(call), call.cost_usd, self.find)


def call_cost(call: ApiCall, prices: Mapping[str, ModelPrice]) -> float | None:
    """USD of one call: ``cost_usd`` when the source sent it; 0 for a call that used no tokens;
    else tokens × the model's price; None for a model without a price."""
    return tokens_cost(call.model, call_tokens(call), call.cost_usd, lambda model: find_price(model, prices))


def tokens_cost(
    model: str, tokens: CallTokens, source_cost: float | None, lookup: Callable[[str], ModelPrice | None]
) -> float | None:
    """USD of one call given as its parts (see :func:`call_cost`); ``lookup`` finds a model's price."""
    if source_cost is not None:
        return source_cost
    uncached, output, read, write_5m, write_1h = tokens
    if not (uncached or output or read or write_5m or write_1h):
        return 0.0
    price = lookup(model)
    if price is None:
        return None
    return (
        uncached * price.input
        + output * price.output
        + read * price.cache_read
        + write_5m * price.cache_write_5m
        + write_1h * price.cache_write_1h
    ) / PER_MILLION
