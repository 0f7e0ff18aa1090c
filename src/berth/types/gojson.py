"""Go's encoding/json conventions, so Berth reads and writes JSON exactly as dockerd does.

Decoding (request bodies) lives in gojson_decode.py and the syntax-error scanner in
gojson_scanner.py; this module is the one place the rest of Berth imports from.

Encoding follows go1.19 src/encoding/json/encode.go as used by moby:
* `encode_response`: moby/api/server/httputils/httputils_write_json.go `WriteJSON`, a
  `json.Encoder` with `SetEscapeHTML(false)`.
* `encode_stream`: a plain `json.Encoder` (HTML escaping on), as used for the /events
  stream, the /wait body, config.v2.json and hostconfig.json (moby/container/container.go
  `toDisk`, `WriteHostConfig`).
Both are compact and end with "\\n"; Struct fields keep declaration order while map keys
are sorted by byte order (Go sorts map keys; msgspec's `order="deterministic"` sorts dict
keys by code point, the same order as UTF-8 bytes, and leaves Structs alone). msgspec
already escapes what Go escapes except for the cases patched here, and only when their
bytes occur: `\\b`/`\\f` (Go 1.19 writes `\\u0008`/`\\u000c`), U+2028/U+2029, and in stream
mode `<`, `>`, `&`. Strings holding lone surrogates (surrogateescape'd file names) are
written with U+FFFD for each, as Go writes U+FFFD for each invalid UTF-8 byte.

Not reproduced: Go's float formatting (`1` for 1.0, `1e+21`); dockerd's API objects carry
integers, so a float field should not be used where byte-exact output matters.

Times: `format_go_time` / `parse_go_time` follow time.Time's MarshalJSON/UnmarshalJSON
(RFC 3339 with nanoseconds, trailing zeros trimmed).
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import msgspec

from berth.types.gojson_decode import (
    EMBEDDED,
    STRSLICE,
    GoJSONError,
    GoType,
    StrSlice,
    decode,
    go_name,
)

__all__ = [
    "EMBEDDED",
    "GO_ZERO_TIME",
    "GO_ZERO_TIME_NS",
    "STRSLICE",
    "GoJSONError",
    "GoType",
    "StrSlice",
    "decode",
    "encode_response",
    "encode_stream",
    "format_go_time",
    "go_name",
    "parse_go_time",
]

_ENCODER = msgspec.json.Encoder(order="deterministic")

_ESCAPE_PAIR = re.compile(rb"\\(.)")
_GO_SHORT = {b"b": b"\\u0008", b"f": b"\\u000c"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_escape(m: re.Match[bytes]) -> bytes:
    return _GO_SHORT.get(m.group(1), m.group(0))


def _sanitize(obj: Any) -> Any:
    """Copy of `obj` with lone surrogates in strings replaced by U+FFFD."""
    if isinstance(obj, str):
        return _SURROGATE.sub("\ufffd", obj)
    if isinstance(obj, dict):
        return {_sanitize(k): _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    if isinstance(obj, msgspec.Struct):
        changes = {f: _sanitize(getattr(obj, f)) for f in obj.__struct_fields__}
        return msgspec.structs.replace(obj, **changes)
    return obj


def _encode(obj: Any) -> bytes:
    try:
        out = _ENCODER.encode(obj)
    except UnicodeEncodeError:
        out = _ENCODER.encode(_sanitize(obj))
    # One-byte probes first (memchr): most answers hold no backslash and no U+2028/9 lead byte.
    if b"\\" in out and (b"\\b" in out or b"\\f" in out):
        # Walk escape pairs left to right so an escaped backslash before 'b' is left alone.
        out = _ESCAPE_PAIR.sub(_go_escape, out)
    if b"\xe2" in out and (b"\xe2\x80\xa8" in out or b"\xe2\x80\xa9" in out):
        out = out.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    return out


def encode_response(obj: Any) -> bytes:
    """Encode `obj` as httputils.WriteJSON does: compact, no HTML escaping, then "\\n"."""
    return _encode(obj) + b"\n"


def encode_stream(obj: Any) -> bytes:
    """Encode `obj` as a default json.Encoder does: `<`, `>`, `&` escaped, then "\\n"."""
    out = _encode(obj)
    if b"<" in out or b">" in out or b"&" in out:
        out = out.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    return out + b"\n"


# --- time.Time ---------------------------------------------------------------------------

GO_ZERO_TIME = "0001-01-01T00:00:00Z"
"""How Go writes the zero time.Time (a container never started, never finished)."""

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
GO_ZERO_TIME_NS = -62135596800 * 10**9
"""The zero time.Time as nanoseconds since the Unix epoch (what parse_go_time returns)."""

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))\Z"
)


def format_go_time(value: int | _dt.datetime | None) -> str:
    """Format a time as Go's time.Time.MarshalJSON does (RFC 3339, nanoseconds trimmed).

    `value` is nanoseconds since the Unix epoch (always written in UTC, as dockerd's
    times are), or a datetime (naive means UTC; an aware one keeps its offset), or None
    for Go's zero time. A zero offset is written `Z`, as Go does for any location.
    """
    if value is None:
        return GO_ZERO_TIME
    if isinstance(value, _dt.datetime):
        offset = value.utcoffset() if value.tzinfo is not None else None
        dt, nanos = value, value.microsecond * 1000
    else:
        secs, nanos = divmod(value, 10**9)
        dt, offset = _EPOCH + _dt.timedelta(seconds=secs), None
    out = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if nanos:
        out += f".{nanos:09d}".rstrip("0")
    if not offset:
        return out + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return out + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_go_time(text: str) -> int:
    """Parse an RFC 3339 time as time.Time.UnmarshalJSON does; nanoseconds since the epoch.

    Fractions beyond nanoseconds are truncated. Raises ValueError on anything else.
    `GO_ZERO_TIME` parses to `GO_ZERO_TIME_NS`.
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zulu, sign, oh, om = m.groups()[6:]
    if int(oh or 0) > 23 or int(om or 0) > 59:
        raise ValueError(f"time zone offset out of range: {text!r}")
    offset = 0 if zulu else (int(oh) * 3600 + int(om) * 60) * (-1 if sign == "-" else 1)
    try:
        dt = _dt.datetime(year, month, day, hour, minute, second, tzinfo=_dt.UTC)
    except ValueError as e:
        raise ValueError(f"not an RFC 3339 time: {text!r}: {e}") from None
    delta = dt - _EPOCH
    secs = delta.days * 86400 + delta.seconds - offset
    nanos = int((frac or "0")[:9].ljust(9, "0"))
    return secs * 10**9 + nanos
