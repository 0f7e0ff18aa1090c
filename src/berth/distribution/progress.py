"""The progress side of pull and push (moby/distribution/utils/progress.go
WriteDistributionProgress, pkg/progress, pkg/streamformatter).

`Output` takes JSON lines from any thread and hands them, in order, to one async
writer (the API's response). Writing failing (the client left) cancels the
operation, as dockerd's "Pull session cancelled"."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from ..image.progress import line, progress_string

Writer = Callable[[bytes], Awaitable[None]]


def message(status: str, id_: str = "") -> bytes:
    """progress.Message."""
    return line({"status": status, "id": id_} if id_ else {"status": status})


def action(status: str, id_: str) -> bytes:
    """progress.Update with no counts: progressDetail `{}`."""
    return line({"status": status, "progressDetail": {}, "id": id_})


def update(status: str, id_: str, current: int, total: int) -> bytes:
    detail: dict[str, int] = {}
    if current:
        detail["current"] = current
    if total:
        detail["total"] = total
    obj: dict[str, object] = {"status": status, "progressDetail": detail}
    bar = progress_string(current, total)
    if bar:
        obj["progress"] = bar
    obj["id"] = id_
    return line(obj)


def aux(obj: dict[str, object]) -> bytes:
    return line({"progressDetail": {}, "aux": obj})


class Output:
    def __init__(self, writer: Writer, on_broken: Callable[[], None] | None = None) -> None:
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task = self._loop.create_task(self._run())
        self._on_broken = on_broken
        self.started = False
        self.broken = False

    def put(self, data: bytes) -> None:
        """Thread-safe: queue one line."""
        self.started = True
        if threading.get_ident() == self._thread:
            self._queue.put_nowait(data)
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, data)

    async def _run(self) -> None:
        while (data := await self._queue.get()) is not None:
            if self.broken:
                continue
            try:
                await self._writer(data)
            except (ConnectionError, RuntimeError, OSError):
                self.broken = True
                if self._on_broken is not None:
                    self._on_broken()

    async def close(self) -> None:
        """Everything queued is written (or dropped for a gone client)."""
        self._queue.put_nowait(None)
        await asyncio.shield(self._task)


class Meter:
    """progress.Reader's pacing: an update each 1 % (at most 512 KiB), at most one per
    100 ms, plus the last one."""

    def __init__(self, emit: Callable[[bytes], None], status: str, id_: str, total: int) -> None:
        self._emit, self.status, self.id, self.total = emit, status, id_, total
        self.current = 0
        self._last = 0
        self._next = 0.0
        self._every = min(512 * 1024, int(0.01 * total)) if total > 0 else 512 * 1024

    def add(self, n: int) -> None:
        self.current += n
        if self.current - self._last > self._every:
            now = time.monotonic()
            if self.current == self.total or now >= self._next:
                self._next = now + 0.1
                self._last = self.current
                self._emit(update(self.status, self.id, self.current, self.total))

    def done(self) -> None:
        self._emit(update(self.status, self.id, self.current, self.total))
