"""`docker logs` (moby v20.10.24 daemon/logs.go ContainerLogs,
daemon/logger/loggerutils/logfile.go ReadLogs/openRotatedFiles/tailFiles/followLogs,
api/server/httputils/write_log_stream.go).

json-file's files hold dockerd's JSON lines (written by the pump, berth.logger.pump; a
container started by an older Berth may still have conmon's CRI records there, and `local`
and the dual-logging cache hold CRI records: each line is read in the format it has).
Reading follows dockerd: with a tail (also "all") the rotated files come
first, oldest first (`.N-1`, ..., `.1`, `.gz` ones decompressed), then the current file up
to its size when the request came; the tail is taken over all of them, then since/until.
A follow goes on in the current file and, when conmon moves on to a new file (a rotation),
drains the old one and carries on at the start of the new one.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import IO, TYPE_CHECKING, NamedTuple

import msgspec

from .. import errdefs
from ..logger import factory as _factory
from ..logger import pump as _pump
from ..logger import rotate
from ..logger.config import (
    JSON_FILE,
    NONE,
    LogFileConfig,
    file_config,
    inspect_log_path,
)
from ..logger.info import Info, details_prefix, json_file_attrs
from ..pkg.stdcopy import frame
from ..runtime import k8sfile
from ..types import gojson
from ..types.backend import LogsConfig
from ..types.timestamp import format_timestamp
from . import wait

if TYPE_CHECKING:
    from ..container.container import Container
    from ..runtime.conmon import ContainerProcess
    from .core import Daemon

_FOLLOW_POLL = 0.05
_SHIP_AT_EXIT = 15.0  # seconds an exit waits for a shipping driver to deliver the rest
# seconds an exit waits for json-file's rest: dockerd's StreamConfig.Wait at an exit (monitor.go)
_STREAMS_AT_EXIT = 2.0
_BATCH = 2000  # messages per thread hop while streaming a whole log
_NOT_READABLE = "configured logging driver does not support reading"


class LogMessage(NamedTuple):
    stream: int  # 1 stdout, 2 stderr (stdcopy numbers)
    time_ns: int
    line: bytes
    attrs: bytes = b""  # --details: the message's attributes as attrsByteSlice writes them


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


parse_cri_time = k8sfile.parse_time


def logger_info(ctr: Container) -> Info:
    """logger.Info of a container (container.StartLogger)."""
    lc = ctr.host_config.LogConfig
    return Info(
        Config=dict(lc.Config or {}), ContainerID=ctr.ID, ContainerName=ctr.Name,
        ContainerEntrypoint=ctr.Path, ContainerArgs=list(ctr.Args or []), ContainerImageID=ctr.Image,
        ContainerImageName=ctr.Config.Image, ContainerEnv=list(ctr.Config.Env or []),
        ContainerLabels=dict(ctr.Config.Labels or {}),
        LogPath=inspect_log_path(ctr.root, ctr.ID, lc.Type), ContainerCreated=str(ctr.Created or ""))


# -- reading the files (blocking) ---------------------------------------------------------

def _last_newline_before(f: IO[bytes], size: int) -> int:
    """The offset just past the last complete record below `size`."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        f.seek(start)
        block = f.read(pos - start)
        i = block.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


