"""Small bounded trackers used by the session state: recent ids, name tables, task bookkeeping.

Each can be saved with ``to_state()`` (plain JSON data) and rebuilt with ``from_state()``, so open
sessions survive a restart.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from kpiloop.model import ToolCall

MAX_NAMES = 64
OTHER = "other"
MAX_TASKS = 10_000


class RecentIds:
    """The last ``size`` ids seen, for deduplicating one call that arrives over several signals."""

    def __init__(self, size: int) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._size = size

    def seen_before(self, item: str | None) -> bool:
        """True if ``item`` was seen recently; otherwise remember it. None is never a duplicate."""
        if item is None:
            return False
        if item in self._ids:
            return True
        self._order.append(item)
        self._ids.add(item)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return False

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def to_state(self) -> list[str]:
        """The remembered ids, oldest first."""
        return list(self._order)

    @classmethod
    def from_state(cls, size: int, ids: list[str]) -> RecentIds:
        """Rebuild from :meth:`to_state` output."""
        recent = cls(size)
        for item in ids[-size:]:
            recent.seen_before(item)
        return recent


@dataclass(frozen=True, slots=True)
class SeenCall:
    """What was counted for one API call, so a duplicate from another signal can fill in the gaps."""

    cost_usd: float | None
    subagent: str | None


class RecentCalls:
    """The last ``size`` API calls by request id, with what was counted for each."""

    def __init__(self, size: int) -> None:
        self._calls: OrderedDict[str, SeenCall] = OrderedDict()
        self._size = size

    def get(self, request_id: str | None) -> SeenCall | None:
        """What was counted for ``request_id``, or None when it is new (or None)."""
        return None if request_id is None else self._calls.get(request_id)

    def remember(self, request_id: str | None, seen: SeenCall) -> None:
        """Record (or update) what was counted for ``request_id``."""
        if request_id is None:
            return
        self._calls[request_id] = seen
        while len(self._calls) > self._size:
            self._calls.popitem(last=False)

    def to_state(self) -> list[list[Any]]:
        """``[request_id, cost_usd, subagent]`` rows, oldest first."""
        return [[rid, seen.cost_usd, seen.subagent] for rid, seen in self._calls.items()]

    @classmethod
    def from_state(cls, size: int, rows: list[list[Any]]) -> RecentCalls:
        """Rebuild from :meth:`to_state` output."""
        recent = cls(size)
        for rid, cost, subagent in rows[-size:]:
            recent.remember(str(rid), SeenCall(None if cost is None else float(cost), subagent))
        return recent


def bump(table: dict[str, int], name: str, by: int = 1) -> None:
    """Add to ``table[name]``, folding new names into ``other`` once the table is full."""
    if name not in table and len(table) >= MAX_NAMES:
        name = OTHER
    table[name] = table.get(name, 0) + by


class TaskTracker:
    """Task bookkeeping: TaskCreate/TaskUpdate calls, and task status when the source shows it."""

    def __init__(self) -> None:
        self.creates = 0
        self.updates = 0
        self.status_visible = False
        self._created_ids: set[str] = set()
        self._completed_ids: set[str] = set()
        self._todo_status: dict[str, str] = {}

    def update(self, call: ToolCall) -> None:
        """Fold in one executed tool call."""
        if call.tool == "TaskCreate":
            self.creates += 1
            if call.task_id and len(self._created_ids) < MAX_TASKS:
                self._created_ids.add(call.task_id)
        elif call.tool == "TaskUpdate":
            self.updates += 1
            if call.task_status is not None and call.task_id:
                self.status_visible = True
                if call.task_status == "completed" and len(self._completed_ids) < MAX_TASKS:
                    self._completed_ids.add(call.task_id)
        if call.todos is not None:
            self.status_visible = True
            # Keep every item's last status: a new or cleared list must not forget completed items.
            for item in call.todos:
                if item.key in self._todo_status or len(self._todo_status) < MAX_TASKS:
                    self._todo_status[item.key] = item.status

    def created(self) -> int:
        """Tasks created: TaskCreate calls plus distinct TodoWrite items."""
        return max(self.creates, len(self._created_ids)) + len(self._todo_status)

    def completed(self) -> int | None:
        """Tasks completed, or None when no source showed task status."""
        if not self.status_visible:
            return None
        todo_done = sum(1 for status in self._todo_status.values() if status == "completed")
        return len(self._completed_ids) + todo_done

    def to_state(self) -> dict[str, Any]:
        """Plain data for :meth:`from_state`."""
        return {
            "creates": self.creates,
            "updates": self.updates,
            "status_visible": self.status_visible,
            "created_ids": sorted(self._created_ids),
            "completed_ids": sorted(self._completed_ids),
            "todo_status": dict(self._todo_status),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> TaskTracker:
        """Rebuild from :meth:`to_state` output."""
        tracker = cls()
        tracker.creates, tracker.updates = int(data["creates"]), int(data["updates"])
        tracker.status_visible = bool(data["status_visible"])
        tracker._created_ids = set(data["created_ids"])
        tracker._completed_ids = set(data["completed_ids"])
        tracker._todo_status = dict(data["todo_status"])
        return tracker
