"""Random IDs (moby/pkg/stringid/stringid.go)."""
from __future__ import annotations

import secrets

SHORT_LEN = 12


def generate_random_id() -> str:
    """64 lowercase hex chars whose 12-char prefix is never all digits.

    dockerd regenerates such IDs because a short ID that parses as a number could be
    mistaken for one (e.g. by `docker ps -n`).
    """
    while True:
        value = secrets.token_hex(32)
        if not value[:SHORT_LEN].isdigit():
            return value


def truncate_id(value: str) -> str:
    """The 12-char short form; anything up to a `:` (e.g. `sha256:`) is dropped first."""
    if ":" in value:
        value = value.split(":", 1)[1]
    return value[:SHORT_LEN]


def is_short_id(value: str) -> bool:
    return len(value) == SHORT_LEN and all(c in "0123456789abcdef" for c in value)
