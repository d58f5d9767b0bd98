"""Test doubles shipped with kpiloop: a list sink and a settable clock (fakes, not mocks)."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class ListSink(Generic[T]):
    """A consumer that keeps what it is given, in order."""

    def __init__(self) -> None:
        self.items: list[T] = []

    def consume(self, item: T) -> None:
        """Keep ``item``."""
        self.items.append(item)

    def reset(self) -> None:
        """Forget everything kept."""
        self.items.clear()

    def start(self) -> None:
        """Nothing to start."""

    def shutdown(self) -> None:
        """Nothing to stop."""


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self._now = now

    def now(self) -> float:
        """The current fake time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._now += seconds