class _Files:
    """The files of one read, opened together under the rotation lock."""

    def __init__(self, cfg: LogFileConfig | None, current: str, tail: int, since: int) -> None:
        self.rotated: list[IO[bytes]] = []
        self.current_path = current
        self.current: IO[bytes] | None = None
        self.size = 0
        lock = rotate.files_lock(cfg.path) if cfg is not None else None
        if lock is not None:
            lock.acquire()
        try:
            if cfg is not None and tail != 0 and current == cfg.path:
                self._open_rotated(cfg, since)
            try:
                self.current = open(current, "rb")  # noqa: SIM115 - kept open while following
                self.size = os.fstat(self.current.fileno()).st_size
            except FileNotFoundError:
                pass
        finally:
            if lock is not None:
                lock.release()

    def _open_rotated(self, cfg: LogFileConfig, since: int) -> None:
        """openRotatedFiles: `.N-1` down to `.1`, each plain or else gzipped."""
        for i in range(cfg.max_files - 1, 0, -1):
            name = f"{cfg.path}.{i}"
            try:
                self.rotated.append(open(name, "rb"))  # noqa: SIM115 - the reader owns it; close() ends it
                continue
            except FileNotFoundError:
                pass
            try:
                raw = open(name + ".gz", "rb")  # noqa: SIM115 - the reader owns it; close() ends it
            except FileNotFoundError:
                continue
            last = rotate.gz_last_time(raw)
            if since and last is not None and last < since:
                # dockerd 20.10 stops at the first compressed file older than `since`,
                # leaving out the newer rotated files too.
                raw.close()
                break
            self.rotated.append(rotate.open_gz(raw))
        if cfg.max_files > 1:
            # Between conmon's reopen and our rotation, the newest rotated lines are only
            # under the `.live` link.
            live = rotate.live_link(cfg.path)
            try:
                st_live, st_cur = os.stat(live), os.stat(cfg.path)
                if st_live.st_ino != st_cur.st_ino:
                    self.rotated.append(open(live, "rb"))  # noqa: SIM115 - the reader owns it; close() ends it
            except FileNotFoundError:
                pass

    def backlog(self) -> Iterator[bytes]:
        """Every record of the rotated files, then of the current file up to its size."""
        for f in self.rotated:
            try:
                yield from f
            finally:
                f.close()
        self.rotated = []
        if self.current is not None and self.size:
            end = _last_newline_before(self.current, self.size)
            # Exactly up to `end`: the file grows meanwhile, and the follow starts there.
            pos, carry = 0, b""
            while pos < end:
                self.current.seek(pos)
                block = self.current.read(min(end - pos, 1 << 20))
                if not block:
                    break
                pos += len(block)
                lines = (carry + block).split(b"\n")
                carry = lines.pop()
                for raw in lines:
                    yield raw + b"\n"

    def start_offset(self) -> int:
        return _last_newline_before(self.current, self.size) if self.current is not None else 0

    def close(self) -> None:
        for f in self.rotated:
            f.close()
        self.rotated = []
        if self.current is not None:
            self.current.close()
            self.current = None


class _Follower:
    """followLogs: new records of the current file, across conmon's reopens."""

    def __init__(self, path: str, f: IO[bytes] | None, offset: int) -> None:
        self.path = path
        self.f = f
        self.offset = offset

    def read_new(self) -> list[bytes]:
        if self.f is None:
            try:
                self.f = open(self.path, "rb")  # noqa: SIM115 - the reader owns it; close() ends it
            except FileNotFoundError:
                return []
            self.offset = 0
        out: list[bytes] = []
        try:
            moved = os.stat(self.path).st_ino != os.fstat(self.f.fileno()).st_ino
        except FileNotFoundError:
            moved = False  # conmon is between close and rename
        out += self._read(final=moved)
        if moved:
            # conmon closed the old file before it put the new one in place: it is complete.
            self.f.close()
            self.f = None
            out += self.read_new()
        return out

    def _read(self, final: bool) -> list[bytes]:
        assert self.f is not None
        self.f.seek(self.offset)
        data = self.f.read()
        end = len(data) if final else data.rfind(b"\n") + 1
        if end <= 0:
            return []
        self.offset += end
        return data[:end].splitlines(keepends=True)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


# -- ContainerLogs --------------------------------------------------------------------------

def log_path(ctr: Container) -> str:
    """Where an older Berth had conmon write every container's output (`<id>-cri.log`);
    still read for containers started before the json-file names."""
    return os.path.join(ctr.root, f"{ctr.ID}-cri.log")


def _sources(ctr: Container, cfg: LogFileConfig) -> str:
    """The current file to read: the configured one, or the `<id>-cri.log` an older Berth
    had conmon write (while that conmon runs, or when no newer file exists)."""
    proc = ctr.process if ctr.State.Running else None
    state_path = proc.state.log_path if proc is not None else ""
    if state_path and state_path != cfg.path and os.path.basename(state_path) != _pump.PRIVATE_NAME:
        return state_path
    if not os.path.exists(cfg.path):
        legacy = log_path(ctr)
        if os.path.exists(legacy):
            return legacy
    return cfg.path


