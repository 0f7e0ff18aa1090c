"""Legacy v1 image JSON, as schema1 manifests carry it in `v1Compatibility`
(moby/image/v1/imagev1.go HistoryFromConfig, MakeConfigFromV1Config; moby/image/image.go
V1Image; moby/api/types/versions/compare.go).

The image config dockerd builds from a schema1 manifest is Go's json.Marshal of a
`map[string]*json.RawMessage`: the top entry's own keys (sorted; each value compacted and
HTML-escaped as the encoder does for a RawMessage, otherwise byte for byte as it came),
less the v1-only ones, plus `rootfs` and `history`. For JSON written by Docker before 1.8.3
the entry first goes through Go's V1Image struct, which drops unknown keys and writes the
container configs whole.
"""
from __future__ import annotations

import json
import re
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from ..types import gojson
from ..types.container import Config, HealthConfig
from ..types.gostruct import GoStruct, Int64

NO_FALLBACK_MIN_VERSION = "1.8.3"
_V1_ONLY_KEYS = ("id", "parent", "Size", "parent_id", "layer_id", "throwaway")
_VALID_HEX = re.compile(r"[a-f0-9]{64}\Z")
_ATOI = re.compile(r"[+-]?[0-9]+\Z")


class V1Error(ValueError):
    """A v1Compatibility entry Go would not decode; str() is the message."""


class V1Image(GoStruct):
    """image.V1Image in declaration order."""

    _go_name = "image.V1Image"
    _omitempty_ptr = frozenset({"config"})
    id: str | UnsetType = UNSET
    parent: str | UnsetType = UNSET
    comment: str | UnsetType = UNSET
    created: str = gojson.GO_ZERO_TIME
    container: str | UnsetType = UNSET
    container_config: Config = msgspec.field(default_factory=Config)
    docker_version: str | UnsetType = UNSET
    author: str | UnsetType = UNSET
    config: Config | None | UnsetType = UNSET
    architecture: str | UnsetType = UNSET
    variant: str | UnsetType = UNSET
    os: str | UnsetType = UNSET
    Size: Int64 | UnsetType = UNSET


class History(GoStruct):
    """image.History."""

    _go_name = "image.History"
    created: str = gojson.GO_ZERO_TIME
    author: str | UnsetType = UNSET
    created_by: str | UnsetType = UNSET
    comment: str | UnsetType = UNSET
    empty_layer: bool | UnsetType = UNSET


class RootFS(GoStruct):
    """image.RootFS."""

    _go_name = "image.RootFS"
    type: str = "layers"
    diff_ids: list[str] | UnsetType = UNSET


_LAYOUT = '"2006-01-02T15:04:05Z07:00"'
# (literal before, element) pairs of the layout time.Time's UnmarshalJSON parses with
_CHUNKS: tuple[tuple[str, str | None], ...] = (
    ('"', "2006"), ("-", "01"), ("-", "02"), ("T", "15"), (":", "04"), (":", "05"), ("", "Z07:00"), ('"', None))


