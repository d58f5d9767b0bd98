"""What every network receiver does with a decoded request: adapt its items to events, count what
could not be used, and hand the events to the bounded ingest queue in one piece.

The queue is the only thing receivers and the session processor share. A request is accepted
whole or refused whole (the queue is full, or the service is stopping): when a sender is told
"accepted", its events are in the queue and will be processed.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.base import SelfMetrics
from kpiloop.collector.records import DataPointRecord, LogRecord, SpanRecord
from kpiloop.errors import InputError
from kpiloop.model import Event

Record = SpanRecord | LogRecord | DataPointRecord
_NEVER = sys.maxsize


class Overloaded(Exception):
    """The ingest queue cannot take the request now; the sender should retry later."""

    def __init__(self, message: str, retry_after: float, stopping: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.stopping = stopping


class EventQueue:
    """A bounded queue of event batches, counted in events, safe across threads.

    The consumer takes everything queued at once (:meth:`get_all`), then may :meth:`settle`: wait a
    little for more to collect, woken early only when the queue is half full, refuses a batch, or
    closes. So it wakes once per many small requests instead of once per request: on the receivers'
    core each wake-up costs a GIL hand-off and context switches worth more than a small request's
    own processing. :meth:`put` signals only a consumer that is waiting for what it brings.
    """

    def __init__(self, max_events: int) -> None:
        self._batches: deque[list[Event]] = deque()
        self._size = 0
        self._max = max_events
        self._closed = False
        self._cond = threading.Condition(threading.Lock())
        self._wake_at = _NEVER
        """Queued events at which :meth:`put` wakes the consumer (set only while it waits)."""

    def put(self, batch: list[Event]) -> None:
        """Enqueue ``batch`` whole, or raise :class:`Overloaded` without enqueuing any of it."""
        with self._cond:
            if self._closed:
                raise Overloaded("kpiloop is shutting down", retry_after=5.0, stopping=True)
            if self._size and self._size + len(batch) > self._max:
                self._cond.notify()  # a settling consumer starts now, so the retry finds room
                raise Overloaded(f"ingest queue full ({self._size} events waiting)", retry_after=1.0)
            self._batches.append(batch)
            self._size += len(batch)
            if self._size >= self._wake_at:
                self._cond.notify()

    def get(self, timeout: float) -> list[Event] | None:
        """The next batch, waiting up to ``timeout`` seconds; None when there is none."""
        with self._cond:
            if not self._batches:
                self._wait(1, timeout)
            if not self._batches:
                return None
            batch = self._batches.popleft()
            self._size -= len(batch)
            return batch

    def get_all(self, timeout: float) -> list[list[Event]] | None:
        """Every queued batch, oldest first, waiting up to ``timeout`` seconds for one ([] when none
        came); None once the queue is closed and empty, so nothing accepted is left behind."""
        with self._cond:
            if not self._batches and not self._closed:
                self._wait(1, timeout)
            if not self._batches:
                return None if self._closed else []
            batches = list(self._batches)
            self._batches.clear()
            self._size = 0
            return batches

    def settle(self, seconds: float) -> None:
        """Wait up to ``seconds`` for batches to collect; return early once the queue is half full,
        a batch is refused for want of room, or the queue closes."""
        with self._cond:
            half = max(1, self._max // 2)
            if self._size < half and not self._closed:
                self._wait(half, seconds)

    def close(self) -> None:
        """Refuse further batches; those already queued can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def depth(self) -> int:
        """Events waiting."""
        return self._size

    def _wait(self, wake_at: int, timeout: float) -> None:
        """Wait (lock held) until a put brings the queue to ``wake_at`` events, or ``timeout``."""
        self._wake_at = wake_at
        try:
            self._cond.wait(timeout)
        finally:
            self._wake_at = _NEVER


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one request's items."""

    accepted: int
    rejected: int
    message: str = ""


class Ingest:
    """Adapts decoded items to events for one receiver and enqueues them."""

    def __init__(self, receiver: str, adapter: EventAdapter, queue: EventQueue, metrics: SelfMetrics) -> None:
        self._receiver = receiver
        self._adapter = adapter
        self._queue = queue
        self._metrics = metrics
        self._lock = threading.Lock()

    def submit(self, signal: str, items: Iterable[Record | InputError]) -> IngestResult:
        """Adapt every item, then enqueue all events at once; raises Overloaded when refused."""
        events: list[Event] = []
        accepted = rejected = 0
        first_error = ""
        with self._lock:
            for item in items:
                try:
                    if isinstance(item, InputError):
                        raise item
                    events.extend(self._events(item))
                    accepted += 1
                except InputError as error:
                    rejected += 1
                    first_error = first_error or str(error)
                    self._adapter.reject(error)
                    self._metrics.refused(self._receiver, signal, error.reason, 1)
        if events:
            try:
                self._queue.put(events)
            except Overloaded as busy:
                reason = "shutting_down" if busy.stopping else "queue_full"
                self._metrics.refused(self._receiver, signal, reason, accepted)
                raise
        self._metrics.received(self._receiver, signal, accepted)
        message = f"{rejected} item(s) rejected; first: {first_error}" if rejected else ""
        return IngestResult(accepted, rejected, message)

    def refuse(self, signal: str, reason: str, count: int = 1) -> None:
        """Count a whole request refused before decoding (bad body, too large, wrong type)."""
        self._metrics.refused(self._receiver, signal, reason, count)

    def _events(self, item: Record) -> list[Event]:
        if isinstance(item, SpanRecord):
            return self._adapter.from_span(item)
        if isinstance(item, LogRecord):
            return self._adapter.from_log(item)
        return self._adapter.from_point(item)
