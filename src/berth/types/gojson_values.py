"""The value plans of the Go-style body decoder: one class per kind of Go destination.

Internal to gojson (see gojson_decode.py for the whole picture). Each plan follows the
matching case of go1.19 src/encoding/json/decode.go: `literalStore` for strings, bools and
numbers (strconv.ParseInt/ParseUint/ParseFloat, then the overflow check), `array` for
slices and fixed arrays, `object` for maps, `indirect` for pointers; StrSlicePlan follows
moby/api/types/strslice/strslice.go. A plan's `load(v, state, cur)` returns the value to
store, KEEP to leave the destination alone, or UNSET to put the field back to its default;
`cur` is what an earlier duplicate key already decoded, which Go decodes into.
"""
from __future__ import annotations

import math
import re
import struct
from typing import Any

__all__ = [
    "KEEP", "MISSING", "UNSET", "AnyPlan", "ArrayPlan", "BoolPlan", "FloatPlan", "HardError",
    "INT_RANGES", "IntPlan", "MapPlan", "Num", "Obj", "Plan", "PtrPlan", "SlicePlan", "State",
    "StrSlicePlan", "StringPlan", "json_kind",
]


class Obj(list):
    """A JSON object as its (key, value) pairs in document order."""

    __slots__ = ()


class Num(str):
    """The text of a number that is not a plain int: `1.5`, `1e3`, `-0`, or a long int."""

    __slots__ = ()


_SURROGATE = re.compile("[\ud800-\udfff]")


# --- decoding state and errors -----------------------------------------------------------

KEEP: Any = object()  # leave the destination as it is (null into a value, or a type error)
UNSET: Any = object()  # null into a slice/map that cannot hold None: back to the default
MISSING: Any = object()


class State:
    """One decode call: the first type error and decode.go's errorContext for messages."""

    __slots__ = ("err", "struct", "stack", "fix")

    def __init__(self, fix: bool) -> None:
        self.err: str | None = None  # first saved UnmarshalTypeError (decode.go saveError)
        self.struct: str | None = None  # errorContext.Struct.Name()
        self.stack: list[str] = []  # errorContext.FieldStack
        self.fix = fix  # the body has \u escapes that may be lone surrogates

    def message(self, what: str, go: str) -> str:
        if self.struct is not None or self.stack:
            return (
                f"json: cannot unmarshal {what} into Go struct field "
                f"{self.struct}.{'.'.join(self.stack)} of type {go}"
            )
        return f"json: cannot unmarshal {what} into Go value of type {go}"

    def type_error(self, what: str, go: str) -> Any:
        if self.err is None:
            self.err = self.message(what, go)
        return KEEP

    def string(self, s: str) -> str:
        # Python keeps a lone \ud800 as a surrogate; Go's unquote writes U+FFFD.
        return _SURROGATE.sub("\ufffd", s) if self.fix else s


class HardError(Exception):
    """An error returned (not saved) by an UnmarshalJSON method: decoding stops there."""


def json_kind(v: Any) -> str:
    """The JSON kind of `v`, as UnmarshalTypeError.Value spells it."""
    t = type(v)
    if t is str:
        return "string"
    if t is bool:
        return "bool"
    if t is int or t is Num:
        return "number"
    if t is Obj:
        return "object"
    return "array"


# --- plans ---------------------------------------------------------------------------------


class Plan:
    """How to decode a JSON value into one Python/Go type; `go` is the Go type's name."""

    __slots__ = ("go",)

    def __init__(self, go: str) -> None:
        self.go = go

    def load(self, v: Any, d: State, cur: Any) -> Any:
        raise NotImplementedError

    def zero(self) -> Any:
        raise NotImplementedError


class StringPlan(Plan):
    __slots__ = ()

    def load(self, v: Any, d: State, cur: Any) -> Any:
        if type(v) is str:
            return d.string(v) if d.fix else v
        return KEEP if v is None else d.type_error(json_kind(v), self.go)

    def zero(self) -> Any:
        return ""


class BoolPlan(Plan):
    __slots__ = ()

    def load(self, v: Any, d: State, cur: Any) -> Any:
        if type(v) is bool:
            return v
        return KEEP if v is None else d.type_error(json_kind(v), self.go)

    def zero(self) -> Any:
        return False


