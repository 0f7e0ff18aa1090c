"""The daemon-wide transfer managers (moby/distribution/xfer/transfer.go, download.go,
upload.go): at most `limit` transfers active at once ("Waiting" for the others), one
transfer per key shared by every operation that asks for the same key, progress
broadcast to all watchers (a late watcher gets the latest line), and a transfer
cancelled when its last watcher leaves."""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

Emit = Callable[[bytes], None]


class Transfer:
    def __init__(self, key: str, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.watchers: list[Emit] = []
        self.last: bytes | None = None
        self.task: asyncio.Task[Any] | None = None
        self.on_release: Callable[[Transfer], None] | None = None
        self._loop = loop

    @property
    def started(self) -> asyncio.Task[Any]:
        """The transfer's task: watch() starts it before it hands the transfer out."""
        assert self.task is not None
        return self.task

    def broadcast(self, data: bytes) -> None:
        self.last = data
        for w in list(self.watchers):
            w(data)

    def emit_threadsafe(self, data: bytes) -> None:
        """For progress produced in worker threads."""
        self._loop.call_soon_threadsafe(self.broadcast, data)


class TransferManager:
    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 1)
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._transfers: dict[str, Transfer] = {}

    def set_concurrency(self, limit: int) -> None:
        self.limit = max(limit, 1)

    # -- slots -------------------------------------------------------------------------
    async def acquire(self, waiting: Callable[[], None]) -> None:
        if self._active < self.limit and not self._waiters:
            self._active += 1
            return
        waiting()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us as we were cancelled
            else:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes on
                return
        self._active -= 1

    # -- transfers -----------------------------------------------------------------------
    def watch(self, key: str, start: Callable[[Transfer], Coroutine[Any, Any, Any]], emit: Emit) -> tuple[Transfer, bool]:
        """The transfer for `key`, started with `start` if there is none; `emit` watches it.
        Returns (transfer, shared)."""
        t = self._transfers.get(key)
        shared = t is not None
        if t is None:
            t = Transfer(key, asyncio.get_running_loop())
            self._transfers[key] = t
            t.task = asyncio.get_running_loop().create_task(start(t))
        elif t.last is not None:
            emit(t.last)
        t.watchers.append(emit)
        return t, shared

    def unwatch(self, t: Transfer, emit: Emit) -> bool:
        """Stop watching; True when that cancelled the transfer (the caller may wait for it)."""
        if emit in t.watchers:
            t.watchers.remove(emit)
        if t.watchers:
            return False
        if self._transfers.get(t.key) is t:
            del self._transfers[t.key]
        assert t.task is not None
        if not t.task.done():
            t.task.cancel()
            # whatever the task made before it saw the cancellation is given back by it
            t.task.add_done_callback(lambda _f: t.on_release(t) if t.on_release else None)
            return True
        if t.on_release is not None:
            t.on_release(t)
        return False
