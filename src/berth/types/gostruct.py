"""The base of the API structs (GoStruct: Go type names for decode errors, omitempty)
and Go's integer types, below every struct module of types/."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import UNSET, Struct

from .gojson import GoType

# Go integer types, named so that decode errors say what dockerd says ("of type int64").
Int64 = Annotated[int, GoType("int64")]
Uint16 = Annotated[int, GoType("uint16")]
Uint64 = Annotated[int, GoType("uint64")]
Duration = Annotated[int, GoType("time.Duration", "int64")]


class GoStruct(Struct, omit_defaults=False):
    """Base of the API structs: `_go_name` is the Go type name used in decode errors;
    `_omitempty_ptr` names omitempty pointer fields, dropped only when nil."""

    _go_name: ClassVar[str] = ""
    _omitempty_ptr: ClassVar[frozenset[str]] = frozenset()

    def normalize_omitempty(self) -> None:
        """Replace empty omitempty values by UNSET so they are not written (Go omitempty)."""
        for name, is_ptr in _omitempty_fields(type(self)):
            value = getattr(self, name)
            if value is UNSET:
                continue
            if (value is None) if is_ptr else (not value):
                setattr(self, name, UNSET)


_OMITEMPTY_CACHE: dict[type, tuple[tuple[str, bool], ...]] = {}


def _omitempty_fields(cls: Any) -> tuple[tuple[str, bool], ...]:  # a GoStruct subclass
    """(field name, is a pointer) for each field defaulting to UNSET, computed once per class."""
    got = _OMITEMPTY_CACHE.get(cls)
    if got is None:
        fields = cls.__struct_fields__
        defs = cls.__struct_defaults__
        defaults = (msgspec.NODEFAULT,) * (len(fields) - len(defs)) + tuple(defs)
        ptrs = cls._omitempty_ptr
        got = tuple((n, n in ptrs) for n, d in zip(fields, defaults, strict=True) if d is UNSET)
        _OMITEMPTY_CACHE[cls] = got
    return got
