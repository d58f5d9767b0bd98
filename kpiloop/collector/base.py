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