async def container_logs(d: Daemon, name: str, cfg: LogsConfig) -> tuple[AsyncGenerator[LogMessage, None], bool]:
    """ContainerLogs: the checks (before any byte is written), then the message stream and
    whether the container has a TTY (raw output, no frames)."""
    ctr = d.get_container(name)
    if ctr.State.RemovalInProgress or ctr.State.Dead:
        raise errdefs.Conflict("can not get logs from container which is dead or marked for removal")
    lc = ctr.host_config.LogConfig
    if lc.Type == NONE:
        raise errdefs.NotImplemented(_NOT_READABLE)
    running = ctr.State.Running
    attrs = b""
    try:
        files = file_config(ctr.root, ctr.ID, lc.Type, lc.Config)
        if files is not None and files.attrs_enabled:
            attrs = details_prefix(json_file_attrs(logger_info(ctr)))
    except errdefs.DockerError as e:
        # dockerd makes a new logger for a stopped container and answers its error; a
        # running one started with these options, so they cannot fail.
        if not running:
            raise errdefs.Untyped(str(e)) from None
        files = file_config(ctr.root, ctr.ID, lc.Type, lc.Config)
    if files is None:
        raise errdefs.NotImplemented(_NOT_READABLE)
    if lc.Type == JSON_FILE and not ctr.LogPath:
        ctr.LogPath = files.path  # StartLogger sets it, for a stopped container too
    since = parse_timestamp(cfg.since)
    until = parse_timestamp(cfg.until)
    try:
        tail = int(cfg.tail)
    except ValueError:
        tail = -1
    follow = cfg.follow and running
    return _stream(d, ctr, files, cfg, since, until, tail, follow, attrs if cfg.details else b""), \
        bool(ctr.Config.Tty)


class _JSONLine(msgspec.Struct):
    """jsonlog.JSONLog as the json-file reader decodes it."""

    log: str = ""
    stream: str = ""
    time: str = ""
    attrs: dict[str, str] | None = None


_decode_json = msgspec.json.Decoder(_JSONLine).decode


def _messages(merger: k8sfile.LineMerger, records: Iterator[bytes], attrs: bytes) -> Iterator[LogMessage]:
    """Each record in its format: a JSON line (one message, partial pieces as they are, as
    dockerd's reader returns them) or conmon's CRI records (merged into whole lines)."""
    for raw in records:
        if raw[:1] == b"{":
            try:
                e = _decode_json(raw)
                ns = gojson.parse_go_time(e.time)
            except (msgspec.DecodeError, ValueError):
                continue
            yield LogMessage(2 if e.stream == "stderr" else 1, ns, e.log.encode(),
                             details_prefix(e.attrs) if e.attrs else b"")
            continue
        yield from _flushed(merger.feed((raw,)), attrs)


def _flushed(lines: Iterator[k8sfile.LogLine], attrs: bytes) -> Iterator[LogMessage]:
    for ln in lines:
        try:
            ts = k8sfile.parse_time(ln.time)
        except ValueError:
            # a record cut short when the disk was full, the next one glued to it: skipped,
            # as a reader must never end the stream mid-chunk
            continue
        yield LogMessage(1 if ln.stream == "stdout" else 2, ts, ln.data, attrs)


