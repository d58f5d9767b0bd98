"""Collector-style durations in config: ``"30m"``, ``"24h"``, ``"1h30m"``, ``"500ms"`` or seconds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a duration string.

    >>> parse_duration("1h30m"), parse_duration("500ms"), parse_duration(45)
    (5400.0, 0.5, 45.0)
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '30m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"invalid duration {value!r}; use e.g. '30m', '24h', '1h30m' or seconds")
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    else:
        raise ValueError("a duration must be a number of seconds or a string like '30m'")
    if seconds < 0:
        raise ValueError("a duration must not be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A config field holding seconds, written as a number or a duration string."""
