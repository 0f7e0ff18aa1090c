"""Human sizes (github.com/docker/go-units RAMInBytes, FromHumanSize)."""
from __future__ import annotations

import re

_SIZE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DEC = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}


def _parse(s: str, table: dict[str, int]) -> int:
    m = _SIZE.match(s)
    if not m:
        raise ValueError(f"invalid size: '{s}'")
    return int(float(m.group(1)) * table[(m.group(3) or "").lower()])


def ram_in_bytes(s: str) -> int:
    return _parse(s, _UNITS)


def from_human_size(s: str) -> int:
    return _parse(s, _DEC)
