"""Durable file writes (stdlib only, so the hook commands can use them too).

- :func:`atomic_write`: write a temporary file next to the target (``.{name}.{pid}-{random}.tmp``, a
  name readers never scan), fsync it, rename it over the target, fsync the directory: readers see
  the old or the new file. A failed write (disk full) removes its temporary file.
- :func:`locked_append`: append whole lines under an exclusive ``flock`` on a sidecar lock file,
  with one ``write`` in ``O_APPEND`` mode and an fsync, so concurrent writers never interleave. A
  failed append is cut back to where it started; a torn last line left by a writer that was killed
  mid-write is repaired first (:func:`repair_tail`).
- :func:`quarantine`: move a corrupt file aside as ``{name}.corrupt-{UTC time}`` (never
  overwritten, never scanned) with one warning line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CORRUPT_INFIX = ".corrupt-"
TAIL_CHUNK = 64 * 1024


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; on failure the target is untouched and no
    temporary file is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
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
    """Append ``data`` (whole lines ending in a newline) to ``path`` under the file's lock."""
    with file_lock(path):
        append_unlocked(path, data)


def append_unlocked(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path``; the caller holds :func:`file_lock`.

    A torn last line from a writer that died mid-write is repaired first, so the new lines never
    glue onto it. When the write fails (disk full), the file is cut back to its size before the
    write and the error raised: the file never keeps half a line of ours.
    """
    repair_tail(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # not a regular file (/dev/full): nothing to cut
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def repair_tail(path: Path) -> bool:
    """Make ``path`` end with a newline; the caller holds :func:`file_lock`. True if it had to.

    A last line without its newline is either complete (a JSON value someone wrote by hand): it
    gets its newline; or torn by a writer killed mid-write: it is saved with :func:`quarantine`'s
    naming and cut off, so the file holds whole lines only. A missing or non-regular file is left alone.
    """
    try:
        with open(path, "r+b") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return False
            size = handle.seek(0, os.SEEK_END)
            keep = _last_line_end(handle, size)
            if keep == size:
                return False
            handle.seek(keep)
            fragment = handle.read()
            if _is_json(fragment):
                handle.write(b"\n")
            else:
                _save_fragment(path, fragment)
                handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
            return True
    except FileNotFoundError:
        return False


def quarantine(path: Path, reason: str) -> Path | None:
    """Move the corrupt file ``path`` aside to ``{name}.corrupt-{UTC time}`` (a new name each time, which
    no reader scans) and log one warning saying why and where it went; None if it could not be moved."""
    target = _corrupt_name(path)
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    except OSError as error:
        _warn("%s is unusable (%s) and could not be moved aside: %s", path, reason, error)
        return None
    _warn("%s is unusable (%s); moved it aside to %s", path, reason, target.name)
    return target


class LineTail:
    """Reads the whole lines appended to a file since the last read (a partial last line waits).

    Reads stop at the file's size when the read began, never follow a non-regular file (such as
    ``/dev/full``), and a read error is logged once and retried at the next call.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.failing = False

    def new_lines(self) -> Iterator[bytes]:
        """Each complete line added since the previous call, in order."""
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return
        except OSError as error:
            self._failed(error)
            return
        with handle:
            yield from self._read(handle)

    def _read(self, handle: BinaryIO) -> Iterator[bytes]:
        try:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return
            self.failing = False
            handle.seek(self.offset)
            for raw in handle:
                if not raw.endswith(b"\n") or self.offset + len(raw) > info.st_size:
                    return
                self.offset += len(raw)
                yield raw
        except OSError as error:
            self._failed(error)

    def _failed(self, error: OSError) -> None:
        if not self.failing:
            _warn("cannot read %s: %s; retrying at the next read", self.path, error)
        self.failing = True


def _last_line_end(handle: BinaryIO, size: int) -> int:
    """The offset just after the last newline in the file (0 when there is none)."""
    if size > 0:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return size
    end = size
    while end > 0:
        start = max(0, end - TAIL_CHUNK)
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _is_json(fragment: bytes) -> bool:
    try:
        json.loads(fragment)
    except ValueError:
        return False
    return fragment.strip() != b""


def _save_fragment(path: Path, fragment: bytes) -> None:
    target = _corrupt_name(path)
    try:
        atomic_write(target, fragment)
    except OSError as error:
        _warn("cut a torn last line (%d bytes) off %s; could not save it: %s", len(fragment), path, error)
        return
    _warn("cut a torn last line (%d bytes) off %s; saved it as %s", len(fragment), path, target.name)


def _corrupt_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}{CORRUPT_INFIX}{stamp}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = path.with_name(f"{path.name}{CORRUPT_INFIX}{stamp}-{suffix}")
    return target


def _warn(message: str, *args: object) -> None:
    import logging  # here, not at the top: the hook commands import this module and must start fast

    logging.getLogger(__name__).warning(message, *args)


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
