"""Records the hook commands could not deliver (no collector was listening): they wait in
``{data_dir}/pending/hook-records.jsonl`` until ``kpiloop serve`` or ``replay`` takes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kpiloop.storage import file_lock

PENDING_FILE = Path("pending") / "hook-records.jsonl"


def drain_pending(data_dir: Path, handle: Callable[[bytes], None]) -> int:
    """Hand every waiting line to ``handle``, then empty the file; return how many were taken.

    The file stays locked meanwhile, so a hook appending at the same time waits and its record is
    kept for the next drain. Lines are taken only after ``handle`` returned for all of them.
    """
    path = data_dir / PENDING_FILE
    if not path.exists():
        return 0
    with file_lock(path):
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        for line in lines:
            handle(line)
        with open(path, "wb"):
            pass
    return len(lines)
