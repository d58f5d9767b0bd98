"""Corrupt feedback files: logged, moved aside (never overwritten), rebuilt from the history where it can be."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from kpiloop.feedback.active import ACTIVE_FILE, empty_document, load_active, update_active
from kpiloop.feedback.baselines import BaselineStore, baseline_from_json

from .test_stage import AGENT, harness, summary

GARBAGE = [b'{"agent_type": "coder", "baselines": {"error_rate"', b"\x00\x00\x00\x00", b'["not", "a", "baseline"]']


@pytest.mark.parametrize("garbage", GARBAGE, ids=["torn", "zeros", "wrong-shape"])
def test_a_corrupt_baseline_is_moved_aside_and_rebuilt_from_the_history(
    tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    run = harness(tmp_path)
    for index in range(8):
        run.close(summary(index))
    path = tmp_path / "baselines" / f"{AGENT}.json"
    before = run.baseline_file()
    path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING):
        run.close(summary(8))
    (aside,) = path.parent.glob(f"{AGENT}.json.corrupt-*")
    assert aside.read_bytes() == garbage
    rebuilt = run.baseline_file()
    assert rebuilt["session_count"] == len(run.history()) == 9
    assert rebuilt["baselines"]["error_rate"]["status"] == "converged"
    assert rebuilt["baselines"]["error_rate"]["center"] == before["baselines"]["error_rate"]["center"]
    assert baseline_from_json(rebuilt).agent_type == AGENT
    assert "rebuilt from the history" in caplog.text and aside.name in caplog.text


def test_each_corruption_gets_its_own_aside_file(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.path(AGENT)
    path.parent.mkdir(parents=True)
    for garbage in GARBAGE[:2]:
        path.write_bytes(garbage)
        assert store.load(AGENT) is None
    assert sorted(p.read_bytes() for p in path.parent.glob("*.corrupt-*")) == sorted(GARBAGE[:2])
    assert store.agent_types() == []  # aside files are not baselines


def test_an_unreadable_baseline_is_left_where_it_is(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.path(AGENT).mkdir(parents=True)  # reading fails with IsADirectoryError, as root too
    assert store.load(AGENT) is None
    assert store.path(AGENT).is_dir() and list(store.path(AGENT).parent.glob("*.corrupt-*")) == []


def add_entry(document: dict) -> None:
    document["suggestions"].append({"id": f"opt-{len(document['suggestions'])}", "agent_type": AGENT})


def test_a_corrupt_active_file_is_moved_aside_before_the_next_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / ACTIVE_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"suggestions": [{"id": "opt-a"')
    with caplog.at_level(logging.WARNING):
        assert load_active(tmp_path) == empty_document()
        assert path.exists()  # reading alone never moves it
        update_active(tmp_path, add_entry, "2026-02-14T12:00:00Z")
    (aside,) = path.parent.glob("active.json.corrupt-*")
    assert aside.read_bytes() == b'{"suggestions": [{"id": "opt-a"'
    assert [e["id"] for e in json.loads(path.read_bytes())["suggestions"]] == ["opt-0"]
    assert "moved it aside" in caplog.text


def test_a_corrupt_active_file_is_moved_aside_even_when_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / ACTIVE_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"suggestions": "not a list"}')
    assert update_active(tmp_path, lambda document: None, "2026-02-14T12:00:00Z") is None
    assert not path.exists()
    assert len(list(path.parent.glob("active.json.corrupt-*"))) == 1


def test_an_unreadable_active_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / ACTIVE_FILE
    path.mkdir(parents=True)
    (path / "keep").touch()
    with pytest.raises(OSError):
        update_active(tmp_path, add_entry, "2026-02-14T12:00:00Z")
    assert (path / "keep").exists()
