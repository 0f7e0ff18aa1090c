"""Detach keys (github.com/moby/term ascii.go ToBytes, proxy.go escapeProxy).

`docker attach` and `docker exec -it` leave a container running when the user types the
detach sequence (ctrl-p,ctrl-q unless configured). dockerd only looks for it on a TTY and
only in reads of exactly one byte, which is how a terminal delivers key presses; a pasted
block containing the same bytes passes through. We keep that behaviour.
"""
from __future__ import annotations

# ASCII control names, index = code (moby/term ascii.go).
_ASCII = ["ctrl-@", "ctrl-a", "ctrl-b", "ctrl-c", "ctrl-d", "ctrl-e", "ctrl-f", "ctrl-g", "ctrl-h", "ctrl-i",
          "ctrl-j", "ctrl-k", "ctrl-l", "ctrl-m", "ctrl-n", "ctrl-o", "ctrl-p", "ctrl-q", "ctrl-r", "ctrl-s",
          "ctrl-t", "ctrl-u", "ctrl-v", "ctrl-w", "ctrl-x", "ctrl-y", "ctrl-z", "ctrl-[", "ctrl-\\", "ctrl-]",
          "ctrl-^", "ctrl-_"]

DEFAULT_ESCAPE_KEYS = bytes([16, 17])  # ctrl-p, ctrl-q (container/stream/attach.go)


class EscapeError(Exception):
    """term.EscapeError: the detach sequence was typed."""

    def __str__(self) -> str:
        return "read escape sequence"


def to_bytes(keys: str) -> bytes:
    """ToBytes: "ctrl-p,ctrl-q" or single characters, comma separated; ValueError names the
    first unknown key."""
    codes = bytearray()
    for key in keys.split(","):
        if len(key.encode()) == 1:
            codes.append(key.encode()[0])
            continue
        if key in _ASCII:
            codes.append(_ASCII.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


class EscapeProxy:
    """escapeProxy: feed it each chunk read from the client; it returns what to pass on
    (a partial sequence is held back until it is broken or completed) and raises
    EscapeError when the whole sequence has been typed."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.pos = 0

    def feed(self, data: bytes) -> bytes:
        if not self.keys:
            return data
        if len(data) != 1:
            return self._preserve(data)
        if data[0] != self.keys[self.pos]:
            return self._preserve(data)
        if self.pos == len(self.keys) - 1:
            raise EscapeError()
        self.pos += 1
        return b""

    def _preserve(self, data: bytes) -> bytes:
        held, self.pos = self.keys[: self.pos], 0
        return held + data