async def _stream(d: Daemon, ctr: Container, files: LogFileConfig, cfg: LogsConfig, since: int, until: int,
                  tail: int, follow: bool, attrs: bytes) -> AsyncGenerator[LogMessage, None]:
    current = await d.run_blocking(_sources, ctr, files)
    opened = await d.run_blocking(_Files, files, current, tail, since)
    stopped = wait.wait_condition(ctr, wait.NEXT_EXIT) if follow else None
    merger = k8sfile.LineMerger()
    follower: _Follower | None = None

    def wanted(m: LogMessage) -> bool:
        if m.stream == 1 and not cfg.stdout or m.stream == 2 and not cfg.stderr:
            return False
        return not (since and m.time_ns < since)

    def tail_all() -> list[LogMessage]:
        msgs = deque(_messages(merger, opened.backlog(), attrs), maxlen=tail)
        if not follow:
            msgs.extend(_flushed(merger.flush(), attrs))
        return list(msgs)[-tail:]

    backlog = _messages(merger, opened.backlog(), attrs)

    def batch() -> list[LogMessage]:
        out = []
        for m in backlog:
            out.append(m)
            if len(out) >= _BATCH:
                break
        return out

    try:
        if tail > 0:
            for m in await d.run_blocking(tail_all):
                if until and m.time_ns > until:
                    return
                if wanted(m):
                    yield m
        elif tail < 0:
            while msgs := await d.run_blocking(batch):
                for m in msgs:
                    if until and m.time_ns > until:
                        return
                    if wanted(m):
                        yield m
            if not follow:
                for m in _flushed(merger.flush(), attrs):
                    if not (until and m.time_ns > until) and wanted(m):
                        yield m
        if not follow:
            return
        assert stopped is not None  # made above when following
        follower = _Follower(current, opened.current, await d.run_blocking(opened.start_offset))
        opened.current = None  # the follower owns it now
        while True:
            done = stopped is not None and stopped.done()
            records = await d.run_blocking(follower.read_new)
            for m in _messages(merger, iter(records), attrs):
                if until and m.time_ns > until:
                    return
                if wanted(m):
                    yield m
            if done:
                for m in _flushed(merger.flush(), attrs):
                    if not (until and m.time_ns > until) and wanted(m):
                        yield m
                return
            if until and time.time_ns() > until:
                return
            try:
                await asyncio.wait_for(asyncio.shield(stopped), _FOLLOW_POLL)
            except TimeoutError:
                pass
    finally:
        opened.close()
        if follower is not None:
            follower.close()
        if stopped is not None and not stopped.done():
            stopped.cancel()


# -- the logger of a running container (StartLogger, the copier, Reset) ---------------------

log = logging.getLogger("berth.daemon")


def pumps(d: Daemon) -> _pump.LogPumps:
    p = d.log_pumps
    if p is None:
        p = d.log_pumps = _pump.LogPumps(d.run_blocking)
    return p


def private_log_ahead(d: Daemon, ctr: Container) -> str | None:
    """The file conmon is to write for this start when it is known before start_logger
    runs (a pumped driver, no pump of the last run still delivering from it), so that
    conmon can be started early (it opens its log file first thing): begin it anew now
    (fresh_private) and pass `private_ready` to start_logger. None otherwise."""
    if not _factory.uses_pump(ctr.host_config.LogConfig.Type) or ctr.ID in pumps(d).pumps:
        return None
    return _pump.private_path(ctr.root)


