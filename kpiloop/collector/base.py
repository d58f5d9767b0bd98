"""Role contracts of the collector: receivers feed events to an injected consumer."""

from __future__ import annotations

from typing import Protocol

from kpiloop.model import Event


class EventConsumer(Protocol):
    """The next stage after a receiver (the session processor, or a test's ``ListSink``)."""

    def consume(self, event: Event) -> None: ...


class Receiver(Protocol):
    """A source of events with a lifecycle: ``start()`` then ``shutdown()`` (safe to call twice)."""

    def start(self) -> None: ...

    def shutdown(self) -> None: ...


class SelfMetrics(Protocol):
    """Where receivers count what they took and what they refused (``kpiloop_*_items_total``)."""

    def received(self, receiver: str, signal: str, count: int) -> None: ...

    def refused(self, receiver: str, signal: str, reason: str, count: int) -> None: ...
