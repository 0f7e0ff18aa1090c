"""The per-container task that turns conmon's private records into what the container's
log driver wants (dockerd's copier + logger, moby v20.10.24 daemon/logger/copier.go,
container/container.go StartLogger).

- json-file: dockerd's JSON lines in `<id>-json.log`, rotated as dockerd rotates
  (berth.logger.copier.LogWriter, berth.logger.jsonlog).
- syslog, gelf, fluentd, journald: every message shipped (berth.logger.drivers), and the
  "dual logging" cache `container-cached.log` in the `local` format Berth reads back.

The container never waits for the driver: conmon writes the private file whatever berthd
does. `mode=blocking` (the default) means no message is dropped: a slow or absent receiver
only makes delivery late (the pump waits, the private file holds the rest). With
`mode=non-blocking` the pump hands messages to a buffer of `max-buffer-size` bytes (1 MB by
default, dockerd's ring buffer) and drops what does not fit, as dockerd does.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from . import jsonlog
from .config import LogFileConfig
from .copier import LogWriter, Message, PrivateReader

log = logging.getLogger("berth.logger")

PRIVATE_NAME = ".conmon-k8s.log"  # in the container's directory, next to dockerd's files
# seconds between looks at an idle private file: short while output flows, up to
# _IDLE_MAX once it has been quiet (a stat each time, no thread hop)
_IDLE_MIN = 0.025
_IDLE_MAX = 0.2
_RETRY = 1.0

RunBlocking = Callable[..., Awaitable[Any]]


def private_path(ctr_root: str) -> str:
    return os.path.join(ctr_root, PRIVATE_NAME)


class Driver(Protocol):
    """A shipping driver as the pump uses it."""

    name: str

    async def log(self, msgs: list[Message]) -> None:
        """Deliver all of `msgs` (retrying as long as it takes), or drop per mode."""

    async def close(self) -> None: ...


class FileSink:
    """json-file's writer, or the dual-logging cache in conmon's record format."""

    def __init__(self, cfg: LogFileConfig, json_attrs: bytes | None) -> None:
        self.writer = LogWriter(cfg)
        self.json = json_attrs is not None
        self.attrs = json_attrs or b""

    def write(self, msgs: list[Message]) -> None:
        if not msgs:
            return
        times: list[bytes]
        if self.json:
            marshal, utc, attrs = jsonlog.marshal, jsonlog.rfc3339nano, self.attrs
            entries = [marshal(m.line + b"\n" if m.complete else m.line, m.stream, attrs, utc(m.ts)) for m in msgs]
        else:
            entries = [b"%s %s %s %s\n" % (m.ts, m.stream, b"F" if m.complete else b"P", m.line) for m in msgs]
        times = [m.ts for m in msgs]
        self.writer.write(entries, times)

    def close(self) -> None:
        self.writer.close()

    def fast(self) -> _JSONFast | None:
        return _JSONFast(self) if self.json else None


class _JSONFast:
    """What PrivateReader needs to turn records into json-file bytes directly."""

    def __init__(self, sink: FileSink) -> None:
        self.convert = jsonlog.fast_lines(sink.attrs)
        self.attrs = sink.attrs

    def encode(self, msgs: list[Message]) -> bytes:
        marshal, utc, attrs = jsonlog.marshal, jsonlog.rfc3339nano, self.attrs
        return b"".join(marshal(m.line + b"\n" if m.complete else m.line, m.stream, attrs, utc(m.ts)) for m in msgs)


SinkSpec = tuple[LogFileConfig, "bytes | None"]  # the file, and json-file's attrs (None: cache format)


class Pump:
    def __init__(self, cid: str, private: str, sink: SinkSpec | None,
                 driver: Driver | Callable[[], Awaitable[Driver | None]] | None,
                 run_blocking: RunBlocking, reopen: Callable[[], None] | None) -> None:
        self.cid = cid
        self.private = private
        self.sink_spec = sink
        self.sink: FileSink | None = None
        self._fast: _JSONFast | None = None
        # A restored container's driver is made (not connected) once the task runs.
        self._driver_factory = driver if callable(driver) else None
        self.driver: Driver | None = None if callable(driver) else driver
        self.run_blocking = run_blocking
        self.reopen = reopen
        self.reader: PrivateReader | None = None
        self._finishing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"log-pump-{self.cid[:12]}")

    def begin_finish(self) -> None:
        """conmon is gone: the rest is delivered from now on (finish waits for it)."""
        self._finishing = True
        self._wake.set()

    async def finish(self) -> None:
        """conmon is gone: deliver the rest, then close."""
        self.begin_finish()
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """berthd shuts down (the container runs on): stop where the last batch ended."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _open(self) -> PrivateReader:
        if self.reader is None:
            self.reader = PrivateReader(self.private)
            if self.sink_spec is not None:
                self.sink = FileSink(*self.sink_spec)
                self._fast = self.sink.fast()
                if self.reader.saved_sink is not None:
                    # A daemon killed between a batch's write and its commit: the batch is
                    # read again from the committed position, so its first write goes.
                    self.sink.writer.cut_back(self.reader.saved_sink)
        return self.reader

    def _read(self, final: bool) -> tuple[list[Message], bool]:
        msgs, more = self._open().read(final)
        assert isinstance(msgs, list)
        return msgs, more

    def _deliver(self, msgs: list[Message] | bytes) -> None:
        """The file side of a batch, then the position (blocking)."""
        assert self.reader is not None
        if self.sink is not None:
            if isinstance(msgs, bytes):
                self.sink.writer.write_raw(msgs)
            else:
                self.sink.write(msgs)
            self.reader.commit(self.sink.writer.mark())
        else:
            self.reader.commit()
        if self.reopen is not None and self.reader.want_trim():
            try:
                self.reopen()
            except Exception as e:  # conmon just exited: nothing to trim
                log.debug("trim of %s: %s", self.cid, e)

    def _step(self, final: bool) -> bool:
        """json-file: read, write, remember (one thread hop)."""
        reader = self._open()
        msgs, more = reader.read(final, self._fast)
        self._deliver(msgs)
        return more

    def _last_step(self) -> bool:
        """json-file after the exit: the last batch and, when it was the last, the close,
        in one thread hop (the exit waits for both)."""
        more = self._step(True)
        if not more:
            self._close(True)
        return more

    def _close(self, done: bool) -> None:
        if self.sink is not None:
            self.sink.close()
        if self.reader is not None:
            if done:
                self.reader.remove()
            else:
                self.reader.close()

    def _unchanged(self) -> bool:
        """The private file is where the last batch left it (one stat, no read)."""
        r = self.reader
        if r is None or r.f is None or r.asked_trim:
            return False
        try:
            st = os.stat(self.private)
        except FileNotFoundError:
            return False
        return st.st_ino == r.ino and st.st_size == r.off

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    async def _run(self) -> None:
        done = closed = False
        try:
            if self._driver_factory is not None:
                self.driver = await self._driver_factory()
            idle = _IDLE_MIN
            while True:
                final = self._finishing
                if not final and self._unchanged():
                    # nothing new: no thread hop, and look less often the longer it stays so
                    idle = min(idle * 2, _IDLE_MAX)
                    await self._sleep(idle)
                    continue
                idle = _IDLE_MIN
                try:
                    if self.driver is None and final:
                        more = await self.run_blocking(self._last_step)
                        closed = not more
                    elif self.driver is None:
                        more = await self.run_blocking(self._step, final)
                    else:
                        msgs, more = await self.run_blocking(self._read, final)
                        if msgs:
                            await self.driver.log(msgs)
                        await self.run_blocking(self._deliver, msgs)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a full disk, say: the records wait in conmon's file
                    log.warning("logs of %s: %s", self.cid, e)
                    # Start again from the last position written down: the batch that
                    # failed is read and delivered again (the writer left no torn line).
                    await self.run_blocking(self._close, False)
                    self.reader, self.sink = None, None
                    await asyncio.sleep(_RETRY)
                    continue
                if final and not more:
                    done = True
                    break
                if not more:
                    await self._sleep(idle)
        finally:
            if self.driver is not None and (done or self._finishing):
                try:
                    await self.driver.close()
                except Exception as e:  # any failure: the pump goes on
                    log.debug("closing log driver of %s: %s", self.cid, e)
            if not closed:
                await self.run_blocking(self._close, done)


