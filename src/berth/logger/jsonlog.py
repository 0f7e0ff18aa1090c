"""dockerd's json-file lines, byte for byte (moby v20.10.24 daemon/logger/jsonfilelog/jsonlog
jsonlogbytes.go MarshalJSONBuf, ffjsonWriteJSONBytesAsString, fastTimeMarshalJSON), and Go's
encoding/json string escaping for the other drivers' JSON (gelf) and the `attrs` object.

A line is `{"log":...,"stream":...,"attrs":{...},"time":"<RFC3339Nano UTC>"}\\n`:
- `log` is escaped as ffjson does: `"` `\\` `\\n` `\\r` short, every other control byte and
  `<` `>` `&` as `\\u00XX` (so a tab is `\\u0009`), U+2028/2029 as `\\u2028`/`\\u2029`, and
  each byte that is not valid UTF-8 as `\\ufffd`;
- `attrs` is encoding/json of a map (keys sorted; tab is `\\t` there), made once per
  container;
- `time` is Go's RFC3339Nano: trailing zeros of the fraction dropped, `Z`.
"""
from __future__ import annotations

import codecs
import datetime as _dt
import re
from collections.abc import Callable

from ..runtime.k8sfile import parse_time

_BAD = "\udcff"  # stands for one invalid byte: a lone surrogate never comes out of valid UTF-8


def _per_byte(e: UnicodeError) -> tuple[str, int]:
    # Go's utf8.DecodeRune reports every invalid byte on its own (size 1), Python groups
    # a truncated sequence: one marker per byte keeps Go's count of U+FFFD.
    assert isinstance(e, UnicodeDecodeError)
    return _BAD * (e.end - e.start), e.end


codecs.register_error("berth-gojson", _per_byte)

_COMMON = {0x22: '\\"', 0x5C: "\\\\", 0x3C: "\\u003c", 0x3E: "\\u003e", 0x26: "\\u0026",
           0x2028: "\\u2028", 0x2029: "\\u2029", ord(_BAD): "\\ufffd", 0x0A: "\\n", 0x0D: "\\r"}
_FF = {c: f"\\u00{c:02x}" for c in range(0x20)} | _COMMON
_GO = _FF | {0x09: "\\t"}
# A byte string that needs no escaping at all: the fast path for most log lines.
_PLAIN = re.compile(rb'[\x00-\x1f"\\<>&\x80-\xff]')
_PLAIN_STR = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\udcff]')


def ff_string(data: bytes) -> bytes:
    """ffjsonWriteJSONBytesAsString: `data` as a JSON string, quotes included."""
    if _PLAIN.search(data) is None:
        return b'"' + data + b'"'
    text = data.decode("utf-8", "berth-gojson")
    return b'"' + text.translate(_FF).encode() + b'"'


def go_string(text: str) -> str:
    """encoding/json (Go 1.19) of a string, quotes included; HTML characters escaped."""
    if _PLAIN_STR.search(text) is None:
        return '"' + text + '"'
    return '"' + text.translate(_GO) + '"'


def go_bytes_string(data: bytes) -> str:
    """encoding/json of a Go string holding these bytes (invalid UTF-8 → \\ufffd)."""
    return go_string(data.decode("utf-8", "berth-gojson"))


def go_map(m: dict[str, str]) -> str:
    """json.Marshal(map[string]string): sorted keys, no spaces."""
    return "{" + ",".join(f"{go_string(k)}:{go_string(v)}" for k, v in sorted(m.items())) + "}"


def rfc3339nano(ts: bytes) -> bytes:
    """conmon's `YYYY-MM-DDTHH:MM:SS.fffffffff±hh:mm` as Go's RFC3339Nano in UTC
    (`2026-12-02T07:44:35.76634882Z`)."""
    if ts.endswith((b"+00:00", b"Z")) and ts[19:20] == b".":
        frac = ts[20:29].rstrip(b"0")
        return ts[:19] + (b"." + frac if frac else b"") + b"Z"
    return rfc3339nano_ns(_parse_any(ts)).encode()


def _parse_any(ts: bytes) -> int:
    return parse_time(ts.decode())


def rfc3339nano_ns(ns: int) -> str:
    sec, frac = divmod(ns, 1_000_000_000)
    base = _dt.datetime.fromtimestamp(sec, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    f = f"{frac:09d}".rstrip("0")
    return base + ("." + f if f else "") + "Z"


def marshal(log: bytes, stream: bytes, attrs: bytes, time: bytes) -> bytes:
    """JSONLogs.MarshalJSONBuf plus the newline jsonfilelog writes after it. `attrs` is the
    raw JSON object (b"" for none)."""
    out = b'{"log":' + ff_string(log) + b"," if log else b"{"
    out += b'"stream":"' + stream + b'",'
    if attrs:
        out += b'"attrs":' + attrs + b","
    return out + b'"time":"' + time + b'"}\n'


# Printable ASCII but the characters JSON or ffjson escape, and the newline: a chunk made
# of these alone needs no escaping (checked with bytes.translate, far faster than a regex).
_PLAIN_BYTES = bytes(c for c in range(0x20, 0x7F) if chr(c) not in '"\\<>&') + b"\n"
_HEAD = 45  # len("2026-12-02T07:44:35.766348820+00:00 stdout F "): conmon runs with TZ=UTC


def fast_lines(attrs: bytes) -> Callable[[bytes], bytes | None]:
    """A chunk of conmon's whole-line (F) records, all stamped `+00:00`, → dockerd's lines
    by slicing, when nothing in it needs escaping (the common case; anything else returns
    None and takes the message path). The same bytes as `marshal`."""
    mid = b'\\n","stream":"'
    tail = b'",' + (b'"attrs":' + attrs + b"," if attrs else b"") + b'"time":"'

    def convert(chunk: bytes) -> bytes | None:
        if chunk.translate(None, _PLAIN_BYTES):
            return None
        lines = chunk.split(b"\n")
        lines.pop()
        # every line must carry a UTC header (a line's data holding one more only sends
        # the chunk the slow way), and fit in one dockerd message
        if (chunk.count(b"+00:00 stdout ") + chunk.count(b"+00:00 stderr ") != len(lines)
                or max(map(len, lines)) >= _HEAD + 16384):
            return None
        for ln in (lines[0], lines[-1]):
            if ln[29:35] != b"+00:00" or ln[42:44] != b" F":
                return None
        return b"".join([b'{"log":"' + ln[_HEAD:] + mid + ln[36:42] + tail + ln[:29].rstrip(b"0").rstrip(b".") +
                         b'Z"}\n' for ln in lines])

    return convert


__all__ = ["fast_lines", "ff_string", "go_bytes_string", "go_map", "go_string", "marshal", "rfc3339nano", "rfc3339nano_ns"]
