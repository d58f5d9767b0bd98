"""The ingest worker: every accepted event reaches the processor once and in order, a failing event
costs only itself, and shutdown processes everything queued even while the worker settles."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from kpiloop.collector.ingest import EventQueue, Overloaded
from kpiloop.model import Event
from kpiloop.service import IngestWorker
from kpiloop.types import AgentType, SessionId

LONG_S = 600.0
"""A settle or tick the worker must never have to sit out for these tests to pass."""
DEADLINE_S = 30.0


def events(count: int, first: int = 0) -> list[Event]:
    return [
        Event(session_id=SessionId("s"), agent_type=AgentType("a"), start_ns=n, end_ns=n, source="plan")
        for n in range(first, first + count)
    ]


class Recorder:
    """A processor that records the start time of every event; ``bad`` ones raise."""

    def __init__(self, bad: frozenset[int] = frozenset()) -> None:
        self.seen: list[int] = []
        self.bad = bad
        self.changed = threading.Condition()

    def consume(self, event: Event) -> None:
        if event.start_ns in self.bad:
            raise ValueError(f"bad event {event.start_ns}")
        with self.changed:
            self.seen.append(event.start_ns)
            self.changed.notify_all()

    def expire(self) -> int:
        return 0

    def open_by_agent(self) -> Mapping[str, int]:
        return {}

    def export_state(self) -> dict[str, Any]:
        return {"seen": len(self.seen)}

    def wait_for(self, count: int) -> bool:
        """True once ``count`` events were consumed (False after DEADLINE_S)."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.seen) >= count, DEADLINE_S)


def test_shutdown_processes_every_queued_batch_in_order_even_while_the_worker_settles() -> None:
    queue = EventQueue(1_000)
    recorder = Recorder()
    worker = IngestWorker(queue, recorder, tick_seconds=LONG_S, settle_seconds=LONG_S)
    worker.start()
    queue.put(events(3))
    assert recorder.wait_for(3)  # the first batch wakes an idle worker; then it settles for LONG_S
    for first in range(3, 300, 3):
        queue.put(events(3, first))
    started = time.monotonic()
    state = worker.shutdown()
    assert time.monotonic() - started < DEADLINE_S  # closing the queue ended the settle
    assert recorder.seen == list(range(300))
    assert state == {"seen": 300}
    assert queue.depth() == 0


def test_a_half_full_queue_is_processed_without_waiting_out_the_settle() -> None:
    queue = EventQueue(100)
    recorder = Recorder()
    worker = IngestWorker(queue, recorder, tick_seconds=LONG_S, settle_seconds=LONG_S)
    worker.start()
    queue.put(events(1))
    assert recorder.wait_for(1)
    queue.put(events(20, 1))  # below half: may wait for the settle to end
    queue.put(events(30, 21))  # 50 queued: the worker takes them now
    assert recorder.wait_for(51)
    assert recorder.seen == list(range(51))
    worker.shutdown()


def test_a_failing_event_costs_only_itself() -> None:
    queue = EventQueue(100)
    recorder = Recorder(bad=frozenset({2, 7}))
    worker = IngestWorker(queue, recorder, tick_seconds=LONG_S, settle_seconds=LONG_S)
    queue.put(events(5))
    queue.put(events(5, 5))
    worker.start()
    worker.shutdown()
    assert recorder.seen == [0, 1, 3, 4, 5, 6, 8, 9]
    assert worker.failures == 2


def test_refused_after_shutdown_and_nothing_accepted_is_lost() -> None:
    queue = EventQueue(10_000)
    recorder = Recorder()
    worker = IngestWorker(queue, recorder, tick_seconds=LONG_S)
    worker.start()
    accepted: list[int] = []
    stop = threading.Event()

    def produce() -> None:
        first = 0
        while not stop.is_set():
            try:
                queue.put(events(2, first))
            except Overloaded as refused:
                if refused.stopping:
                    return
                continue  # full: try again
            accepted.extend((first, first + 1))
            first += 2

    producer = threading.Thread(target=produce)
    producer.start()
    assert recorder.wait_for(1_000)
    worker.shutdown()
    stop.set()
    producer.join(DEADLINE_S)
    assert recorder.seen == accepted
