"""Records the hook commands could not deliver (no collector was listening): they wait in
``{data_dir}/pending/hook-records.jsonl`` until ``kpiloop serve`` or ``replay`` takes them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import orjson

from kpiloop.storage import atomic_write, file_lock, repair_tail

log = logging.getLogger(__name__)

PENDING_FILE = Path("pending") / "hook-records.jsonl"
UNREADABLE_SUFFIX = ".unreadable"


def drain_pending(data_dir: Path, handle: Callable[[bytes], None]) -> int:
    """Hand every waiting line to ``handle``, then empty the file; return how many were taken.

    The file stays locked meanwhile, so a hook appending at the same time waits and its record is
    kept for the next drain. Lines are taken only after ``handle`` returned for all of them (an
    exception from ``handle`` leaves the file as it was). Lines that are not JSON are appended to
    ``hook-records.jsonl.unreadable`` (logged), not handed on. A pending file that cannot be read
    is logged and left for the next try: this never raises OSError.
    """
    path = data_dir / PENDING_FILE
    try:
        if not path.exists():
            return 0
        with file_lock(path):
            repair_tail(path)
            lines = [line for line in path.read_bytes().splitlines() if line.strip()]
            good = _set_aside_unreadable(path, lines)
            for line in good:
                handle(line)
            with open(path, "wb"):
                pass
    except OSError as error:
        log.error("cannot take the pending hook records in %s: %s; retrying later", path, error)
        return 0
    return len(good)


def _set_aside_unreadable(path: Path, lines: list[bytes]) -> list[bytes]:
    """The lines that are JSON; the others are added to the ``.unreadable`` file beside ``path``."""
    good, bad = [], []
    for line in lines:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            bad.append(line)
            continue
        good.append(line)
    if bad:
        aside = path.with_name(path.name + UNREADABLE_SUFFIX)
        kept = aside.read_bytes() if aside.exists() else b""
        atomic_write(aside, kept + b"".join(line + b"\n" for line in bad))
        log.warning("set %d unreadable pending hook record(s) aside in %s", len(bad), aside)
    return good
