"""Storage under failure: a full disk, torn lines left by a killed writer, corrupt and unreadable files.

A full disk is made real, without root-only tricks or patched modules: ``/dev/full`` (every write
fails with ENOSPC) behind a symlink, and ``RLIMIT_FSIZE`` in a forked child (writes past the limit
fail with EFBIG, after a short write — the torn-write case).
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import resource
import signal
from pathlib import Path

import orjson
import pytest

from kpiloop.exporters.history import HistoryWriter
from kpiloop.pending import PENDING_FILE, drain_pending
from kpiloop.session_store import STATE_FILE, load_state, save_state
from kpiloop.storage import LineTail, append_unlocked, atomic_write, locked_append, quarantine, repair_tail
from kpiloop.testing import make_summary
from kpiloop.types import SessionId

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")


def lines_of(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def summary(session_id: str):
    return make_summary(session_id=SessionId(session_id))


def full_disk_history(data_dir: Path) -> Path:
    path = data_dir / "history" / "kpis.jsonl"
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/full")
    return path


# --- atomic_write -----------------------------------------------------------------------------------


def test_a_failed_atomic_write_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "target.json"
    target.mkdir()  # os.replace of a file over a non-empty directory fails, as root too
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        atomic_write(target, b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.json"]
    assert (target / "keep").read_text() == "x"


def _write_past_limit(path: str, limit: int, data: bytes) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        if path.endswith(".jsonl"):
            locked_append(Path(path), data)
        else:
            atomic_write(Path(path), data)
    except OSError as error:
        os._exit(100 + (error.errno or 0) % 100)
    os._exit(0)


def run_with_file_size_limit(path: Path, limit: int, data: bytes) -> int:
    child = multiprocessing.get_context("fork").Process(target=_write_past_limit, args=(str(path), limit, data))
    child.start()
    child.join(30)
    assert child.exitcode is not None
    return child.exitcode


def test_a_disk_full_during_atomic_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "baselines" / "coder.json"
    atomic_write(target, b'{"old": true}\n')
    assert run_with_file_size_limit(target, 4096, b"x" * 10_000) == 100 + errno.EFBIG
    assert target.read_bytes() == b'{"old": true}\n'
    assert [p.name for p in target.parent.iterdir()] == ["coder.json"]


def test_temporary_files_never_carry_the_names_readers_scan(tmp_path: Path) -> None:
    target = tmp_path / "active.json"
    target.mkdir()
    (target / "x").touch()
    with pytest.raises(OSError) as raised:
        atomic_write(target, b"{}")
    name = Path(str(raised.value.filename)).name  # the temporary file os.replace was given
    assert name.startswith(".active.json.") and name.endswith(".tmp")


# --- appends ----------------------------------------------------------------------------------------


def test_a_short_write_on_a_full_disk_is_cut_back_so_no_half_line_stays(tmp_path: Path) -> None:
    path = tmp_path / "history" / "kpis.jsonl"
    locked_append(path, b'{"n": 1}\n')
    line = orjson.dumps({"n": 2, "pad": "x" * 9000}) + b"\n"
    assert run_with_file_size_limit(path, 4096, line) == 100 + errno.EFBIG
    assert path.read_bytes() == b'{"n": 1}\n'


@needs_dev_full
def test_an_append_to_a_full_device_raises_enospc(tmp_path: Path) -> None:
    path = full_disk_history(tmp_path)
    with pytest.raises(OSError) as raised:
        append_unlocked(path, b"{}\n")
    assert raised.value.errno == errno.ENOSPC


def test_a_torn_last_line_is_cut_off_and_kept_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "kpis.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2, "half')
    with caplog.at_level(logging.WARNING, logger="kpiloop.storage"):
        locked_append(path, b'{"n": 3}\n')
    assert lines_of(path) == [{"n": 1}, {"n": 3}]
    (aside,) = tmp_path.glob("kpis.jsonl.corrupt-*")
    assert aside.read_bytes() == b'{"n": 2, "half'
    assert "torn last line" in caplog.text and aside.name in caplog.text


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "retired.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2}')  # a hand edit that dropped the final newline
    assert repair_tail(path)
    assert path.read_bytes() == b'{"n": 1}\n{"n": 2}\n'
    assert not repair_tail(path) and not repair_tail(tmp_path / "missing.jsonl")
    assert list(tmp_path.glob("*.corrupt-*")) == []


def test_a_file_that_is_one_torn_line_becomes_empty(tmp_path: Path) -> None:
    path = tmp_path / "kpis.jsonl"
    path.write_bytes(b"x" * 200_000)  # longer than one tail chunk, no newline at all
    assert repair_tail(path)
    assert path.read_bytes() == b""


# --- quarantine -------------------------------------------------------------------------------------


def test_quarantine_never_overwrites_an_earlier_corrupt_copy(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "coder.json"
    moved = []
    with caplog.at_level(logging.WARNING, logger="kpiloop.storage"):
        for content in ("first", "second"):
            path.write_text(content)
            moved.append(quarantine(path, "test"))
    assert [p.read_text() for p in moved if p] == ["first", "second"]
    assert all(p and p.name.startswith("coder.json.corrupt-") for p in moved)
    assert not path.exists() and quarantine(path, "gone") is None
    assert caplog.text.count("moved it aside") == 2


# --- readers ----------------------------------------------------------------------------------------


@needs_dev_full
def test_a_tail_of_a_device_reads_nothing_instead_of_forever(tmp_path: Path) -> None:
    assert list(LineTail(full_disk_history(tmp_path)).new_lines()) == []


def test_an_unreadable_tail_is_logged_once_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "kpis.jsonl"
    path.mkdir()  # opening it fails with IsADirectoryError, as root too
    tail = LineTail(path)
    with caplog.at_level(logging.WARNING, logger="kpiloop.storage"):
        assert list(tail.new_lines()) == [] and list(tail.new_lines()) == []
    assert caplog.text.count("cannot read") == 1
    path.rmdir()
    path.write_bytes(b"{}\n")
    assert list(tail.new_lines()) == [b"{}\n"]


# --- the history writer on a full disk ----------------------------------------------------------------


class FailingAppender:
    """Fails while ``full`` is set, as a full disk does; appends for real otherwise."""

    def __init__(self) -> None:
        self.full = True

    def __call__(self, path: Path, data: bytes) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        append_unlocked(path, data)


def test_a_full_disk_keeps_closed_sessions_and_writes_them_when_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    appender, failures = FailingAppender(), []
    writer = HistoryWriter(tmp_path, append=appender, on_failure=lambda: failures.append(1))
    writer.start()
    with caplog.at_level(logging.ERROR, logger="kpiloop.exporters.history"):
        writer.consume(summary("a"))
        writer.consume(summary("b"))
    assert (writer.write_failures, writer.unwritten, len(failures)) == (2, 2, 2)
    assert "could not write the history line of session a" in caplog.text
    assert "No space left on device" in caplog.text
    appender.full = False
    writer.consume(summary("a"))  # closed again meanwhile: a second revision, after the first
    assert [(x["session_id"], x["revision"]) for x in lines_of(writer.path)] == [("a", 1), ("b", 1), ("a", 2)]
    assert writer.unwritten == 0


def test_lines_still_unwritten_at_shutdown_are_named_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = HistoryWriter(tmp_path, append=FailingAppender())
    writer.start()
    writer.consume(summary("lost-1"))
    with caplog.at_level(logging.ERROR, logger="kpiloop.exporters.history"):
        writer.shutdown()
    assert "1 closed session(s) were never written" in caplog.text and "lost-1" in caplog.text


@needs_dev_full
def test_the_real_full_device_is_handled_like_the_injected_one(tmp_path: Path) -> None:
    path = full_disk_history(tmp_path)
    writer = HistoryWriter(tmp_path)
    writer.start()
    writer.consume(summary("a"))
    assert (writer.write_failures, writer.unwritten) == (1, 1)
    path.unlink()  # space again
    writer.consume(summary("b"))
    assert [x["session_id"] for x in lines_of(path)] == ["a", "b"]


def test_an_unusable_data_dir_is_logged_and_sessions_wait(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data_dir = tmp_path / "data"
    data_dir.write_text("not a directory")  # fails as root too, unlike chmod 000
    writer = HistoryWriter(data_dir)
    with caplog.at_level(logging.ERROR, logger="kpiloop.exporters.history"):
        writer.start()
        writer.consume(summary("a"))
    assert "cannot use the history file" in caplog.text
    assert writer.unwritten == 1
    data_dir.unlink()
    writer.consume(summary("b"))
    assert [x["session_id"] for x in lines_of(writer.path)] == ["a", "b"]


# --- saved sessions and pending hook records ------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"{not json", b"[]", b'{"schema_version": 99, "processor": {}}', b'{"schema_version": 1}']
)
def test_corrupt_saved_sessions_are_moved_aside_not_overwritten(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / STATE_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert load_state(tmp_path) is None
    save_state(tmp_path, {"open": [], "closed": []})
    (aside,) = path.parent.glob("sessions.json.corrupt-*")
    assert aside.read_bytes() == content
    assert load_state(tmp_path) == {"open": [], "closed": []}


def test_unreadable_saved_sessions_do_not_stop_the_start(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).mkdir(parents=True)  # reading it fails with IsADirectoryError
    assert load_state(tmp_path) is None


def test_pending_records_that_are_not_json_are_set_aside(tmp_path: Path) -> None:
    path = tmp_path / PENDING_FILE
    locked_append(path, b'{"resourceLogs": []}\nnot json\n')
    path.write_bytes(path.read_bytes() + b'{"resourceLo')  # a hook killed mid-append
    taken: list[bytes] = []
    assert drain_pending(tmp_path, taken.append) == 1
    assert taken == [b'{"resourceLogs": []}']
    assert (path.parent / "hook-records.jsonl.unreadable").read_bytes() == b"not json\n"
    assert len(list(path.parent.glob("hook-records.jsonl.corrupt-*"))) == 1
    assert path.read_bytes() == b""


def test_an_unusable_pending_folder_never_raises(tmp_path: Path) -> None:
    (tmp_path / PENDING_FILE).mkdir(parents=True)
    assert drain_pending(tmp_path, lambda line: None) == 0
