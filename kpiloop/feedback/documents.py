"""JSON documents of the data dir changed by read-modify-write under a lock (standard library only).

A document is a JSON object whose ``list_key`` holds a list (``suggestions`` in active.json,
``pages`` in pages.json). Readers never raise: a missing file is the empty document, an unreadable
or corrupt one is logged and treated as empty. Writers are stricter: a corrupt file is moved aside
(:func:`kpiloop.storage.quarantine`, a new ``{name}.corrupt-{UTC time}`` each time) before anything
replaces it, and a file that exists but cannot be read raises OSError and is left as it is — a
writer never replaces a file it could not see.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kpiloop.storage import atomic_write, file_lock, quarantine

log = logging.getLogger(__name__)

T = TypeVar("T")


def read_document(
    path: Path, list_key: str, empty: Callable[[], dict[str, Any]], strict: bool = False
) -> tuple[dict[str, Any], bool]:
    """(document, corrupt) of ``path``; ``empty()`` when missing, corrupt or (unless ``strict``,
    which raises OSError then) unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return empty(), False
    except OSError as exc:
        if strict:
            raise
        log.warning("cannot read %s: %s; treating it as empty", path, exc)
        return empty(), False
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        log.warning("corrupt %s (%s); treating it as empty", path, exc)
        return empty(), True
    if not isinstance(document, dict) or not isinstance(document.get(list_key, []), list):
        log.warning("corrupt %s (no %r list); treating it as empty", path, list_key)
        return empty(), True
    document.setdefault(list_key, [])
    return document, False


def update_document(
    path: Path,
    list_key: str,
    empty: Callable[[], dict[str, Any]],
    change: Callable[[dict[str, Any]], T],
    before_write: Callable[[dict[str, Any]], None] = lambda document: None,
) -> T:
    """Under the file's lock: read ``path`` afresh (strictly), move a corrupt file aside, apply
    ``change`` in place, and when that altered the document call ``before_write`` on it and write it
    atomically. Returns ``change``'s result."""
    with file_lock(path):
        document, corrupt = read_document(path, list_key, empty, strict=True)
        if corrupt:
            quarantine(path, f"corrupt; starting from an empty {list_key} list")
        before = json.dumps(document, sort_keys=True)
        result = change(document)
        if json.dumps(document, sort_keys=True) != before:
            before_write(document)
            atomic_write(path, encode(document))
    return result


def encode(document: Any) -> bytes:
    """Indented UTF-8 JSON with a final newline; NaN and infinities refused."""
    return (json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