def fresh_private(root: str) -> str:
    """A start: the private file of the last run was drained at its exit; begin anew."""
    path = _pump.private_path(root)
    for p in (path, path + ".old", path + ".pos"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    return path


async def start_logger(d: Daemon, ctr: Container, cfg: LogFileConfig | None, private_ready: bool = False) -> str:
    """StartLogger's second half, for a start: the file conmon is to write ("" for none).
    For json-file and the shipping drivers, the driver is made and connected now (an
    unreachable target fails the start with dockerd's message) and the pump starts with
    the monitor (`attach_logger`). `private_ready`: the private file was begun already
    (private_log_ahead)."""
    lc = ctr.host_config.LogConfig
    if not _factory.uses_pump(lc.Type):
        return cfg.path if cfg is not None else ""
    opts = dict(lc.Config or {})
    info = logger_info(ctr)
    try:
        driver = await _factory.new_driver(info, lc.Type, opts, connect=True)
    except errdefs.DockerError as e:
        raise errdefs.Untyped(f"failed to initialize logging driver: {e}") from None
    try:
        spec = _factory.sink_spec(info, ctr.root, ctr.ID, lc.Type, opts)
        if private_ready:
            path = _pump.private_path(ctr.root)
        else:
            await pumps(d).cancel(ctr.ID)
            path = await d.run_blocking(fresh_private, ctr.root)
    except BaseException:
        if driver is not None:
            await driver.close()
        raise
    ctr.log_pending = (spec, driver)
    return path


async def abort_logger(ctr: Container) -> None:
    """The start failed after start_logger: close the driver it made."""
    pending = ctr.log_pending
    ctr.log_pending = None
    if pending is not None and pending[1] is not None:
        try:
            await pending[1].close()
        except Exception as e:  # any failure: the container goes on
            log.debug("closing log driver of %s: %s", ctr.ID, e)


def attach_logger(d: Daemon, ctr: Container, proc: ContainerProcess) -> None:
    """The copier starts with the monitor: after a start (with the driver start_logger
    made) or after a daemon restart (a new driver that connects when it has something to
    send; the pump first catches up with what conmon wrote meanwhile)."""
    state = proc.state
    if os.path.basename(state.log_path or "") != _pump.PRIVATE_NAME:
        return  # local, none, or a container an older Berth started
    pending = ctr.log_pending
    ctr.log_pending = None
    reopen = proc.reopen_log
    if pending is not None:
        spec, driver = pending
        pumps(d).start(ctr.ID, state.log_path, spec, driver, reopen)
        return
    spec, factory = _restored_logger(ctr)
    pumps(d).start(ctr.ID, state.log_path, spec, factory, reopen)


def _restored_logger(ctr: Container) -> tuple[_pump.SinkSpec | None, Callable[[], Awaitable[_pump.Driver | None]]]:
    lc = ctr.host_config.LogConfig
    opts = dict(lc.Config or {})
    info = logger_info(ctr)
    try:
        spec = _factory.sink_spec(info, ctr.root, ctr.ID, lc.Type, opts)
    except errdefs.DockerError as e:  # it started with these options: they cannot fail
        log.warning("logs of %s: %s", ctr.ID, e)
        spec = None

    async def driver() -> _pump.Driver | None:
        try:
            return await _factory.new_driver(info, lc.Type, opts, connect=False)
        except errdefs.DockerError as e:
            log.warning("log driver of %s: %s", ctr.ID, e)
            return None

    return spec, driver


def begin_finish_logger(d: Daemon, ctr: Container) -> None:
    """conmon is gone: the pump starts on the rest of the output at once, while the exit
    waits for the container lock (a start still writing its checkpoint holds it);
    finish_logger then waits for what is left of it."""
    pump = pumps(d).pumps.get(ctr.ID)
    if pump is not None:
        pump.begin_finish()


async def finish_logger(d: Daemon, ctr: Container) -> None:
    """After the exit (conmon gone): deliver everything left, then close the driver — also
    for a container that exited while berthd was down (its pump starts just to catch up)."""
    p = pumps(d)
    if ctr.ID not in p.pumps:
        lc = ctr.host_config.LogConfig
        path = _pump.private_path(ctr.root)
        if not _factory.uses_pump(lc.Type) or not os.path.exists(path):
            return
        spec, factory = _restored_logger(ctr)
        p.start(ctr.ID, path, spec, factory, None)
    pump = p.pumps[ctr.ID]
    # A receiver that stays away, or a full disk under json-file, must not hold the exit:
    # after a while the pump goes on delivering in the background (until the container
    # starts again or is removed).
    json_file = ctr.host_config.LogConfig.Type == _factory.JSON_FILE
    try:
        await asyncio.wait_for(asyncio.shield(pump.finish()), _STREAMS_AT_EXIT if json_file else _SHIP_AT_EXIT)
        if p.pumps.get(ctr.ID) is pump:
            del p.pumps[ctr.ID]
    except TimeoutError:
        if json_file:
            log.warning("logs of %s: the rest of its output is not written yet; writing it in the background",
                        ctr.ID)
        else:
            log.warning("logs of %s: the %s receiver is slow; delivering the rest in the background",
                        ctr.ID, ctr.host_config.LogConfig.Type)


async def stop_logger(d: Daemon, ctr: Container) -> None:
    """The container is removed: a pump still delivering its last run's rest stops."""
    await pumps(d).cancel(ctr.ID)


__all__ = ["LogMessage", "LogsConfig", "container_logs", "format_timestamp", "frame", "logger_info"]