def _quote(s: str) -> str:
    """time's quote(): `"` and `\\` escaped, other bytes outside printable ASCII as \\xNN."""
    out = ['"']
    for ch in s:
        if ord(ch) >= 0x80 or ch < " ":
            out += [f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape")]
            continue
        if ch in '"\\':
            out.append("\\")
        out.append(ch)
    return "".join(out) + '"'


def _getnum(s: str, fixed: bool) -> tuple[int, str] | None:
    if not s[:1].isdigit() or not s[:1].isascii():
        return None
    if not (s[1:2].isdigit() and s[1:2].isascii()):
        return None if fixed else (int(s[0]), s[1:])
    return int(s[:2]), s[2:]


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def parse_time_json(raw: str) -> str:
    """time.Time's UnmarshalJSON (Go 1.19: Parse of the JSON text, quotes included, with
    `"` + RFC3339 + `"`) then its MarshalJSON: the time as dockerd writes it back (fraction
    cut to nanoseconds, trailing zeros dropped, a zero offset `Z`). V1Error with Go's
    ParseError text."""
    def bad(layout_elem: str, value_elem: str) -> V1Error:
        return V1Error(f"parsing time {_quote(raw)} as {_quote(_LAYOUT)}: cannot parse {_quote(value_elem)} as "
                       f"{_quote(layout_elem)}")

    def out_of_range(what: str) -> V1Error:
        return V1Error(f"parsing time {_quote(raw)}: {what} out of range")

    value = raw
    year = month = day = hour = minute = second = 0
    frac = ""
    offset: int | None = 0
    for prefix, elem in _CHUNKS:
        rest = value
        for ch in prefix:
            if not rest or rest[0] != ch:
                raise bad(prefix, rest)
            rest = rest[1:]
        value = rest
        if elem is None:
            if value:
                raise V1Error(f"parsing time {_quote(raw)}: extra text: {_quote(value)}")
            break
        hold = value
        got: tuple[int, str] | None
        if elem == "2006":
            if len(value) < 4 or not _ATOI.match(value[:4]):
                raise bad(elem, hold)
            year, value = int(value[:4]), value[4:]
        elif elem == "Z07:00":
            if value[:1] == "Z":
                value, offset = value[1:], None
                continue
            if len(value) < 6 or value[3] != ":":
                raise bad(elem, hold)
            sign, hh, mm, value = value[0], value[1:3], value[4:6], value[6:]
            h, m = _getnum(hh, True), _getnum(mm, True)
            if h is None or m is None:
                raise bad(elem, hold)
            if h[0] > 24:
                raise out_of_range("time zone offset hour")
            if m[0] > 60:
                raise out_of_range("time zone offset minute")
            if sign not in "+-":
                raise bad(elem, hold)
            offset = (h[0] * 60 + m[0]) * 60 * (-1 if sign == "-" else 1)
        else:
            got = _getnum(value, elem != "15")
            if got is None:
                raise bad(elem, hold)
            n, value = got
            if elem == "01":
                if not 1 <= n <= 12:
                    raise out_of_range("month")
                month = n
            elif elem == "02":
                day = n
            elif elem == "15":
                if n >= 24:
                    raise out_of_range("hour")
                hour = n
            elif elem == "04":
                if n >= 60:
                    raise out_of_range("minute")
                minute = n
            else:
                if n >= 60:
                    raise out_of_range("second")
                second = n
                if len(value) >= 2 and value[0] in ".," and value[1].isdigit() and value[1].isascii():
                    k = 2
                    while k < len(value) and value[k].isdigit() and value[k].isascii():
                        k += 1
                    frac, value = value[1:min(k, 10)], value[k:]
    if day < 1 or day > _days_in(month, year):
        raise V1Error(f"parsing time {_quote(raw)}: day out of range")
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    frac = frac.rstrip("0")
    if frac:
        text += "." + frac
    if not offset:
        return text + "Z"
    minutes = abs(offset) // 60
    return text + ("-" if offset < 0 else "+") + f"{minutes // 60:02d}:{minutes % 60:02d}"


def go_time(text: str) -> str:
    """A time string as Go reads and writes it back (see parse_time_json)."""
    return parse_time_json(json.dumps(text, ensure_ascii=False))


def decode_v1_image(raw: bytes) -> V1Image:
    """json.Unmarshal(raw, &image.V1Image{}), with `created` in Go's form."""
    created = gojson.GO_ZERO_TIME
    # Time's UnmarshalJSON gets the value's own text; its error stops the decoding at once,
    # before any type error found elsewhere (Go only keeps those for the end)
    try:
        found = members(raw.decode("utf-8", "replace"))
    except V1Error:
        found = []  # not an object: the decoder below says so as Go does
    for key, value in found:
        if key.lower() == "created" and value != "null":
            created = parse_time_json(value)
    try:
        img = gojson.decode(raw, V1Image, go_type_name="image.V1Image")
    except gojson.GoJSONError as e:
        raise V1Error(str(e)) from None
    try:
        json.loads(raw)  # json.Unmarshal refuses anything after the value, Decode would not
    except ValueError as e:
        raise V1Error(f"invalid character after top-level value: {e}") from None
    img.created = created
    return img


def _struct_json(img: V1Image) -> bytes:
    """json.Marshal(v1Image): omitempty fields dropped, HealthConfig as 20.10 has it."""
    img.normalize_omitempty()
    for c in (img.container_config, img.config):
        if isinstance(c, Config):
            c.normalize_omitempty()
            if isinstance(c.Healthcheck, HealthConfig):
                c.Healthcheck.StartInterval = UNSET  # API 1.44; not in 20.10's struct
                c.Healthcheck.normalize_omitempty()
    return gojson.encode_stream(img)[:-1]


def validate_id(v1_id: str) -> None:
    """stringid.ValidateID."""
    if not _VALID_HEX.match(v1_id):
        raise V1Error(f"image ID {json.dumps(v1_id)} is invalid")


def _atoi(s: str) -> int:
    return int(s) if _ATOI.match(s) else 0


def version_less(v1: str, v2: str) -> bool:
    """versions.LessThan: dot-separated parts compared as integers (non-numbers count 0)."""
    a, b = v1.split("."), v2.split(".")
    for i in range(max(len(a), len(b))):
        x = _atoi(a[i]) if i < len(a) else 0
        y = _atoi(b[i]) if i < len(b) else 0
        if x != y:
            return x < y
    return False


def history_from_config(image_json: bytes, empty_layer: bool) -> History:
    """HistoryFromConfig: the image.History of a v1 entry."""
    img = decode_v1_image(image_json)
    h = History(img.created, img.author, " ".join(img.container_config.Cmd or []), img.comment, empty_layer)
    h.normalize_omitempty()
    return h


def throwaway(image_json: bytes) -> bool:
    """The `throwaway` flag of a v1 entry (json.Unmarshal into a struct with one bool)."""
    try:
        doc = json.loads(image_json)
    except ValueError as e:
        raise V1Error(str(e)) from None
    if not isinstance(doc, dict):
        raise V1Error("json: cannot unmarshal into Go value of type struct { ThrowAway bool "
                      '"json:\\"throwaway,omitempty\\"" }')
    value: Any = False
    for k, v in doc.items():  # Go matches keys case-insensitively; the last one wins
        if k.lower() == "throwaway" and v is not None:
            value = v
    if not isinstance(value, bool):
        raise V1Error(f"json: cannot unmarshal {_go_kind(value)} into Go struct field .throwaway of type bool")
    return value


def _go_kind(v: Any) -> str:
    if isinstance(v, str):
        return "string"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, list):
        return "array"
    return "object"


