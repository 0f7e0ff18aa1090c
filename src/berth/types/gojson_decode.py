"""Decode request bodies into msgspec Structs the way Go's `json.NewDecoder(r).Decode(&v)` does.

Follows go1.19 src/encoding/json/decode.go (`object`, `array`, `literalStore`, `indirect`,
`addErrorContext`), src/encoding/json/fold.go (key matching) and
moby/api/types/strslice/strslice.go (`StrSlice.UnmarshalJSON`).

How it works: the C `json` module parses the body into Python values, keeping each object
as its ordered list of (key, value) pairs so that duplicate keys behave as in Go (last one
wins, objects merge into the value already decoded). A plan compiled once per Python type
then walks those values in document order: it folds keys onto field names, checks each
value against the field's Go kind, and records the first type error with Go's exact
wording, while building plain dicts that `msgspec.convert` turns into Structs. Only when
the C parser refuses the body (syntax error, trailing data, invalid UTF-8, NaN) does the
byte-by-byte port of Go's scanner run, to find the end of the first value or Go's message.
"""
from __future__ import annotations

import codecs
import copy
import json
import re
import threading
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec

from berth.types.gojson_scanner import parse_nested, read_value
from berth.types.gojson_values import (
    INT_RANGES,
    KEEP,
    MISSING,
    UNSET,
    AnyPlan,
    ArrayPlan,
    BoolPlan,
    FloatPlan,
    HardError,
    IntPlan,
    MapPlan,
    Num,
    Obj,
    Plan,
    PtrPlan,
    SlicePlan,
    State,
    StringPlan,
    StrSlicePlan,
    json_kind,
)

__all__ = ["EMBEDDED", "STRSLICE", "GoJSONError", "GoType", "StrSlice", "decode", "go_name"]

T = TypeVar("T")  # a Struct, or a container of Structs (list[...])


class GoJSONError(Exception):
    """A body Go's decoder would refuse; `str()` is Go 1.19's exact message.

    dockerd returns these untyped, so the API layer answers 500 with this text.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class GoType:
    """`Annotated` metadata naming the Go type of a field, as error messages print it.

    `name` is Go's `reflect.Type.String()` (`"int64"`, `"[]nat.PortBinding"`,
    `"time.Duration"`); a leading `*` is dropped, since Go reports the pointed-to type.
    `kind` gives the underlying kind of a named type (`GoType("fs.FileMode", "uint32")`) and
    so the accepted range of integers; basic names (`int64`, `uint16`, ...) imply it.
    `array_len` marks a fixed-size Go array, decoded into a list of that length; a name
    like `"[2]uint"` implies it. On `list[int]`/`dict[str, int]` (or float/str/bool
    elements) the element's Go type is read from the name too (`"[2]uint"` → `uint`).
    """

    name: str
    kind: str | None = None
    array_len: int | None = None


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


STRSLICE = _Marker("STRSLICE")
"""`Annotated` marker: strslice.StrSlice, a JSON string or an array of strings."""

EMBEDDED = _Marker("EMBEDDED")
"""`Annotated` marker on a `SomeStruct | None` field: a Go embedded `*SomeStruct`.

Its fields are matched at the level of the containing object and the value is created as
soon as one of its keys appears (even with `null`), as Go allocates an embedded pointer;
runconfig's ContainerConfigWrapper embeds `*container.Config` and `*container.HostConfig`
this way. Decoding only: msgspec cannot inline such a field when encoding.
"""

StrSlice = Annotated[list[str] | None, STRSLICE, GoType("strslice.StrSlice")]


def go_name(cls: type) -> str:
    """The Go type name of a Struct class, as `reflect.Type.String()` prints it.

    Declared as a `__go_name__` ClassVar on the class itself (`"container.HostConfig"`),
    or as an inherited non-empty `_go_name` ClassVar; else the class name.
    """
    name = cls.__dict__.get("__go_name__") or getattr(cls, "_go_name", None)
    return name if isinstance(name, str) and name else cls.__name__


# --- the parsed form -------------------------------------------------------------------


def _parse_int(s: str) -> int | Num:
    # Long literals stay text: int() refuses over 4300 digits and Go's message quotes them.
    if len(s) < 19 and s != "-0":
        return int(s)
    return Num(s)


def _reject_constant(s: str) -> None:
    raise ValueError(s)  # NaN, Infinity: not JSON to Go


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    # Go's unquote turns each byte that does not start a valid UTF-8 sequence into U+FFFD.
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd", err.start + 1


codecs.register_error("berth-gojson-replace", _go_replace)

_DECODER = json.JSONDecoder(
    object_pairs_hook=Obj, parse_float=Num, parse_int=_parse_int, parse_constant=_reject_constant
)


def _parse(data: bytes) -> Any:
    """Parse the first JSON value of `data`, or raise GoJSONError with Go's syntax message."""
    try:
        return _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError):
        pass  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    end, err = read_value(data)
    if err is not None:
        raise GoJSONError(err)
    # The scanner accepted the value, so any invalid UTF-8 sits inside strings.
    text = data[:end].decode("utf-8", "berth-gojson-replace")
    try:
        return _DECODER.decode(text)
    except RecursionError:
        return parse_nested(text, Obj, _parse_int, Num)


