"""Strict conversions of attribute values: bad values raise InputError, so one item is dropped,
never a whole request, and no NaN or negative count reaches a session."""

from __future__ import annotations

import math

from kpiloop.errors import InputError

MAX_COUNT = 2**53
"""Largest accepted count: above it floats lose integer precision."""


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
        raise InputError(f"{key} must be a non-negative integer, got {value!r}", reason="bad_value")
    return int(number)


def as_optional_float(value: object, key: str) -> float | None:
    """A finite float, or None when the value is absent."""
    if value is None or value == "":
        return None
    return _number(value, key)


def as_duration_ms(value: object, key: str) -> float:
    """A non-negative duration in milliseconds; absent reads as 0."""
    number = as_optional_float(value, key)
    if number is None:
        return 0.0
    if number < 0:
        raise InputError(f"{key} must not be negative, got {value!r}", reason="bad_value")
    return number


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
    """A non-empty string, or None."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _number(value: object, key: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{key} must be a number, got a boolean", reason="bad_value")
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"{key} must be a number, got {value[:40]!r}", reason="bad_value") from None
    else:
        raise InputError(f"{key} must be a number, got {type(value).__name__}", reason="bad_value")
    if not math.isfinite(number):
        raise InputError(f"{key} must be finite, got {value!r}", reason="bad_value")
    return number
