"""What both halves of the API version gates use (versions.py: containers, networks, exec;
versions_system.py: images, system, events, volumes): the version bounds, comparisons
and the document helpers. Below both, so neither imports the other."""
from __future__ import annotations

import re
from typing import Any

import msgspec

from ..types import gojson
from .httputils import compare_versions

MAX_API_VERSION = "1.52"
MIN_API_VERSION = "1.12"
# The newest version answered exactly as dockerd 20.10: nothing here touches it.
LEGACY_VERSION = "1.41"

_ENCODER = msgspec.json.Encoder()  # insertion order: the decoded document keeps Go's order


def newer_than_legacy(version: str) -> bool:
    """True for 1.42 and up: the request gets dockerd 29's answers."""
    return compare_versions(version, LEGACY_VERSION) > 0


def before(version: str, v: str) -> bool:
    return compare_versions(version, v) < 0


def at_least(version: str, v: str) -> bool:
    return compare_versions(version, v) >= 0


# --- encoding helpers ---------------------------------------------------------------------

def to_doc(obj: Any) -> Any:
    """A plain (dict/list) copy of an API answer, keys in the order they are written."""
    raw = obj if isinstance(obj, (bytes, bytearray)) else gojson.encode_response(obj)
    return msgspec.json.decode(raw)


def encode_doc(doc: Any) -> bytes:
    """Encode a document from to_doc() as httputils.WriteJSON does (see types/gojson.py)."""
    out = _ENCODER.encode(doc)
    if b"\\b" in out or b"\\f" in out:
        out = re.sub(rb"\\(.)", lambda m: {b"b": b"\\u0008", b"f": b"\\u000c"}.get(m.group(1), m.group(0)), out)
    if b"\xe2\x80\xa8" in out or b"\xe2\x80\xa9" in out:
        out = out.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    return out + b"\n"


def _drop(d: dict[str, Any], *keys: str) -> None:
    for k in keys:
        d.pop(k, None)


def _drop_empty(d: dict[str, Any], *keys: str) -> None:
    """Go omitempty: drop the keys whose value is empty ("", 0, null, [], {}, false)."""
    for k in keys:
        if k in d and not d[k]:
            del d[k]