# Key folding (fold.go): ASCII letters ignore case; U+017F folds to 's' and U+212A to 'k'.
_FOLD = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_FOLD.update({0x17F: ord("s"), 0x212A: ord("k")})


class _Field:
    __slots__ = ("json", "key", "plan", "embed", "depth", "fast")

    def __init__(self, json_name: str, key: str, plan: Plan, embed: tuple[str, ...]) -> None:
        self.json, self.key, self.plan, self.embed = json_name, key, plan, embed
        self.depth = len(embed)
        # The Python type of values that can be stored without a check: most of a body.
        self.fast = _fast_type(plan.elem if isinstance(plan, PtrPlan) else plan)


def _fast_type(plan: Plan) -> type | None:
    if type(plan) is StringPlan:
        return str
    if type(plan) is BoolPlan:
        return bool
    # _parse_int leaves ints of 19+ digits as text, so any int fits a signed 64-bit field.
    if type(plan) is IntPlan and plan.lo <= -(2**63) and plan.hi >= 2**63 - 1:
        return int
    return None


_NOPE: Any = object()
_KEY_CACHE_MAX = 4096  # bound what unknown keys from clients can make us remember


class _StructPlan(Plan):
    __slots__ = ("cls", "name", "exact", "keys", "fold", "required", "embeds", "kept")

    def __init__(self, cls: type[msgspec.Struct]) -> None:
        go = go_name(cls)
        super().__init__(go)
        self.cls = cls
        self.name = go.rsplit(".", 1)[-1]  # reflect.Type.Name(): no package
        self.exact: dict[str, _Field] | None = None  # compiled on first use (forward refs)
        self.keys: dict[str, _Field | None] = {}  # exact names, then every key looked up
        self.fold: dict[str, _Field] = {}
        self.required: list[tuple[str, Plan]] = []
        self.embeds: list[tuple[str, _StructPlan]] = []
        self.kept: list[_Field] = []

    def _build(self) -> None:
        fields: list[_Field] = []
        for info in msgspec.structs.fields(self.cls):
            tp = info.type
            if typing.get_origin(tp) is Annotated and EMBEDDED in tp.__metadata__:
                sub = _embedded_struct(tp)
                self.embeds.append((info.encode_name, sub))
                for f in _declared(sub):
                    fields.append(_Field(f.json, f.key, f.plan, (info.encode_name, *f.embed)))
            else:
                fields.append(_Field(info.encode_name, info.encode_name, _plan(tp), ()))
            if info.required:
                self.required.append((info.encode_name, _plan(tp)))
        # Go's dominance rule (typeFields): the shallowest field of a name wins; two at the
        # same depth cancel out. Fold matching then takes the first field in field order.
        by_name: dict[str, list[_Field]] = {}
        for f in fields:
            by_name.setdefault(f.json, []).append(f)
        kept: list[_Field] = []
        for f in fields:
            same = by_name[f.json]
            top = min(g.depth for g in same)
            winners = [g for g in same if g.depth == top]
            if len(winners) == 1 and winners[0] is f:
                kept.append(f)
        exact = {f.json: f for f in kept}
        for f in kept:
            self.fold.setdefault(f.json.translate(_FOLD), f)
        self.kept = kept
        self.keys = dict(exact)
        self.exact = exact

    def _ready(self) -> dict[str, _Field]:
        return self.exact if self.exact is not None else self._compile()

    def _compile(self) -> dict[str, _Field]:
        with _COMPILE_LOCK:  # decode() runs in worker threads
            if self.exact is None:
                self._build()
            assert self.exact is not None  # _build sets it
            return self.exact

    def load(self, v: Any, d: State, cur: Any) -> Any:
        if type(v) is Obj:
            return self.load_object(v, d, cur, self.name)
        return KEEP if v is None else d.type_error(json_kind(v), self.go)

    def load_object(self, v: list[tuple[str, Any]], d: State, cur: Any, name: str) -> dict[str, Any]:
        if self.exact is None:
            self._compile()
        keys = self.keys
        out: dict[str, Any] = cur if type(cur) is dict else {}
        outer, stack, fix = d.struct, d.stack, d.fix
        d.struct = name  # errorContext.Struct while decoding this object's fields
        for k, x in v:
            f = keys.get(k, _NOPE)
            if f is _NOPE:
                f = self._fold_lookup(k)
            if f is None:
                continue  # unknown keys are skipped without looking at the value
            target = out if not f.embed else self._embedded_target(out, f.embed)
            if type(x) is f.fast and not fix:
                target[f.key] = x
                continue
            stack.append(f.json)
            r = f.plan.load(x, d, target.get(f.key, MISSING))
            stack.pop()
            if r is KEEP:
                continue
            if r is UNSET:
                target.pop(f.key, None)
            else:
                target[f.key] = r
        d.struct = outer
        if self.required or self.embeds:
            self.fill(out)
        return out

    def _fold_lookup(self, key: str) -> _Field | None:
        # fold.go: no exact match, so the first field in order that equals it folded.
        f = self.fold.get(key.translate(_FOLD))
        if len(self.keys) < _KEY_CACHE_MAX:
            self.keys[key] = f
        return f

    @staticmethod
    def _embedded_target(out: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        # Go allocates an embedded pointer as soon as one of its fields is matched.
        target = out
        for e in path:
            sub = target.get(e)
            if sub is None:
                sub = target[e] = {}
            target = sub
        return target

    def fill(self, out: dict[str, Any]) -> dict[str, Any]:
        """Give fields without a msgspec default Go's zero value, so convert() accepts them."""
        for key, plan in self.required:
            if key not in out:
                out[key] = plan.zero()
        for key, sub in self.embeds:
            got = out.get(key)
            if type(got) is dict:
                sub._ready()
                sub.fill(got)
        return out

    def zero(self) -> Any:
        self._ready()
        return self.fill({})


def _declared(plan: _StructPlan) -> list[_Field]:
    plan._ready()
    return plan.kept


def _embedded_struct(tp: Any) -> _StructPlan:
    base = tp.__origin__
    args = [a for a in typing.get_args(base) if a is not type(None)] if _is_union(base) else [base]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], msgspec.Struct):
        return _struct_plan(args[0])
    raise TypeError(f"EMBEDDED needs a Struct or Struct | None field, not {tp!r}")


