"""Pages (incidents and CRITICAL hard thresholds) and their acknowledgement, on files."""

from __future__ import annotations

import json
from pathlib import Path

from kpiloop.feedback.pages import PAGES_FILE, acknowledge, load_pages, new_page, open_pages, record_pages

NOW = "2026-03-01T12:00:00Z"
LATER = "2026-03-02T08:30:00Z"


def two_pages() -> list[dict[str, object]]:
    return [
        new_page("coder", "error_rate", "threshold", "s-1", NOW, 0.25),
        new_page("writer", "token_efficiency", "incident", "s-2", NOW, None),
    ]


def test_a_new_page_is_open_and_named_after_agent_kpi_kind_and_time() -> None:
    page = new_page("coder", "error_rate", "threshold", "s-1", NOW, 0.25)
    assert page == {
        "id": "coder-error_rate-threshold-20260301T120000Z",
        "agent_type": "coder",
        "kpi": "error_rate",
        "kind": "threshold",
        "session_id": "s-1",
        "opened_at": NOW,
        "value": 0.25,
        "acknowledged_at": None,
    }


def test_recording_stores_the_pages_once_and_the_block_setting(tmp_path: Path) -> None:
    assert load_pages(tmp_path) == {"version": 1, "block_on_critical": False, "pages": []}
    record_pages(tmp_path, two_pages(), block_on_critical=True)
    record_pages(tmp_path, two_pages()[:1], block_on_critical=True)
    document = load_pages(tmp_path)
    assert document["block_on_critical"] is True
    assert [p["id"] for p in document["pages"]] == [p["id"] for p in two_pages()]
    record_pages(tmp_path, [], block_on_critical=False)
    assert load_pages(tmp_path)["block_on_critical"] is False


def test_acknowledge_by_id_by_agent_type_or_all(tmp_path: Path) -> None:
    record_pages(tmp_path, two_pages(), block_on_critical=False)
    first, second = (p["id"] for p in two_pages())
    assert acknowledge(tmp_path, LATER, ["no-such-page"]) == []
    assert acknowledge(tmp_path, LATER, agent_type="writer") == [second]
    assert [p["id"] for p in open_pages(load_pages(tmp_path))] == [first]
    assert acknowledge(tmp_path, LATER) == [first]
    assert acknowledge(tmp_path, LATER) == []
    document = load_pages(tmp_path)
    assert open_pages(document) == []
    assert {p["acknowledged_at"] for p in document["pages"]} == {LATER}


def test_open_pages_of_one_agent_type(tmp_path: Path) -> None:
    record_pages(tmp_path, two_pages(), block_on_critical=False)
    assert [p["kpi"] for p in open_pages(load_pages(tmp_path), "coder")] == ["error_rate"]


def test_only_the_oldest_acknowledged_pages_are_dropped_past_the_cap(tmp_path: Path) -> None:
    early = [new_page("coder", "error_rate", "threshold", f"s-{i}", f"2026-03-0{i}T00:00:00Z", 0.3) for i in (1, 2)]
    record_pages(tmp_path, early, block_on_critical=False)
    acknowledge(tmp_path, LATER)
    late = [new_page("coder", "error_rate", "threshold", f"s-{i}", f"2026-03-0{i}T00:00:00Z", 0.3) for i in (3, 4)]
    record_pages(tmp_path, late, block_on_critical=False, max_pages=3)
    kept = load_pages(tmp_path)["pages"]
    assert [p["session_id"] for p in kept] == ["s-2", "s-3", "s-4"]


def test_a_corrupt_file_reads_as_empty_and_is_moved_aside_before_it_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / PAGES_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"pages": "not a list"')
    assert load_pages(tmp_path)["pages"] == []
    record_pages(tmp_path, two_pages(), block_on_critical=True)
    [aside] = path.parent.glob("pages.json.corrupt-*")
    assert aside.read_bytes() == b'{"pages": "not a list"'
    assert len(json.loads(path.read_bytes())["pages"]) == 2
