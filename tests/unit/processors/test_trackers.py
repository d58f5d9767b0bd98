from __future__ import annotations

from kpiloop.model import TodoItem, ToolCall
from kpiloop.processors.trackers import MAX_TASKS, TaskTracker
from kpiloop.types import AgentType, SessionId


def tool(name: str, task_id: str | None = None, status: str | None = None, todos=None) -> ToolCall:
    return ToolCall(
        session_id=SessionId("s"),
        agent_type=AgentType("a"),
        start_ns=1,
        end_ns=2,
        source="claude_code",
        tool=name,
        task_id=task_id,
        task_status=status,
        todos=todos,
    )


def test_task_state_is_bounded_and_stops_counting_new_tasks_at_the_cap():
    tracker = TaskTracker()
    for n in range(MAX_TASKS + 50):
        tracker.update(tool("TaskCreate", task_id=str(n)))
        tracker.update(tool("TaskUpdate", task_id=str(n), status="completed"))
    assert tracker.created() == MAX_TASKS + 50  # every TaskCreate call counts
    assert tracker.completed() == MAX_TASKS  # distinct completed ids kept up to the cap
    assert len(tracker.to_state()["entries"]) == MAX_TASKS


def test_a_todo_item_known_before_the_cap_still_changes_status_after_it():
    tracker = TaskTracker()
    tracker.update(tool("TodoWrite", todos=(TodoItem(key="first", status="pending"),)))
    for n in range(MAX_TASKS):
        tracker.update(tool("TaskUpdate", task_id=str(n), status="completed"))
    tracker.update(
        tool("TodoWrite", todos=(TodoItem(key="first", status="completed"), TodoItem(key="late", status="completed")))
    )
    assert (tracker.created(), tracker.completed()) == (1, MAX_TASKS - 1 + 1)


def test_task_state_round_trips():
    tracker = TaskTracker()
    tracker.update(tool("TaskCreate", task_id="1"))
    tracker.update(tool("TaskUpdate", task_id="1", status="completed"))
    tracker.update(
        tool("TodoWrite", todos=(TodoItem(key="a", status="completed"), TodoItem(key="b", status="pending")))
    )
    again = TaskTracker.from_state(tracker.to_state())
    assert (again.created(), again.completed(), again.updates) == (3, 2, 1)


def test_state_saved_with_id_lists_is_read():
    saved = {
        "creates": 2,
        "updates": 3,
        "status_visible": True,
        "created_ids": ["1", "2"],
        "completed_ids": ["1", "2"],
        "todo_status": {"k1": "completed", "k2": "in_progress"},
    }
    tracker = TaskTracker.from_state(saved)
    assert (tracker.created(), tracker.completed()) == (4, 3)
    tracker.update(tool("TaskUpdate", task_id="1", status="completed"))  # already counted
    tracker.update(tool("TodoWrite", todos=(TodoItem(key="k2", status="completed"),)))
    assert (tracker.created(), tracker.completed()) == (4, 4)


def test_recent_ids_ignore_a_match_straddling_two_keys():
    from kpiloop.processors.trackers import _Ring

    ring = _Ring(4)
    first, second = bytes(range(8)), bytes(range(8, 16))
    straddling = int.from_bytes(first[4:] + second[:4], "little")
    ring.put(int.from_bytes(first, "little"))
    ring.put(int.from_bytes(second, "little"))
    assert ring.find(straddling) is None
    ring.put(straddling)
    assert ring.find(straddling) == 2
    assert [ring.key(slot) for slot in ring.oldest_first()][2] == straddling
