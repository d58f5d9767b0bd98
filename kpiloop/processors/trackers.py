"""Small bounded trackers used by the session state: recent ids, name tables, task bookkeeping.

Each can be saved with ``to_state()`` (plain JSON data) and rebuilt with ``from_state()``, so open
sessions survive a restart.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from dataclasses import dataclass
from typing import Any

from kpiloop.model import ToolCall

MAX_NAMES = 64
OTHER = "other"
MAX_TASKS = 1_024
TASK_DONE, TODO, TODO_DONE = 1, 2, 4  # flag bits of a task entry
_TASK_BITS = (TASK_DONE, TODO, TODO_DONE)
TASK_TOOLS = frozenset({"TaskCreate", "TaskUpdate"})
"""Tools :class:`TaskTracker` counts (besides any call carrying a todo list)."""
MAX_SUBAGENT_NAMES = 127  # the packed byte holds 1 + index in 7 bits


def id_key(item: str) -> int:
    """A stable 64-bit key for an id (the same in every process, unlike ``hash``): ids are kept as
    keys, not strings, so the deduplication windows stay small."""
    return int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "little")


def _key(item: int | str) -> int:
    return item if isinstance(item, int) else id_key(item)


class _Ring:
    """At most ``size`` 64-bit keys in one flat byte buffer (8 bytes a key, little-endian), oldest
    overwritten first. A lookup is one substring search in C, not a loop boxing every key."""

    def __init__(self, size: int) -> None:
        self._buf = bytearray()
        self._size = size
        self._next = 0

    def __len__(self) -> int:
        return len(self._buf) // 8

    def key(self, slot: int) -> int:
        """The key in ``slot``."""
        return int.from_bytes(self._buf[slot * 8 : slot * 8 + 8], "little")

    def find(self, key: int) -> int | None:
        """The slot holding ``key``, or None."""
        needle = key.to_bytes(8, "little")
        at = self._buf.find(needle)
        while at > 0 and at % 8:  # a match straddling two keys is not one
            at = self._buf.find(needle, at + 1)
        return None if at < 0 else at // 8

    def put(self, key: int) -> int:
        """Store ``key`` (evicting the oldest when full); return its slot."""
        if len(self) < self._size:
            self._buf += key.to_bytes(8, "little")
            return len(self) - 1
        slot = self._next
        self._buf[slot * 8 : slot * 8 + 8] = key.to_bytes(8, "little")
        self._next = (slot + 1) % self._size
        return slot

    def oldest_first(self) -> list[int]:
        """Slots in the order their keys were stored."""
        count = len(self)
        start = self._next if count == self._size else 0
        return [(start + i) % count for i in range(count)]


class RecentIds:
    """The last ``size`` ids seen, for deduplicating one call that arrives over several signals."""

    def __init__(self, size: int) -> None:
        self._ring = _Ring(size)
        self._size = size

    def seen_before(self, item: str | None) -> bool:
        """True if ``item`` was seen recently; otherwise remember it. None is never a duplicate."""
        if item is None:
            return False
        key = id_key(item)
        if self._ring.find(key) is not None:
            return True
        self._ring.put(key)
        return False

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and self._ring.find(id_key(item)) is not None

    def to_state(self) -> list[int]:
        """The remembered id keys, oldest first."""
        return [self._ring.key(slot) for slot in self._ring.oldest_first()]

    @classmethod
    def from_state(cls, size: int, ids: list[int | str]) -> RecentIds:
        """Rebuild from :meth:`to_state` output."""
        recent = cls(size)
        for item in ids[-size:]:
            if recent._ring.find(_key(item)) is None:
                recent._ring.put(_key(item))
        return recent


@dataclass(frozen=True, slots=True)
class SeenCall:
    """What was counted for one API call, so a duplicate from another signal can fill in the gaps."""

    cost_known: bool
    subagent: str | None


class RecentCalls:
    """The last ``size`` API calls by request id, with what was counted for each, packed in one byte:
    bit 0 = cost known, the rest = 1 + index of the subagent name (0 for none)."""

    def __init__(self, size: int) -> None:
        self._ring = _Ring(size)
        self._flags = bytearray()
        self._names: list[str] = []

    def get(self, request_id: str | None) -> SeenCall | None:
        """What was counted for ``request_id``, or None when it is new (or None)."""
        slot = None if request_id is None else self._ring.find(id_key(request_id))
        return None if slot is None else self._unpack(self._flags[slot])

    def remember(self, request_id: str | None, seen: SeenCall) -> None:
        """Record (or update) what was counted for ``request_id``."""
        if request_id is None:
            return
        self._remember_key(id_key(request_id), seen)

    def to_state(self) -> list[list[Any]]:
        """``[key, cost_known, subagent]`` rows, oldest first."""
        rows = []
        for slot in self._ring.oldest_first():
            seen = self._unpack(self._flags[slot])
            rows.append([self._ring.key(slot), seen.cost_known, seen.subagent])
        return rows

    @classmethod
    def from_state(cls, size: int, rows: list[list[Any]]) -> RecentCalls:
        """Rebuild from :meth:`to_state` output."""
        recent = cls(size)
        for key, cost_known, subagent in rows[-size:]:
            recent._remember_key(_key(key), SeenCall(bool(cost_known), subagent))
        return recent

    def _remember_key(self, key: int, seen: SeenCall) -> None:
        slot = self._ring.find(key)
        if slot is None:
            slot = self._ring.put(key)
        if slot == len(self._flags):
            self._flags.append(0)
        self._flags[slot] = self._pack(seen)

    def _pack(self, seen: SeenCall) -> int:
        index = 0
        if seen.subagent is not None:
            if seen.subagent not in self._names and len(self._names) < MAX_SUBAGENT_NAMES:
                self._names.append(seen.subagent)
            index = self._names.index(seen.subagent) + 1 if seen.subagent in self._names else 0
        return index << 1 | int(seen.cost_known)

    def _unpack(self, packed: int) -> SeenCall:
        index = packed >> 1
        return SeenCall(bool(packed & 1), self._names[index - 1] if index else None)


def bump(table: dict[str, int], name: str, by: int = 1) -> None:
    """Add to ``table[name]``, folding new names into ``other`` once the table is full."""
    if name not in table and len(table) >= MAX_NAMES:
        name = OTHER
    table[name] = table.get(name, 0) + by


class TaskTracker:
    """Task bookkeeping: TaskCreate/TaskUpdate calls, and task status when the source shows it.

    Completed task ids and TodoWrite items are kept as 64-bit keys in one sorted array with a
    flag byte each (9 bytes an entry, at most ``MAX_TASKS`` entries), so a session's task state
    stays small however many tasks it makes. Tasks created are the TaskCreate calls (each creates
    one task, so distinct ids never outnumber them) plus the distinct todo items.
    """

    def __init__(self) -> None:
        self.creates = 0
        self.updates = 0
        self.status_visible = False
        self._keys = array("Q")
        self._flags = bytearray()
        self._counts = [0, 0, 0]  # entries with TASK_DONE, TODO, TODO_DONE

    def update(self, call: ToolCall) -> None:
        """Fold in one executed tool call."""
        self.count_call(call.tool)
        self.note_status(call)

    def count_call(self, tool: str) -> None:
        """Count an executed TaskCreate or TaskUpdate (any other tool counts nothing)."""
        if tool == "TaskCreate":
            self.creates += 1
        elif tool == "TaskUpdate":
            self.updates += 1

    def note_status(self, call: ToolCall) -> None:
        """Take the task status ``call`` shows, if any: a completed TaskUpdate, a TodoWrite list."""
        if call.tool == "TaskUpdate" and call.task_status is not None and call.task_id:
            self.status_visible = True
            if call.task_status == "completed":
                self._set(id_key(call.task_id), TASK_DONE, TASK_DONE)
        if call.todos is not None:
            self.status_visible = True
            # Keep every item's last status: a new or cleared list must not forget completed items.
            for item in call.todos:
                self._set(id_key(item.key), TODO | TODO_DONE, TODO | (TODO_DONE if item.status == "completed" else 0))

    def created(self) -> int:
        """Tasks created: TaskCreate calls plus distinct TodoWrite items."""
        return self.creates + self._counts[1]

    def completed(self) -> int | None:
        """Tasks completed, or None when no source showed task status."""
        if not self.status_visible:
            return None
        return self._counts[0] + self._counts[2]

    def to_state(self) -> dict[str, Any]:
        """Plain data for :meth:`from_state`."""
        return {
            "creates": self.creates,
            "updates": self.updates,
            "status_visible": self.status_visible,
            "entries": [[key, flags] for key, flags in zip(self._keys, self._flags, strict=True)],
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> TaskTracker:
        """Rebuild from :meth:`to_state` output (or from the id and status lists saved before keys)."""
        tracker = cls()
        tracker.creates, tracker.updates = int(data["creates"]), int(data["updates"])
        tracker.status_visible = bool(data["status_visible"])
        for key, flags in data.get("entries", []):
            tracker._set(int(key), flags, flags)
        for task_id in data.get("completed_ids", []):
            tracker._set(id_key(str(task_id)), TASK_DONE, TASK_DONE)
        for key, status in data.get("todo_status", {}).items():
            tracker._set(id_key(key), TODO | TODO_DONE, TODO | (TODO_DONE if status == "completed" else 0))
        return tracker

    def _set(self, key: int, mask: int, value: int) -> None:
        """Set the ``mask`` bits of ``key``'s flags to ``value``; a new key only while there is room."""
        slot = bisect.bisect_left(self._keys, key)
        if slot == len(self._keys) or self._keys[slot] != key:
            if len(self._keys) >= MAX_TASKS:
                return
            self._keys.insert(slot, key)
            self._flags.insert(slot, 0)
        old = self._flags[slot]
        new = (old & ~mask) | value
        self._flags[slot] = new
        for index, bit in enumerate(_TASK_BITS):
            self._counts[index] += bool(new & bit) - bool(old & bit)
