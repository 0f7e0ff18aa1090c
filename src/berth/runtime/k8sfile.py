"""Reading conmon's k8s-file (CRI) log format, to turn it into Docker's json-file entries.

conmon writes one line per chunk: `<RFC3339Nano time> <stdout|stderr> <P|F> <data>\n`, where
`P` marks a partial line continued by the next record of the same stream and `F` ends it
(podman libpod/logs/log.go parses the same format). Docker's json-file keeps the newline in
`log` and a line split by the copier's 16K buffer as separate entries; we merge partials so
each logical line becomes one entry with its first chunk's time.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator
from typing import NamedTuple


class LogLine(NamedTuple):
    time: str  # as conmon wrote it, e.g. 2026-11-28T01:52:28.312768697+00:00
    stream: str  # "stdout" or "stderr"
    data: bytes  # with its trailing newline when the line was complete


def parse_line(raw: bytes) -> tuple[str, str, bool, bytes] | None:
    """(time, stream, partial, data) of one record, or None if it is malformed."""
    parts = raw.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"P", b"F"):
        return None
    data = parts[3] if len(parts) == 4 else b""
    return parts[0].decode(), parts[1].decode(), parts[2] == b"P", data


class LineMerger:
    """Merges partial records into whole lines across calls (a follow reads the file in
    pieces, and a line may be cut by a rotation: its records then sit in two files)."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, bytearray]] = {}

    def feed(self, records: Iterable[bytes]) -> Iterator[LogLine]:
        pending = self._pending
        for raw in records:
            rec = parse_line(raw)
            if rec is None:
                continue
            ts, stream, partial, data = rec
            if stream in pending:
                first_ts, buf = pending[stream]
                buf += data
            else:
                first_ts, buf = ts, bytearray(data)
            if partial:
                pending[stream] = (first_ts, buf)
                continue
            pending.pop(stream, None)
            yield LogLine(first_ts, stream, bytes(buf) + b"\n")

    def flush(self) -> Iterator[LogLine]:
        """Output that never got its newline (the container stopped mid-line)."""
        pending, self._pending = self._pending, {}
        for stream, (ts, buf) in pending.items():
            yield LogLine(ts, stream, bytes(buf))


def read_lines(records: Iterable[bytes]) -> Iterator[LogLine]:
    """Merge partial records into whole lines, per stream, in order."""
    m = LineMerger()
    yield from m.feed(records)
    yield from m.flush()


def record_time(raw: bytes) -> str:
    """The time field of one record ("" if malformed)."""
    sp = raw.find(b" ")
    return raw[:sp].decode(errors="replace") if sp > 0 else ""


def parse_time(text: str) -> int:
    """conmon's `YYYY-MM-DDTHH:MM:SS.fffffffff+00:00` (its local offset) as ns since the epoch."""
    base, rest = text[:19], text[19:]
    frac = ""
    if rest.startswith("."):
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, rest = rest[1:i], rest[i:]
    dt = _dt.datetime.fromisoformat(base + ("+00:00" if rest in ("", "Z") else rest))
    return int(dt.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])