class LogPumps:
    """The daemon's pumps, by container ID."""

    def __init__(self, run_blocking: RunBlocking) -> None:
        self.run_blocking = run_blocking
        self.pumps: dict[str, Pump] = {}

    def start(self, cid: str, private: str, sink: SinkSpec | None,
              driver: Driver | Callable[[], Awaitable[Driver | None]] | None,
              reopen: Callable[[], None] | None) -> Pump:
        old = self.pumps.pop(cid, None)
        if old is not None and old._task is not None and not old._task.done():
            old._task.cancel()
        p = Pump(cid, private, sink, driver, self.run_blocking, reopen)
        self.pumps[cid] = p
        p.start()
        return p

    async def cancel(self, cid: str) -> None:
        """A new start of the container: a pump still delivering the last run's rest (a
        receiver that stayed away) stops before the private file is begun anew."""
        p = self.pumps.pop(cid, None)
        if p is not None:
            await p.stop()

    async def finish(self, cid: str) -> None:
        p = self.pumps.pop(cid, None)
        if p is not None:
            await p.finish()

    async def stop_all(self) -> None:
        pumps, self.pumps = list(self.pumps.values()), {}
        await asyncio.gather(*(p.stop() for p in pumps), return_exceptions=True)


__all__ = ["PRIVATE_NAME", "Driver", "FileSink", "LogPumps", "Pump", "private_path"]
