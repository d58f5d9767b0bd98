"""The faster __init__ of the event model behaves exactly like the dataclass-generated one."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from typing import Any

import pytest

from kpiloop import model
from kpiloop.fast_init import fast_frozen_init

EVENT_CLASSES = [
    cls
    for cls in vars(model).values()
    if isinstance(cls, type)
    and dataclasses.is_dataclass(cls)
    and all(item.kw_only is True for item in dataclasses.fields(cls))
]


def reference(cls: type) -> type:
    """The same fields as a plain frozen, slotted, keyword-only dataclass (its generated __init__)."""
    spec = [(f.name, f.type, dataclasses.field(default=f.default)) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(f"Reference{cls.__name__}", spec, frozen=True, slots=True, kw_only=True)


def required_args(cls: type) -> dict[str, Any]:
    values = {"session_id": "s-1", "agent_type": "coder", "start_ns": 1, "end_ns": 2, "source": "plan"}
    return {
        f.name: values.get(f.name, f"v-{f.name}") for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
    }


def test_every_keyword_only_event_class_has_the_fast_init() -> None:
    assert len(EVENT_CLASSES) >= 10
    for cls in EVENT_CLASSES:
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
        assert "_set0" in cls.__init__.__code__.co_names or not dataclasses.fields(cls)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_same_fields_defaults_and_signature_as_the_generated_init(cls: type) -> None:
    args = required_args(cls)
    built, expected = cls(**args), reference(cls)(**args)
    assert dataclasses.astuple(built) == dataclasses.astuple(expected)
    assert [(p.name, p.kind, p.default) for p in inspect.signature(cls).parameters.values()] == [
        (p.name, p.kind, p.default) for p in inspect.signature(reference(cls)).parameters.values()
    ]


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_still_frozen_equal_hashable_replaceable_and_picklable(cls: type) -> None:
    args = required_args(cls)
    built = cls(**args)
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, first, "other")
    assert built == cls(**args) and hash(built) == hash(cls(**args))
    assert pickle.loads(pickle.dumps(built)) == built
    assert getattr(dataclasses.replace(built, **{first: "changed"}), first) == "changed"


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_wrong_calls_fail_as_before(cls: type) -> None:
    args = required_args(cls)
    missing = dict(list(args.items())[1:])
    with pytest.raises(TypeError):
        cls(**missing)
    with pytest.raises(TypeError):
        cls(**args, no_such_field=1)
    with pytest.raises(TypeError):
        cls(*args.values())


def test_classes_it_cannot_speed_up_keep_their_generated_init() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class WithFactory:
        items: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class NotSlotted:
        a: int

    @dataclasses.dataclass(slots=True, kw_only=True)
    class NotFrozen:
        a: int

    for cls in (WithFactory, NotSlotted, NotFrozen):
        generated = cls.__init__
        assert fast_frozen_init(cls).__init__ is generated
