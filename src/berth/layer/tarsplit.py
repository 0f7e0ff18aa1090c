"""Remember a layer tar's exact bytes without keeping its file contents.

moby keeps `tar-split.json.gz` beside each layer (moby/layer/layer_store.go
applyTar with github.com/vbatts/tar-split): the tar's headers and padding verbatim,
and for each file's payload only its path and size. `docker save` then rebuilds the
original tar byte for byte from the unpacked files, so the layer's diff ID (the
sha256 of the uncompressed tar) still matches the image config. Berth does the
same with its own compact format:

    record := b"R" u32 len bytes        raw bytes (headers, padding, end blocks)
            | b"F" u32 len path u64 n    n bytes of payload, read from `path` in the layer

all gzip-compressed. The format is Berth's own, hence the file name.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from .scopedpath import open_in_root

FILE_NAME = "tar-split.berth.gz"


class RecordingReader:
    """A read-only stream over the decompressed layer that digests every byte and keeps
    the bytes the tar-split needs (everything but file payloads) until taken."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.digest = hashlib.sha256()
        self.pos = 0
        self._chunks: list[tuple[int, bytes]] = []  # (absolute offset, bytes), ascending
        self._skip = (0, 0)  # [a, b): payload bytes not worth keeping

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n if n is not None else -1)
        if not data:
            return b""
        self.digest.update(data)
        start, end = self.pos, self.pos + len(data)
        self.pos = end
        a, b = self._skip
        if end <= a or start >= b:
            self._chunks.append((start, data))
        else:
            if start < a:
                self._chunks.append((start, data[: a - start]))
            if end > b:
                self._chunks.append((b, data[b - start :]))
        return data

    def skip(self, a: int, b: int) -> None:
        """Do not keep bytes in [a, b) read from now on (a file's payload)."""
        self._skip = (a, b)

    def take(self, a: int, b: int) -> bytes:
        """The kept bytes in [a, b); drops everything before `b`."""
        out = bytearray()
        keep: list[tuple[int, bytes]] = []
        for start, data in self._chunks:
            end = start + len(data)
            lo, hi = max(start, a), min(end, b)
            if lo < hi:
                out += data[lo - start : hi - start]
            if end > b:
                keep.append((max(start, b), data[max(b - start, 0) :]))
        self._chunks = keep
        return bytes(out)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class Writer:
    """Writes the records of one layer's tar-split file."""

    def __init__(self, path: str) -> None:
        self._f = gzip.open(path, "wb", compresslevel=1)  # noqa: SIM115 - the Writer owns it; close() ends it

    def raw(self, data: bytes) -> None:
        if data:
            self._f.write(b"R" + struct.pack("<I", len(data)) + data)

    def file(self, path: str, size: int) -> None:
        p = os.fsencode(path)
        self._f.write(b"F" + struct.pack("<I", len(p)) + p + struct.pack("<Q", size))

    def close(self) -> None:
        self._f.close()


def _records(path: str) -> Iterator[tuple[bytes, bytes | str, int]]:
    with gzip.open(path, "rb") as f:
        while True:
            kind = f.read(1)
            if not kind:
                return
            (n,) = struct.unpack("<I", f.read(4))
            body = f.read(n)
            if kind == b"R":
                yield kind, body, 0
            else:
                (size,) = struct.unpack("<Q", f.read(8))
                yield kind, os.fsdecode(body), size


def reassemble(split_path: str, layer_dir: str, out: BinaryIO) -> int:
    """Write the original layer tar to `out`, reading payloads from `layer_dir`; returns bytes written.

    Raises OSError when a payload file is missing or shorter than recorded
    (dockerd: the layer's content no longer matches its tar-split).
    """
    total = 0
    root_fd = os.open(layer_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for kind, body, size in _records(split_path):
            if kind == b"R":
                assert isinstance(body, bytes)
                out.write(body)
                total += len(body)
                continue
            assert isinstance(body, str)
            fd = open_in_root(root_fd, body, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                left = size
                while left:
                    chunk = os.read(fd, min(left, 1 << 20))
                    if not chunk:
                        raise OSError(f"{body}: file is shorter than its tar entry")
                    out.write(chunk)
                    left -= len(chunk)
            finally:
                os.close(fd)
            total += size
    finally:
        os.close(root_fd)
    return total
