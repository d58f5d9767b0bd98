"""Shared type aliases and the injectable clock."""

from __future__ import annotations

import time
from typing import NewType, Protocol

SessionId = NewType("SessionId", str)
"""A session id after sanitizing (safe in paths and labels)."""

AgentType = NewType("AgentType", str)
"""An agent type after sanitizing to ``[a-z0-9._-]``."""


class Clock(Protocol):
    """Arrival-time clock: seconds since the epoch. Injected so tests never patch ``time``."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()
