"""Durable file writes (stdlib only, so the hook commands can use them too).

- :func:`atomic_write`: write a temporary file next to the target (a name readers never scan),
  fsync it, rename it over the target, fsync the directory: readers see the old or the new file.
- :func:`locked_append`: append whole lines under an exclusive ``flock`` on a sidecar lock file,
  with one ``write`` in ``O_APPEND`` mode and an fsync, so concurrent writers never interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path.lock`` for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def locked_append(path: Path, data: bytes) -> None:
    """Append ``data`` (whole lines ending in a newline) to ``path`` under the file's lock.

    If an earlier writer died mid-line, a newline is written first so the new lines stay whole.
    """
    with file_lock(path):
        append_unlocked(path, data)


def append_unlocked(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path``; the caller holds :func:`file_lock`."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if _ends_mid_line(path):
            data = b"\n" + data
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class LineTail:
    """Reads the whole lines appended to a file since the last read (a partial last line waits)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_lines(self) -> Iterator[bytes]:
        """Each complete line added since the previous call, in order."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            for raw in handle:
                if not raw.endswith(b"\n"):
                    return
                self.offset += len(raw)
                yield raw


def _ends_mid_line(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
