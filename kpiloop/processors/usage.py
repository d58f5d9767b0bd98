"""Running spend of a session (or of one subagent): requests, tokens by type, cost, models."""

from __future__ import annotations

from typing import Any

from kpiloop.model import ApiCall, SubagentUsage, TokenCounts, UsageMetric

TOKEN_TYPES = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
MAX_MODELS = 32

CallTokens = tuple[int, int, int, int, int]
"""One call's tokens in :data:`TOKEN_TYPES` order: input, output, cache read, cache write 5m and 1h."""


def call_tokens(call: ApiCall) -> CallTokens:
    """``call``'s tokens in :data:`TOKEN_TYPES` order."""
    return (
        call.input_tokens,
        call.output_tokens,
        call.cache_read_tokens,
        call.cache_write_5m_tokens,
        call.cache_write_1h_tokens,
    )


class Usage:
    """Counters fed by API calls or by usage metrics; ``cost_usd()`` is None once any spend was unpriced."""

    def __init__(self) -> None:
        self.requests = 0
        self.tool_calls = 0
        self._tokens = dict.fromkeys(TOKEN_TYPES, 0)
        self._cost = 0.0
        self._unpriced = 0
        self.cost_from_source = False
        self._model_tokens: dict[str, int] = {}

    def add_call(self, call: ApiCall, cost: float | None) -> None:
        """Fold in one API call and its cost (None when it could not be priced)."""
        self.add_tokens(call.model, call_tokens(call), cost, call.cost_usd is not None)

    def add_tokens(self, model: str, tokens: CallTokens, cost: float | None, from_source: bool) -> None:
        """Fold in one API call given as its model, tokens and cost (None when it could not be
        priced); ``from_source`` when the cost is the source's own figure."""
        self.requests += 1
        counts = self._tokens
        uncached, output, read, write_5m, write_1h = tokens
        counts["input"] += uncached
        counts["output"] += output
        counts["cache_read"] += read
        counts["cache_write_5m"] += write_5m
        counts["cache_write_1h"] += write_1h
        self._add_cost(cost, from_source)
        self._add_model(model, uncached + output + read + write_5m + write_1h)

    def add_metric(self, sample: UsageMetric, increment: float) -> None:
        """Fold in one usage-metric increment (tokens of one type, or USD when ``token_type`` is None)."""
        if sample.token_type is None:
            self._add_cost(increment, from_source=True)
            return
        if sample.token_type in self._tokens:
            self._tokens[sample.token_type] += round(increment)
            self._add_model(sample.model, round(increment))

    def tokens_total(self) -> int:
        """All tokens of every type."""
        return sum(self._tokens.values())

    def token_counts(self) -> TokenCounts:
        """Token totals by type."""
        return TokenCounts(**self._tokens)

    def cost_usd(self) -> float | None:
        """Total USD, or None when some spend had no price."""
        return self._cost if not self._unpriced else None

    def correct_cost(self, cost: float) -> None:
        """An unpriced call's cost became known (its source's figure arrived on another signal)."""
        if self._unpriced:
            self._unpriced -= 1
        self._add_cost(cost, from_source=True)

    def primary_model(self) -> str:
        """The model that moved the most tokens (ties: the first name in sort order); "unknown" for none."""
        if not self._model_tokens:
            return "unknown"
        return min(self._model_tokens, key=lambda model: (-self._model_tokens[model], model))

    def subagent_usage(self) -> SubagentUsage:
        """This usage as a subagent's share of its parent session."""
        return SubagentUsage(self.requests, self.token_counts(), self.cost_usd(), self.tool_calls)

    def to_state(self) -> dict[str, Any]:
        """Plain data for :meth:`from_state`."""
        return {
            "requests": self.requests,
            "tool_calls": self.tool_calls,
            "tokens": dict(self._tokens),
            "cost": self._cost,
            "unpriced": self._unpriced,
            "cost_from_source": self.cost_from_source,
            "model_tokens": dict(self._model_tokens),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Usage:
        """Rebuild from :meth:`to_state` output."""
        usage = cls()
        usage.requests, usage.tool_calls = int(data["requests"]), int(data["tool_calls"])
        usage._tokens = {name: int(data["tokens"][name]) for name in TOKEN_TYPES}
        usage._cost, usage._unpriced = float(data["cost"]), int(data["unpriced"])
        usage.cost_from_source = bool(data["cost_from_source"])
        usage._model_tokens = {str(k): int(v) for k, v in data["model_tokens"].items()}
        return usage

    def _add_cost(self, cost: float | None, from_source: bool) -> None:
        if cost is None:
            self._unpriced += 1
            return
        self._cost += cost
        self.cost_from_source |= from_source

    def _add_model(self, model: str, tokens: int) -> None:
        if not model:
            return
        if model not in self._model_tokens and len(self._model_tokens) >= MAX_MODELS:
            model = "other"
        self._model_tokens[model] = self._model_tokens.get(model, 0) + tokens
