"""Docker's multiplexed stream format (moby pkg/stdcopy/stdcopy.go).

Without a TTY, attach/exec/logs write each chunk as an 8-byte header (stream, three zero
bytes, big-endian uint32 length) followed by the chunk.
"""
from __future__ import annotations

import struct

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
_HEADER = struct.Struct(">BxxxI")


def frame(stream: int, data: bytes) -> bytes:
    """One stdWriter.Write: header plus payload."""
    return _HEADER.pack(stream, len(data)) + data


def demux(buf: bytes) -> list[tuple[int, bytes]]:
    """Split a complete multiplexed byte string into (stream, payload) (StdCopy, for tests)."""
    out, pos = [], 0
    while pos + 8 <= len(buf):
        stream, size = _HEADER.unpack_from(buf, pos)
        out.append((stream, buf[pos + 8: pos + 8 + size]))
        pos += 8 + size
    return out
