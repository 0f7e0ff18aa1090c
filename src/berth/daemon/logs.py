"""`docker logs` (moby daemon/logs.go ContainerLogs, daemon/logger/jsonfilelog/read.go,
api/server/httputils/write_log_stream.go).

The container's output is in conmon's k8s-file (see start.log_path for why); this module
turns it back into what dockerd's json-file reader yields: one message per line with its
time and stream, tail first, then since/until, following the file while the container runs.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, NamedTuple

from .. import errdefs
from ..runtime import k8sfile
from . import wait

if TYPE_CHECKING:
    from ..container.container import Container
    from .daemon import Daemon

_FOLLOW_POLL = 0.05


class LogMessage(NamedTuple):
    stream: int  # 1 stdout, 2 stderr (stdcopy numbers)
    time_ns: int
    line: bytes


class LogsConfig(NamedTuple):
    stdout: bool
    stderr: bool
    since: str
    until: str
    timestamps: bool
    follow: bool
    tail: str
    details: bool


def parse_timestamp(value: str) -> int:
    """timetypes.ParseTimestamps as nanoseconds since the epoch ("" = 0); Go's error text."""
    if value == "":
        return 0
    sec, _, frac = value.partition(".")
    try:
        s = int(sec)
    except ValueError:
        raise errdefs.Untyped(f'strconv.ParseInt: parsing "{sec}": invalid syntax') from None
    if not frac:
        return s * 1_000_000_000
    try:
        n = int(frac)
    except ValueError:
        raise errdefs.Untyped(f'strconv.ParseInt: parsing "{frac}": invalid syntax') from None
    return s * 1_000_000_000 + int(n * 10 ** (9 - len(frac)))


def parse_cri_time(text: str) -> int:
    """conmon's `YYYY-MM-DDTHH:MM:SS.fffffffff+00:00` as ns since the epoch."""
    base, rest = text[:19], text[19:]
    frac = ""
    if rest.startswith("."):
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, rest = rest[1:i], rest[i:]
    dt = _dt.datetime.fromisoformat(base + ("+00:00" if rest in ("", "Z") else rest))
    return int(dt.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])


def format_timestamp(ns: int) -> str:
    """jsonmessage.RFC3339NanoFixed in UTC: always nine fractional digits and `Z`."""
    sec, frac = divmod(ns, 1_000_000_000)
    return _dt.datetime.fromtimestamp(sec, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def _messages(records: list[bytes]) -> Iterator[LogMessage]:
    for ln in k8sfile.read_lines(records):
        yield LogMessage(1 if ln.stream == "stdout" else 2, parse_cri_time(ln.time), ln.data)


class _Reader:
    """Reads whole records from the log file, remembering where it stopped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self._f = None

    def read_new(self) -> list[bytes]:
        if self._f is None:
            try:
                self._f = open(self.path, "rb")  # noqa: SIM115 - kept open while following
            except FileNotFoundError:
                return []
        self._f.seek(self.offset)
        data = self._f.read()
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return data[: end + 1].splitlines(keepends=True)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


async def container_logs(d: "Daemon", name: str, cfg: LogsConfig) -> tuple[AsyncIterator[LogMessage], bool]:
    """ContainerLogs: the checks (before any byte is written), then the message stream and
    whether the container has a TTY (raw output, no frames)."""
    ctr = d.get_container(name)
    if ctr.State.RemovalInProgress or ctr.State.Dead:
        raise errdefs.Conflict("can not get logs from container which is dead or marked for removal")
    if ctr.host_config.LogConfig.Type == "none":
        raise errdefs.NotImplemented("configured logging driver does not support reading")
    since = parse_timestamp(cfg.since)
    until = parse_timestamp(cfg.until)
    try:
        tail = int(cfg.tail)
    except ValueError:
        tail = -1
    follow = cfg.follow and ctr.State.Running
    return _stream(d, ctr, cfg, since, until, tail, follow), bool(ctr.Config.Tty)


async def _stream(d: "Daemon", ctr: "Container", cfg: LogsConfig, since: int, until: int, tail: int,
                  follow: bool) -> AsyncIterator[LogMessage]:
    from .start import log_path

    reader = _Reader(ctr.LogPath or log_path(ctr))
    stopped = wait.wait_condition(ctr, wait.NEXT_EXIT) if follow else None

    def wanted(m: LogMessage) -> bool:
        if m.stream == 1 and not cfg.stdout or m.stream == 2 and not cfg.stderr:
            return False
        return not (since and m.time_ns < since)

    try:
        first = await d.run_blocking(reader.read_new)
        msgs: list[LogMessage] | deque[LogMessage] = list(_messages(first))
        if tail == 0:
            msgs = []
        elif tail > 0:
            msgs = deque(msgs, maxlen=tail)
        for m in msgs:
            if until and m.time_ns > until:
                return
            if wanted(m):
                yield m
        if not follow or tail == 0 and not cfg.follow:
            return
        while True:
            done = stopped is not None and stopped.done()
            records = await d.run_blocking(reader.read_new)
            for m in _messages(records):
                if until and m.time_ns > until:
                    return
                if wanted(m):
                    yield m
            if done:
                return
            if until and time.time_ns() > until:
                return
            try:
                await asyncio.wait_for(asyncio.shield(stopped), _FOLLOW_POLL)  # type: ignore[arg-type]
            except asyncio.TimeoutError:
                pass
    finally:
        reader.close()
        if stopped is not None and not stopped.done():
            stopped.cancel()


def frame(stream: int, data: bytes) -> bytes:
    """stdcopy's 8-byte header: stream, three zero bytes, big-endian length."""
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


__all__ = ["LogsConfig", "LogMessage", "container_logs", "format_timestamp", "frame"]
