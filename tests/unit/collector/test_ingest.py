"""The ingest queue: bounded, whole batches or none, everything taken at once, and a consumer that
settles between takes is woken when the queue is half full, refuses a batch, or closes.

Threads here only wait for something that must happen; a broken wake-up shows as a consumer still
waiting after ``JOIN_S`` (far longer than any wake-up takes, far shorter than the waits it breaks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from kpiloop.collector.ingest import EventQueue, Overloaded
from kpiloop.model import Event
from kpiloop.types import AgentType, SessionId

LONG_WAIT_S = 600.0
"""What the consumer asks to wait: a test that depends on it running out would hang, not pass."""
JOIN_S = 30.0


def events(count: int, first: int = 0) -> list[Event]:
    return [
        Event(session_id=SessionId("s"), agent_type=AgentType("a"), start_ns=n, end_ns=n, source="plan")
        for n in range(first, first + count)
    ]


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``target`` on a thread; its result lands in the returned list."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def finished(thread: threading.Thread) -> bool:
    thread.join(JOIN_S)
    return not thread.is_alive()


def test_get_all_takes_every_batch_in_order_and_empties_the_queue() -> None:
    queue = EventQueue(100)
    first, second, third = events(3), events(1, 3), events(5, 4)
    for batch in (first, second, third):
        queue.put(batch)
    assert queue.depth() == 9
    assert queue.get_all(timeout=0) == [first, second, third]
    assert queue.depth() == 0
    assert queue.get_all(timeout=0) == []


def test_a_closed_queue_still_gives_what_it_holds_then_none() -> None:
    queue = EventQueue(100)
    batch = events(2)
    queue.put(batch)
    queue.close()
    with pytest.raises(Overloaded) as refused:
        queue.put(events(1))
    assert refused.value.stopping
    assert queue.get_all(timeout=LONG_WAIT_S) == [batch]
    assert queue.get_all(timeout=LONG_WAIT_S) is None  # closed and empty: no wait


def test_a_batch_that_does_not_fit_is_refused_whole() -> None:
    queue = EventQueue(10)
    queue.put(events(6))
    with pytest.raises(Overloaded) as refused:
        queue.put(events(5))
    assert not refused.value.stopping and refused.value.retry_after > 0
    assert queue.depth() == 6
    queue.put(events(4))  # what fits is taken
    assert queue.depth() == 10


def test_a_batch_larger_than_the_queue_is_taken_when_the_queue_is_empty() -> None:
    queue = EventQueue(10)
    queue.put(events(25))
    assert queue.depth() == 25


def test_a_waiting_consumer_is_woken_by_the_first_batch() -> None:
    queue = EventQueue(100)
    thread, result = in_thread(lambda: queue.get_all(timeout=LONG_WAIT_S))
    batch = events(1)
    queue.put(batch)
    assert finished(thread)
    assert result == [[batch]]


def test_a_settling_consumer_is_woken_when_the_queue_is_half_full() -> None:
    queue = EventQueue(100)
    thread, _ = in_thread(lambda: queue.settle(LONG_WAIT_S))
    queue.put(events(49))
    thread.join(0.05)  # not a timing check: below half, waking is allowed but not required
    queue.put(events(1))
    assert finished(thread)
    assert queue.depth() == 50


def test_a_settling_consumer_is_woken_when_a_batch_is_refused() -> None:
    queue = EventQueue(100)
    queue.put(events(30))
    thread, _ = in_thread(lambda: queue.settle(LONG_WAIT_S))
    deadline = time.monotonic() + JOIN_S
    while thread.is_alive() and time.monotonic() < deadline:  # until the consumer is surely waiting
        with pytest.raises(Overloaded):
            queue.put(events(80))
        thread.join(0.01)
    assert not thread.is_alive()
    assert queue.depth() == 30


def test_a_settling_consumer_is_woken_when_the_queue_closes() -> None:
    queue = EventQueue(100)
    queue.put(events(1))
    thread, _ = in_thread(lambda: queue.settle(LONG_WAIT_S))
    queue.close()
    assert finished(thread)


def test_settle_does_not_wait_on_a_half_full_or_closed_queue() -> None:
    half_full = EventQueue(10)
    half_full.put(events(5))
    half_full.settle(LONG_WAIT_S)
    closed = EventQueue(10)
    closed.close()
    closed.settle(LONG_WAIT_S)
