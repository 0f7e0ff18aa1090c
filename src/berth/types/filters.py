"""The `filters` query parameter (moby/api/types/filters/parse.go, v20.10).

`Args` maps a filter key to a set of values. On the wire it is
`{"key":{"value":true}}`; the pre-1.22 form `{"key":["value"]}` is still
accepted. Parsing follows Go: `json.Unmarshal` into
`map[string]map[string]bool`, and on failure into `map[string][]string`; if
both fail, the *first* error is returned, unclassified (a 500), with
encoding/json's exact text (`invalid character 'x' looking for beginning of
value`, `json: cannot unmarshal array into Go value of type map[string]bool`).

A value mapped to `false` (`{"k":{"v":false}}`) is kept: `get` lists it, but
`exact_match` does not match it, as in Go.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import errdefs
from .gojson_scanner import quote_char, read_value
from .timestamp import get_timestamp, parse_timestamps


def invalid_filter(key: str, values: list[str] | None = None) -> errdefs.InvalidParameter:
    """`Invalid filter 'key'`, or `Invalid filter 'key=[v1 v2]'` with values.

    The first is filters.invalidFilter (Validate); the second the daemon's own
    invalidFilter{filter, value} (daemon/errors.go, daemon/images), whose `%s` of a
    []string prints `[a b]`.
    """
    if values is None:
        return errdefs.InvalidParameter(f"Invalid filter '{key}'")
    return errdefs.InvalidParameter(f"Invalid filter '{key}=[{' '.join(values)}]'")


def match_kv_list(values: Iterable[str], sources: Mapping[str, str] | None) -> bool:
    """Every `k` or `k=v` of `values` is present in `sources` (labels); none match empty ones."""
    if not sources:
        return False
    for value in values:
        test_k, sep, test_v = value.partition("=")
        if test_k not in sources:
            return False
        if sep and sources[test_k] != test_v:
            return False
    return True


class Args:
    """A mapping of filter keys to sets of values (filters.Args)."""

    __slots__ = ("_fields",)

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: dict[str, dict[str, bool]] = {}
        for key, value in pairs:
            self.add(key, value)

    @classmethod
    def from_json(cls, text: str) -> Args:
        """filters.FromJSON: "" is no filter; else the current or the legacy form."""
        args = cls()
        if text == "":
            return args
        _check_valid(text)
        doc = json.loads(text, object_pairs_hook=_Pairs)
        err = _type_error(doc, _CURRENT)
        if err is None:
            if isinstance(doc, _Pairs):
                for key, values in doc:
                    # Duplicate keys: Go decodes each into a fresh map, so the last wins.
                    # A null value leaves Go's bool false, but the key is stored.
                    args._fields[key] = {} if values is None else {v: bool(b) for v, b in values}
            return args
        if _type_error(doc, _LEGACY) is not None:
            raise errdefs.Untyped(err)
        for key, items in doc:
            args._fields[key] = {("" if v is None else v): True for v in (items or [])}
        return args

    def to_json(self) -> str:
        """filters.ToJSON: "" for no filters."""
        if not self._fields:
            return ""
        return json.dumps(self._fields, separators=(",", ":"), sort_keys=True)

    def keys(self) -> list[str]:
        return list(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Args({self._fields!r})"

    def get(self, key: str) -> list[str]:
        """All values at `key` (also those mapped to false), [] if none."""
        return list(self._fields.get(key) or ())

    def add(self, key: str, value: str) -> None:
        self._fields.setdefault(key, {})[value] = True

    def delete(self, key: str, value: str) -> None:
        """Args.Del: remove a value, and the key with its last value."""
        values = self._fields.get(key)
        if values is not None:
            values.pop(value, None)
            if not values:
                del self._fields[key]

    def contains(self, key: str) -> bool:
        return key in self._fields

    def validate(self, accepted: Iterable[str]) -> None:
        """Raise `Invalid filter 'key'` (400) for the first key not in `accepted`."""
        allowed = set(accepted)
        for key in self._fields:
            if key not in allowed:
                raise invalid_filter(key)

    def exact_match(self, key: str, source: str) -> bool:
        """True when no filter is set at `key`, or `source` is one of its values."""
        values = self._fields.get(key)
        if not values:
            return True
        return values.get(source, False)

    def unique_exact_match(self, key: str, source: str) -> bool:
        """As exact_match, but false when more than one value is set."""
        values = self._fields.get(key)
        if not values:
            return True
        if len(values) != 1:
            return False
        return values.get(source, False)

    def fuzzy_match(self, key: str, source: str) -> bool:
        """exact_match, or `source` starts with one of the values."""
        if self.exact_match(key, source):
            return True
        return any(source.startswith(prefix) for prefix in self._fields.get(key) or ())

    def match(self, key: str, source: str) -> bool:
        """exact_match, or one of the values, as a regular expression, matches `source`.

        Go's regexp.MatchString is unanchored (a search); values that are not valid
        expressions are skipped. Python's `re` syntax stands in for RE2's.
        """
        if self.exact_match(key, source):
            return True
        for pattern in self._fields.get(key) or ():
            try:
                if re.search(pattern, source):
                    return True
            except re.error:
                continue
        return False

    def match_kv_list(self, key: str, sources: Mapping[str, str] | None) -> bool:
        """Every value at `key` (`k` or `k=v`) is present in `sources` (labels)."""
        values = self._fields.get(key)
        if not values:
            return True
        return match_kv_list(values, sources)

    def get_bool_or_default(self, key: str, default: bool) -> bool:
        """The boolean at `key` (`1`/`true` or `0`/`false`), or `default` if unset.

        Raises `Invalid filter 'key'` for an empty set and `Invalid filter
        'key=[values]'` for values that are neither or both, as moby's
        GetBoolOrDefault (added after 20.10; 20.10's image list and prune test
        `dangling` by hand with exact_match and raise the same `key=[values]` text).
        """
        values = self._fields.get(key)
        if values is None:
            return default
        if not values:
            raise invalid_filter(key)
        is_false = values.get("0", False) or values.get("false", False)
        is_true = values.get("1", False) or values.get("true", False)
        if is_false == is_true:
            raise invalid_filter(key, self.get(key))
        return is_true

    def walk_values(self, key: str, op: Callable[[str], None]) -> None:
        """Call `op` on each value at `key`; an exception from `op` stops the walk."""
        for value in list(self._fields.get(key) or ()):
            op(value)

    def clone(self) -> Args:
        new = Args()
        new._fields = {k: dict(v) for k, v in self._fields.items()}
        return new


# --- json.Unmarshal's errors ------------------------------------------------------------
# The text of a malformed `filters` value reaches the client verbatim, so the two
# parts of json.Unmarshal that produce it are reproduced: the syntax check
# (checkValid), which runs before any decoding, and the first UnmarshalTypeError of
# decoding into the target type. gojson's decoder targets Structs read from a body
# stream, not these two map types, hence this small walk.


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, duplicates and order kept."""


