"""Strict conversions of attribute values: bad values raise InputError, so one item is dropped,
never a whole request, and no NaN, infinite, negative or absurdly large number reaches a session.

Every number kpiloop reads from telemetry is an amount (tokens, USD, milliseconds, a judge's score,
a percentage, a metric's value) or a time: none is negative, and none is above :data:`MAX_COUNT`,
so sums over a session stay finite and exact enough.
"""

from __future__ import annotations

import math

from kpiloop.errors import InputError

MAX_COUNT = 2**53
"""Largest accepted count or amount: above it floats lose integer precision."""
MAX_TIME_NS = 2**63 - 1
"""Latest accepted time (nanoseconds since the epoch, year 2262): the int64 range every store uses."""
MAX_TEXT = 256
"""Longest identifier or name kept (model, tool, request id, ...); longer ones are cut."""


def as_count(value: object, key: str) -> int:
    """A non-negative integer count; None and "" read as 0.

    >>> as_count("2519", "input_tokens")
    2519
    >>> as_count(None, "output_tokens")
    0
    """
    if type(value) is int and 0 <= value <= MAX_COUNT:  # the common case, without float conversion
        return value
    if value is None or value == "":
        return 0
    number = _number(value, key)
    if number < 0 or number > MAX_COUNT or number != int(number):
        raise InputError(f"{key} must be a non-negative integer, got {shown(value)}", reason="bad_value")
    return int(number)


def as_optional_float(value: object, key: str) -> float | None:
    """A finite amount in [0, MAX_COUNT], or None when the value is absent.

    >>> as_optional_float("0.25", "cost_usd"), as_optional_float(None, "cost_usd")
    (0.25, None)
    """
    if value is None or value == "":
        return None
    number = _number(value, key)
    if number < 0 or number > MAX_COUNT:
        raise InputError(f"{key} must be between 0 and 2^53, got {shown(value)}", reason="bad_value")
    return number


def as_duration_ms(value: object, key: str) -> float:
    """A non-negative duration in milliseconds; absent reads as 0."""
    return as_optional_float(value, key) or 0.0


def start_before(end_ns: int, duration_ms: object, key: str) -> int:
    """The start of an interval that lasted ``duration_ms`` and ended at ``end_ns``; an interval
    reaching back before the epoch is refused (it would make a session decades long).

    >>> start_before(5_000_000, "2", "duration_ms")
    3000000
    """
    start = end_ns - round(as_duration_ms(duration_ms, key) * 1_000_000)
    if start < 0 and end_ns > 0:
        raise InputError(f"{key} reaches back before 1970, got {shown(duration_ms)}", reason="bad_value")
    return max(0, start)


def as_time_ns(value: int, key: str) -> int:
    """A time in nanoseconds since the epoch, in [0, MAX_TIME_NS]."""
    if not 0 <= value <= MAX_TIME_NS:
        raise InputError(f"{key} must be between 0 and 2^63-1 nanoseconds, got {shown(value)}", reason="bad_value")
    return value


def as_bool(value: object) -> bool | None:
    """True/False from a bool or the strings "true"/"false" (any case); None otherwise.

    >>> as_bool("false"), as_bool(True), as_bool("maybe")
    (False, True, None)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
    if isinstance(value, int):
        return bool(value)
    return None


def as_str(value: object) -> str | None:
    """A non-empty string (numbers as their text), at most MAX_TEXT characters; None otherwise."""
    if isinstance(value, str) and value:
        return value[:MAX_TEXT]
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**64):
        return str(value)
    return None


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"{key} must be a number, got {shown(value)}", reason="bad_value")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise InputError(f"{key} must be a number, got {shown(value)}", reason="bad_value") from None
    if not math.isfinite(number):
        raise InputError(f"{key} must be finite, got {shown(value)}", reason="bad_value")
    return number


def shown(value: object) -> str:
    """A bad value as an error message shows it: short, whatever its size or depth."""
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, bool | float) or (isinstance(value, int) and abs(value) < 10**40):
        return repr(value)
    return type(value).__name__
