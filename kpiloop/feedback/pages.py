"""Pages: the alerts that need a person (DESIGN.md section 5), and their acknowledgement.

Standard library only: the session-start hook reads this file to show an unacknowledged page as a
``systemMessage`` when ``block_on_critical`` is configured.

A page is opened on a session close by an incident (a KPI's CUSUM passed its decision level:
sustained degradation) or by a hard threshold at CRITICAL. Pages live in one JSON document,
``{data_dir}/alerts/pages.json``::

    {"version": 1, "block_on_critical": false,
     "pages": [{"id", "agent_type", "kpi", "kind", "session_id", "opened_at", "value",
                "acknowledged_at": null}]}

``block_on_critical`` is copied there from the feedback config by every close, because the hook
cannot read the YAML config. Every change is a read-modify-write under the file's lock, written
atomically. At most :data:`MAX_PAGES` pages are kept: the oldest acknowledged ones go first.
``kpiloop alerts ack`` acknowledges one page, an agent type's pages or all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from kpiloop.feedback.documents import read_document, update_document

PAGES_FILE = Path("alerts") / "pages.json"
VERSION = 1
MAX_PAGES = 500
KINDS = ("incident", "threshold")
T = TypeVar("T")


def empty_document() -> dict[str, Any]:
    """A pages document with no pages."""
    return {"version": VERSION, "block_on_critical": False, "pages": []}


def page_id(agent_type: str, kpi: str, kind: str, stamp: str) -> str:
    """A page's id: ``{agent_type}-{kpi}-{kind}-{stamp}`` (the incident file's stem, with the kind).

    >>> page_id("coder", "error_rate", "threshold", "20260301T120000Z")
    'coder-error_rate-threshold-20260301T120000Z'
    """
    return f"{agent_type}-{kpi}-{kind}-{stamp}"


def file_stamp(iso_time: str) -> str:
    """The time stamp incident file names and page ids carry: ISO-8601 without ``:`` and ``-``.

    >>> file_stamp("2026-03-01T12:00:00Z")
    '20260301T120000Z'
    """
    return iso_time.replace(":", "").replace("-", "")


def new_page(agent_type: str, kpi: str, kind: str, session_id: str, now: str, value: float | None) -> dict[str, Any]:
    """One unacknowledged page opened at ``now`` (ISO-8601 UTC)."""
    stamp = file_stamp(now)
    return {
        "id": page_id(agent_type, kpi, kind, stamp),
        "agent_type": agent_type,
        "kpi": kpi,
        "kind": kind,
        "session_id": session_id,
        "opened_at": now,
        "value": value,
        "acknowledged_at": None,
    }


def load_pages(data_dir: Path) -> dict[str, Any]:
    """The pages document; missing or corrupt → an empty one (corruption is logged); never raises."""
    document, _ = read_document(data_dir / PAGES_FILE, "pages", empty_document)
    return document


def open_pages(document: Mapping[str, Any], agent_type: str | None = None) -> list[dict[str, Any]]:
    """The unacknowledged pages, of ``agent_type`` only when given, oldest first."""
    found = []
    for page in document.get("pages", []):
        if not isinstance(page, dict) or page.get("acknowledged_at"):
            continue
        if agent_type is None or page.get("agent_type") == agent_type:
            found.append(page)
    return found


def record_pages(
    data_dir: Path, pages: Iterable[Mapping[str, Any]], block_on_critical: bool, max_pages: int = MAX_PAGES
) -> None:
    """Add ``pages`` (ids already present are skipped) and store the ``block_on_critical`` setting;
    keep at most ``max_pages`` (every open page, then the newest acknowledged ones)."""
    new = list(pages)

    def change(document: dict[str, Any]) -> None:
        document["block_on_critical"] = block_on_critical
        known = {page.get("id") for page in document["pages"] if isinstance(page, dict)}
        document["pages"].extend(dict(page) for page in new if page["id"] not in known)
        document["pages"] = _trimmed(document["pages"], max_pages)

    update_pages(data_dir, change)


def acknowledge(data_dir: Path, now: str, page_ids: Iterable[str] = (), agent_type: str | None = None) -> list[str]:
    """Acknowledge the open pages named in ``page_ids``, or (no ids) every open page of
    ``agent_type``, or (neither) every open page. Returns the ids acknowledged now."""
    wanted = set(page_ids)

    def change(document: dict[str, Any]) -> list[str]:
        done = []
        for page in open_pages(document, agent_type):
            if wanted and page.get("id") not in wanted:
                continue
            page["acknowledged_at"] = now
            done.append(str(page.get("id")))
        return done

    return update_pages(data_dir, change)


def update_pages(data_dir: Path, change: Callable[[dict[str, Any]], T]) -> T:
    """Under the file's lock: read pages.json afresh, apply ``change`` in place, write it back when
    it changed (a corrupt file is moved aside to ``pages.json.corrupt-{UTC time}`` first)."""
    return update_document(data_dir / PAGES_FILE, "pages", empty_document, change)


def _trimmed(pages: list[Any], max_pages: int) -> list[Any]:
    """At most ``max_pages`` pages, dropping the oldest acknowledged ones first (open ones never)."""
    excess = len(pages) - max_pages
    if excess <= 0:
        return pages
    kept = []
    for page in pages:
        if excess > 0 and isinstance(page, dict) and page.get("acknowledged_at"):
            excess -= 1
            continue
        kept.append(page)
    return kept
