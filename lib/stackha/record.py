"""Small immutable value classes for the code an agent runs on every call.

Why not ``dataclasses``: importing it pulls in ``inspect``, ``ast``, ``dis`` and ``tokenize`` and
generates code for each class, which measured 18 ms per agent start on this project's machines —
more than the rest of a monitor call. A monitor runs every few seconds on every node for years,
so the classes on that path use this instead. Code off that path (install, lab, CLI) keeps
dataclasses.

A subclass lists its fields in ``__slots__``, writes a typed ``__init__`` and ends it with
``self._freeze(locals())``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


class Record:
    __slots__: tuple[str, ...] = ()

    def _freeze(self, values: Mapping[str, object]) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._fields()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({shown})"
