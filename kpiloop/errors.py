"""kpiloop's exceptions.

KpiloopError                 base of everything kpiloop raises on purpose
├── ConfigError              invalid configuration; raised at start-up, shown by cli.py as one line
├── InputError               one unusable input item (a JSONL line, an OTLP record); the caller
│                            counts and skips it, it never stops a replay or a server
└── ExportError              a sink could not write
    ├── PermanentExportError retrying cannot help (bad path, permission denied)
    └── RetryableExportError retrying later may succeed (lock timeout, endpoint down)
"""

from __future__ import annotations


class KpiloopError(Exception):
    """Base class of kpiloop's own errors."""


class ConfigError(KpiloopError):
    """The configuration is invalid; the message names the key path and the reason."""


class InputError(KpiloopError):
    """One input item cannot be used; ``reason`` is a short label for counting refusals."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class ExportError(KpiloopError):
    """A sink failed to write."""


class PermanentExportError(ExportError):
    """A sink failed in a way retrying cannot fix."""


class RetryableExportError(ExportError):
    """A sink failed in a way that may pass on a later try."""
