"""The running service: one worker thread drains the ingest queue into the session processor.

Receivers only decode and enqueue; all session state is touched by this one thread, so the
processor needs no locks. The worker takes every queued batch at once and then lets the queue
settle for a few milliseconds (:meth:`EventQueue.settle`), so under load it wakes a few hundred
times a second rather than once per request: the receivers run on the same core, and each wake-up
is a GIL hand-off and two context switches, more than a one-span request's own processing. The
worker also closes idle sessions on a tick, publishes the open-session gauge, and on stop drains
every accepted event before the processor's state is persisted (see :mod:`kpiloop.session_store`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kpiloop.collector.ingest import EventQueue
from kpiloop.model import Event

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
SETTLE_SECONDS = 0.005
"""After processing, how long the worker lets batches collect before it takes them (see
:meth:`EventQueue.settle`): at most this much later processing, at most 1/this wake-ups a second."""


class RunningProcessor(Protocol):
    """What the worker needs from the session processor."""

    def consume(self, event: Event) -> None: ...

    def expire(self) -> int: ...

    def open_by_agent(self) -> Mapping[str, int]: ...

    def export_state(self) -> dict[str, Any]: ...


class IngestWorker:
    """Drains ``queue`` into ``processor`` on its own thread until stopped."""

    def __init__(
        self,
        queue: EventQueue,
        processor: RunningProcessor,
        on_tick: Callable[[], None] | None = None,
        tick_seconds: float = TICK_SECONDS,
        settle_seconds: float = SETTLE_SECONDS,
    ) -> None:
        self._queue = queue
        self._processor = processor
        self._on_tick = on_tick
        self._tick = tick_seconds
        self._settle = settle_seconds
        self._thread: threading.Thread | None = None
        self.open_sessions: Mapping[str, int] = {}
        self.failures = 0

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="kpiloop-ingest", daemon=True)
        self._thread.start()

    def shutdown(self) -> dict[str, Any]:
        """Refuse new batches, process every queued one, stop, and return the processor's state."""
        self._queue.close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self._processor.export_state()

    def _run(self) -> None:
        next_tick = time.monotonic() + self._tick
        while (batches := self._queue.get_all(timeout=self._tick)) is not None:
            for batch in batches:
                self._process(batch)
            if batches:
                self._queue.settle(self._settle)
            if time.monotonic() >= next_tick:
                self._tick_once()
                next_tick = time.monotonic() + self._tick

    def _process(self, batch: list[Event]) -> None:
        for event in batch:
            try:
                self._processor.consume(event)
            except Exception:  # one bad event or sink failure must not stop ingestion
                self.failures += 1
                log.exception("failed to process an event of session %s", event.session_id)

    def _tick_once(self) -> None:
        try:
            self._processor.expire()
            self.open_sessions = dict(self._processor.open_by_agent())
            if self._on_tick is not None:
                self._on_tick()
        except Exception:
            self.failures += 1
            log.exception("periodic session expiry failed")
