"""A faster ``__init__`` for frozen, slotted, keyword-only dataclasses (the event model).

A frozen dataclass's generated ``__init__`` sets each field through
``object.__setattr__(self, "name", value)`` — a global lookup, an attribute lookup and a name
lookup per field — which made building an event about 4× slower than building an unfrozen one
(3.1 µs against 0.7 µs for a 14-field ``ToolCall``; one event per span). :func:`fast_frozen_init`
replaces it with an ``__init__`` of the same signature that stores each argument through its slot's
member descriptor (1.8 µs). Nothing else changes: the instances stay frozen (``__setattr__`` still
raises ``FrozenInstanceError``), and ``__eq__``, ``__hash__``, ``__repr__``, ``dataclasses.replace``
and pickling behave as before. Classes it cannot speed up (a default factory, a field left out of
``__init__``, a ``__post_init__``, not keyword-only or not slotted) keep their generated ``__init__``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def fast_frozen_init(cls: type[T]) -> type[T]:
    """Give the frozen, slotted, keyword-only dataclass ``cls`` the faster ``__init__`` (see module)."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if not _eligible(cls, fields):
        return cls
    namespace: dict[str, Any] = {}
    params, body = [], []
    for index, item in enumerate(fields):
        namespace[f"_set{index}"] = getattr(cls, item.name).__set__
        if item.default is dataclasses.MISSING:
            params.append(item.name)
        else:
            namespace[f"_default{index}"] = item.default
            params.append(f"{item.name}=_default{index}")
        body.append(f"    _set{index}(self, {item.name})")
    source = f"def __init__(self, *, {', '.join(params)}) -> None:\n" + "\n".join(body or ["    pass"]) + "\n"
    exec(source, namespace)  # the way dataclasses itself builds __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    setattr(cls, "__init__", init)  # noqa: B010 (mypy refuses assigning a method)
    return cls


def _eligible(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> bool:
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        return False
    return all(
        item.init and item.kw_only is True and item.default_factory is dataclasses.MISSING and item.name.isidentifier()
        for item in fields
    )
