from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from kpiloop.durations import Duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30m", 1800.0),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("5ms", 0.005),
        ("1m5s", 65.0),
        ("90s", 90.0),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("0.25s", 0.25),
        ("1d2h3m4s5ms", 93784.005),
        (" 1h 30m ", 5400.0),
        ("0s", 0.0),
        (45, 45.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    result = parse_duration(value)
    assert isinstance(result, float)
    assert result == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize(
    "value",
    ["", "   ", "abc", "10", "5x", "1h30", "h", "m5", "1H", "30 minutes", "1h-30m", "-5m", "1,5h", "5m!", ".5s"],
)
def test_invalid_duration_strings_name_the_value(value: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as caught:
        parse_duration(value)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", [-1, -0.5])
def test_negative_durations_are_rejected(value: float) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False, None, [30], {"m": 30}])
def test_non_numbers_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="number of seconds or a string"):
        parse_duration(value)


class _Timeouts(BaseModel):
    idle: Duration = 60.0


def test_duration_field_in_a_pydantic_model() -> None:
    assert _Timeouts().idle == 60.0
    assert _Timeouts.model_validate({"idle": "1h30m"}).idle == 5400.0
    assert _Timeouts.model_validate({"idle": 7}).idle == 7.0
    with pytest.raises(ValidationError, match="invalid duration"):
        _Timeouts.model_validate({"idle": "soon"})