_COMPILE_LOCK = threading.RLock()
_STRUCT_PLANS: dict[type, _StructPlan] = {}
_PLANS: dict[Any, Plan] = {}


def _struct_plan(cls: type[msgspec.Struct]) -> _StructPlan:
    plan = _STRUCT_PLANS.get(cls)
    if plan is None:
        plan = _STRUCT_PLANS[cls] = _StructPlan(cls)
    return plan


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _plan(tp: Any) -> Plan:
    plan = _PLANS.get(tp)
    if plan is None:
        plan = _PLANS[tp] = _compile(tp, None)
    return plan


def _compile(tp: Any, gt: GoType | None) -> Plan:  # one case per type form
    origin = typing.get_origin(tp)
    if origin is Annotated:
        meta = tp.__metadata__
        gt = next((m for m in meta if isinstance(m, GoType)), gt)
        if STRSLICE in meta:
            return StrSlicePlan(gt.name if gt else "strslice.StrSlice", _allows_none(tp.__origin__))
        return _compile(tp.__origin__, gt)
    go = gt.name.lstrip("*") if gt else None
    if _is_union(tp):
        # msgspec.UnsetType only marks "absent" (omitempty on output): decode as without it.
        all_args = [a for a in typing.get_args(tp) if a is not msgspec.UnsetType]
        args = [a for a in all_args if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"gojson supports only `X | None` unions, not {tp!r}")
        if len(all_args) == 1:
            return _compile(args[0], gt)
        inner = _compile(args[0], gt)
        if isinstance(inner, (SlicePlan, MapPlan, StrSlicePlan)):
            inner.nullable = True  # nil slice or map, not a pointer
            return inner
        if isinstance(inner, AnyPlan):
            return inner
        return PtrPlan(inner)
    if tp is Any or tp is object:
        return AnyPlan(go or "interface {}")
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _struct_plan(tp)
    if origin is list:
        (elem_tp,) = typing.get_args(tp) or (Any,)
        m = _GO_ARRAY.match(go) if go else None
        elem = _elem_plan(elem_tp, m.group(2) if m else None)
        n = gt.array_len if gt and gt.array_len is not None else (int(m.group(1)) if m and m.group(1) else None)
        if n is not None:
            return ArrayPlan(go or f"[{n}]{elem.go}", elem, n)
        return SlicePlan(go or "[]" + elem.go, elem, False)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp) or (str, Any)
        if key_tp is not str:
            raise TypeError(f"gojson maps need str keys, not {tp!r}")
        m = _GO_MAP.match(go) if go else None
        elem = _elem_plan(val_tp, m.group(1) if m else None)
        return MapPlan(go or "map[string]" + elem.go, elem, False)
    kind = gt.kind if gt and gt.kind else None
    if tp is bool:
        return BoolPlan(go or "bool")
    if tp is str:
        return StringPlan(go or "string")
    if tp is int:
        kind = kind or (go if go in INT_RANGES else "int")
        return IntPlan(go or "int", kind)
    if tp is float:
        kind = kind or (go if go in ("float32", "float64") else "float64")
        return FloatPlan(go or "float64", 32 if kind == "float32" else 64)
    raise TypeError(f"gojson cannot decode into {tp!r}")