# Target types: ("map", elem) | ("slice", elem) | ("bool",) | ("string",), with Go's name.
_Type = tuple[Any, ...]
_BOOL: _Type = ("bool", "bool")
_STRING: _Type = ("string", "string")
_CURRENT: _Type = ("map", "map[string]map[string]bool", ("map", "map[string]bool", _BOOL))
_LEGACY: _Type = ("map", "map[string][]string", ("slice", "[]string", _STRING))


def _kind(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _type_error(value: Any, target: _Type) -> str | None:
    """The first `json: cannot unmarshal X into Go value of type T`, in document order.

    null decodes into anything (maps and slices become nil, a bool is left alone).
    Maps carry no field context, so Go never names a "struct field" here.
    """
    if value is None:
        return None
    kind = _kind(value)
    tag = target[0]
    ok = (
        (tag == "map" and kind == "object")
        or (tag == "slice" and kind == "array")
        or (tag == "bool" and kind == "bool")
        or (tag == "string" and kind == "string")
    )
    if not ok:
        return f"json: cannot unmarshal {kind} into Go value of type {target[1]}"
    if tag == "map":
        for _, item in value:
            err = _type_error(item, target[2])
            if err is not None:
                return err
    elif tag == "slice":
        for item in value:
            err = _type_error(item, target[2])
            if err is not None:
                return err
    return None


def _check_valid(text: str) -> None:
    """encoding/json checkValid (what Unmarshal runs first): Go's syntax error, unclassified.

    The scanner is gojson's port of Decoder.readValue; Unmarshal differs only in how it
    names a premature end (`unexpected end of JSON input`, not `EOF`) and in refusing
    anything but white space after the value.
    """
    data = text.encode("utf-8", "surrogateescape")
    end, err = read_value(data)
    if err in ("EOF", "unexpected EOF"):
        raise errdefs.Untyped("unexpected end of JSON input")
    if err is not None:
        raise errdefs.Untyped(err)
    rest = data[end:].lstrip(b" \t\r\n")
    if rest:
        raise errdefs.Untyped(f"invalid character {quote_char(rest[0])} after top-level value")


# -- prune filters (daemon/prune.go, daemon/images/image_prune.go) --------------------------
def until_from_prune_filters(filters: Args) -> int | None:
    """getUntilFromPruneFilters: the `until` filter as Unix nanoseconds, None without one."""
    values = filters.get("until")
    if not values:
        return None
    if len(values) > 1:
        raise errdefs.Untyped("more than one until filter specified")
    sec, nsec = parse_timestamps(get_timestamp(values[0]), 0)
    return sec * 1_000_000_000 + nsec


def match_labels(filters: Args, labels: dict[str, str] | None) -> bool:
    """matchLabels: every `label` filter matches and no `label!` one does."""
    labels = labels or {}
    if not filters.match_kv_list("label", labels):
        return False
    return not (filters.contains("label!") and filters.match_kv_list("label!", labels))