_SIGNED_INT = re.compile(r"-?[0-9]{1,25}")
_UNSIGNED_INT = re.compile(r"[0-9]{1,25}")
INT_RANGES = {
    "int": (-(2**63), 2**63 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int8": (-(2**7), 2**7 - 1),
    "uint": (0, 2**64 - 1),
    "uint64": (0, 2**64 - 1),
    "uintptr": (0, 2**64 - 1),
    "uint32": (0, 2**32 - 1),
    "uint16": (0, 2**16 - 1),
    "uint8": (0, 2**8 - 1),
}


class IntPlan(Plan):
    """literalStore's Int/Uint cases: strconv.ParseInt/ParseUint, then an overflow check."""

    __slots__ = ("lo", "hi")

    def __init__(self, go: str, kind: str) -> None:
        super().__init__(go)
        self.lo, self.hi = INT_RANGES[kind]

    def load(self, v: Any, d: State, cur: Any) -> Any:
        t = type(v)
        if t is int:
            if self.lo <= v <= self.hi:
                return v
            return d.type_error(f"number {v}", self.go)
        if t is Num:
            # "-0" parses as a signed int but not as an unsigned one, as in Go.
            if (_SIGNED_INT if self.lo < 0 else _UNSIGNED_INT).fullmatch(v):
                n = int(v)
                if self.lo <= n <= self.hi:
                    return n
            return d.type_error(f"number {v}", self.go)
        return KEEP if v is None else d.type_error(json_kind(v), self.go)

    def zero(self) -> Any:
        return 0


class FloatPlan(Plan):
    __slots__ = ("bits",)

    def __init__(self, go: str, bits: int) -> None:
        super().__init__(go)
        self.bits = bits

    def load(self, v: Any, d: State, cur: Any) -> Any:
        t = type(v)
        if t is int or t is Num:
            f = float(v)
            if math.isinf(f):
                return d.type_error(f"number {v}", self.go)
            if self.bits == 32:
                try:
                    struct.pack("<f", f)  # standard size: checks the range
                except OverflowError:  # beyond float32's range
                    return d.type_error(f"number {v}", self.go)
            return f
        return KEEP if v is None else d.type_error(json_kind(v), self.go)

    def zero(self) -> Any:
        return 0.0


class AnyPlan(Plan):
    """interface{}: objects become dicts (last duplicate wins); numbers keep int or float."""

    __slots__ = ()

    def load(self, v: Any, d: State, cur: Any) -> Any:
        t = type(v)
        if t is Obj:
            return {d.string(k): self.load(x, d, None) for k, x in v}
        if t is list:
            return [self.load(x, d, None) for x in v]
        if t is Num:
            if _SIGNED_INT.fullmatch(v):
                return int(v)
            f = float(v)
            return d.type_error(f"number {v}", "float64") if math.isinf(f) else f
        if t is str:
            return d.string(v)
        return v

    def zero(self) -> Any:
        return None


class PtrPlan(Plan):
    """`X | None` for a Go pointer: null sets nil; otherwise decode into the pointee."""

    __slots__ = ("elem",)

    def __init__(self, elem: Plan) -> None:
        super().__init__(elem.go)  # Go's messages name the pointed-to type
        self.elem = elem

    def load(self, v: Any, d: State, cur: Any) -> Any:
        if v is None:
            return None
        has = cur is not MISSING and cur is not None
        r = self.elem.load(v, d, cur if has else MISSING)
        if r is KEEP or r is UNSET:
            return cur if has else self.elem.zero()  # indirect() already allocated it
        return r

    def zero(self) -> Any:
        return None


class SlicePlan(Plan):
    __slots__ = ("elem", "nullable")

    def __init__(self, go: str, elem: Plan, nullable: bool) -> None:
        super().__init__(go)
        self.elem, self.nullable = elem, nullable

    def load(self, v: Any, d: State, cur: Any) -> Any:
        if type(v) is list:
            # decode.go array(): elements already in the slice are decoded into, not replaced.
            old = cur if type(cur) is list else ()
            el, out = self.elem, []
            for i, x in enumerate(v):
                prev = old[i] if i < len(old) else MISSING
                r = el.load(x, d, prev)
                if r is KEEP or r is UNSET:
                    r = el.zero() if prev is MISSING else prev
                out.append(r)
            return out
        if v is None:
            return None if self.nullable else UNSET
        return d.type_error(json_kind(v), self.go)

    def zero(self) -> Any:
        return None if self.nullable else []


class ArrayPlan(Plan):
    """A fixed Go array: extra elements are skipped unchecked, missing ones zeroed."""

    __slots__ = ("elem", "n")

    def __init__(self, go: str, elem: Plan, n: int) -> None:
        super().__init__(go)
        self.elem, self.n = elem, n

    def load(self, v: Any, d: State, cur: Any) -> Any:
        if type(v) is list:
            old = cur if type(cur) is list else ()
            out = []
            for i in range(self.n):
                prev = old[i] if i < len(old) else MISSING
                if i >= len(v):
                    out.append(self.elem.zero())
                    continue
                r = self.elem.load(v[i], d, prev)
                if r is KEEP or r is UNSET:
                    r = self.elem.zero() if prev is MISSING else prev
                out.append(r)
            return out
        return KEEP if v is None else d.type_error(json_kind(v), self.go)

    def zero(self) -> Any:
        return [self.elem.zero() for _ in range(self.n)]


class MapPlan(Plan):
    __slots__ = ("elem", "nullable")

    def __init__(self, go: str, elem: Plan, nullable: bool) -> None:
        super().__init__(go)
        self.elem, self.nullable = elem, nullable

    def load(self, v: Any, d: State, cur: Any) -> Any:
        if type(v) is Obj:
            # An existing map is added to; each value is decoded into a fresh zero value.
            out = cur if type(cur) is dict else {}
            el = self.elem
            for k, x in v:
                r = el.load(x, d, MISSING)
                if r is KEEP or r is UNSET:
                    r = el.zero()
                out[d.string(k) if d.fix else k] = r
            return out
        if v is None:
            return None if self.nullable else UNSET
        return d.type_error(json_kind(v), self.go)

    def zero(self) -> Any:
        return None if self.nullable else {}


class StrSlicePlan(Plan):
    """strslice.StrSlice.UnmarshalJSON: try []string, then string; the error is not saved."""

    __slots__ = ("nullable",)

    def __init__(self, go: str, nullable: bool) -> None:
        super().__init__(go)
        self.nullable = nullable

    def load(self, v: Any, d: State, cur: Any) -> Any:
        t = type(v)
        if t is str:
            return [d.string(v)]
        if t is list:
            if all(type(x) is str or x is None for x in v):
                return ["" if x is None else d.string(x) for x in v]
            # Unmarshal into []string failed, so the value is retried as a string.
            raise HardError(d.message("array", "string"))
        if v is None:
            return None if self.nullable else UNSET
        raise HardError(d.message(json_kind(v), "string"))

    def zero(self) -> Any:
        return None if self.nullable else []
