"""Open sessions survive a restart: ``kpiloop serve`` saves the processor's state on SIGTERM and
loads it on the next start (``{data_dir}/state/sessions.json``, written atomically)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from kpiloop.storage import atomic_write, quarantine

STATE_FILE = Path("state") / "sessions.json"
SCHEMA_VERSION = 1


def save_state(data_dir: Path, state: dict[str, Any]) -> Path:
    """Write the processor's state; readers see the previous file or this one, never a mix."""
    path = data_dir / STATE_FILE
    document = {"schema_version": SCHEMA_VERSION, "saved_at": time.time(), "processor": state}
    atomic_write(path, orjson.dumps(document))
    return path


def load_state(data_dir: Path) -> dict[str, Any] | None:
    """The saved processor state, or None when there is none or it cannot be used.

    An unreadable or corrupt file is moved aside (``sessions.json.corrupt-{UTC time}``, see
    :func:`kpiloop.storage.quarantine`) with a warning rather than stopping the server or being
    overwritten at the next save: the sessions it held are lost, the history is not.
    """
    path = data_dir / STATE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        quarantine(path, f"cannot read saved sessions: {error}")
        return None
    try:
        return _processor_state(orjson.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        quarantine(path, f"saved sessions not loadable: {error}")
        return None


def _processor_state(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"unknown schema_version {document.get('schema_version')!r}")
    state = document["processor"]
    if not isinstance(state, dict):
        raise ValueError("processor state is not an object")
    return state


def clear_state(data_dir: Path) -> None:
    """Remove the saved state once it has been loaded, so a crash never reloads it twice."""
    (data_dir / STATE_FILE).unlink(missing_ok=True)