_GO_ARRAY = re.compile(r"\[(\d*)\](.+)\Z")
_GO_MAP = re.compile(r"map\[string\](.+)\Z")


def _elem_plan(elem_tp: Any, go_elem: str | None) -> Plan:
    """Element plan; a plain int/float/str/bool element takes its Go name from the
    container's (`GoType("[2]uint")` on `list[int]` makes the elements `uint`)."""
    if go_elem is not None and elem_tp in (int, float, str, bool):
        return _compile(elem_tp, GoType(go_elem))
    return _plan(elem_tp)


def _allows_none(tp: Any) -> bool:
    return _is_union(tp) and type(None) in typing.get_args(tp)


def decode(data: bytes, typ: type[T], *, go_type_name: str) -> T:
    """Decode a request body into Struct `typ` as `json.NewDecoder(body).Decode(&v)` would.

    Only the first JSON value is read. `go_type_name` is Go's name of the destination
    (`"runconfig.ContainerConfigWrapper"`), for messages about the value as a whole.
    Raises GoJSONError with Go 1.19's message: `EOF`, `unexpected EOF`, a scanner syntax
    error, or the first `json: cannot unmarshal ...` type error (Go finishes decoding and
    reports the first; an error from an UnmarshalJSON method such as StrSlice's stops
    decoding and wins).
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    value = _parse(data)
    d = State(b"\\ud" in data or b"\\uD" in data)
    if not (isinstance(typ, type) and issubclass(typ, msgspec.Struct)):
        # A slice or map at the top (`[]string`, types.PluginPrivileges): its own plan,
        # under the Go name the caller gives.
        top = copy.copy(_plan(typ))
        top.go = go_type_name
        out = top.load(value, d, None)
        if d.err is not None:
            raise GoJSONError(d.err)
        if out is KEEP or out is UNSET:
            out = top.zero()  # null: Go leaves the nil slice or map
        return typing.cast(T, None) if out is None else msgspec.convert(out, typ)
    plan = _struct_plan(typ)
    if type(value) is Obj:
        try:
            out = plan.load_object(value, d, None, go_type_name.rsplit(".", 1)[-1])
        except HardError as e:
            raise GoJSONError(str(e)) from None
    elif value is None:
        out = plan.zero()  # null into a struct is a no-op
    else:
        d.type_error(json_kind(value), go_type_name)
        out = {}
    if d.err is not None:
        raise GoJSONError(d.err)
    return msgspec.convert(out, typ)