def _docker_version(doc: dict[str, Any]) -> str:
    value: Any = ""
    for k, v in doc.items():
        if k.lower() == "docker_version" and v is not None:
            value = v
    if not isinstance(value, str):
        raise V1Error(f"json: cannot unmarshal {_go_kind(value)} into Go struct field .docker_version of type string")
    return value


def compact(raw: str) -> str:
    """What json.Marshal writes for a RawMessage: insignificant whitespace removed,
    `<`, `>`, `&`, U+2028 and U+2029 escaped; everything else as it is."""
    out: list[str] = []
    in_str = esc = False
    for ch in raw:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch in " \t\r\n":
            continue
        elif ch == '"':
            in_str = True
        if ch in "<>&\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def members(text: str) -> list[tuple[str, str]]:
    """The members of a JSON object in order: each key and its value's source text."""
    dec = json.JSONDecoder()
    ws = re.compile(r"[ \t\r\n]*")
    i = ws.match(text, 0).end()  # type: ignore[union-attr]  # the pattern matches anywhere
    try:
        json.loads(text)
    except ValueError as e:
        raise V1Error(str(e)) from None
    if text[i:i + 1] != "{":
        raise V1Error("json: cannot unmarshal non-object into Go value of type map[string]*json.RawMessage")
    out: list[tuple[str, str]] = []
    i = ws.match(text, i + 1).end()  # type: ignore[union-attr]
    if text[i] == "}":
        return out
    while True:
        key, i = dec.raw_decode(text, i)
        i = ws.match(text, i).end()  # type: ignore[union-attr]
        i = ws.match(text, i + 1).end()  # type: ignore[union-attr]  # past ':'
        _, end = dec.raw_decode(text, i)
        out.append((key, text[i:end]))
        i = ws.match(text, end).end()  # type: ignore[union-attr]
        if text[i] == "}":
            return out
        i = ws.match(text, i + 1).end()  # type: ignore[union-attr]  # past ','


def raw_members(text: str) -> dict[str, str]:
    """json.Unmarshal into map[string]*json.RawMessage: each key's value as its source
    text (a repeated key keeps its last value)."""
    out: dict[str, str] = {}
    for key, value in members(text):
        out.pop(key, None)
        out[key] = value
    return out


def make_config_from_v1_config(image_json: bytes, diff_ids: list[str], history: list[History]) -> bytes:
    """MakeConfigFromV1Config: the image config (its sha256 is the image ID)."""
    try:
        doc = json.loads(image_json)
    except ValueError as e:
        raise V1Error(str(e)) from None
    if not isinstance(doc, dict):
        raise V1Error("json: cannot unmarshal into Go value of type struct { DockerVersion string "
                      '"json:\\"docker_version\\"" }')
    if version_less(_docker_version(doc), NO_FALLBACK_MIN_VERSION):
        image_json = _struct_json(decode_v1_image(image_json))
    members = {k: compact(v) for k, v in raw_members(image_json.decode("utf-8", "replace")).items()}
    for k in _V1_ONLY_KEYS:
        members.pop(k, None)
    rootfs = RootFS("layers", diff_ids or UNSET)
    members["rootfs"] = gojson.encode_stream(rootfs)[:-1].decode()
    members["history"] = gojson.encode_stream(history)[:-1].decode()
    body = ",".join(gojson.encode_stream(k)[:-1].decode() + ":" + members[k] for k in sorted(members))
    return ("{" + body + "}").encode()
