"""Deleting layer directories off the request path.

A removed container's RW layer is a tree of small files; unlinking them takes longer than
everything else `docker rm` does. The directory is renamed into `<home>/.trash/` (one
rename on the same filesystem, so it is gone from the driver's view at once and a crash
leaves nothing half-removed under its real name) and one background thread deletes what
the trash holds. Whatever a crash leaves there is deleted the next time the driver starts.
"""
from __future__ import annotations

import os
import queue
import secrets
import shutil
import threading

TRASH = ".trash"


class Trash:
    def __init__(self, home: str) -> None:
        self.dir = os.path.join(home, TRASH)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        for name in os.listdir(self.dir):  # left by a crash
            self._put(os.path.join(self.dir, name))
        if self._pending:
            self._start()

    def discard(self, path: str) -> None:
        """Remove the directory `path` now from its place and soon from the disk."""
        target = os.path.join(self.dir, secrets.token_hex(8))
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return
        except OSError:  # not on the same filesystem, or the trash went: delete in place
            shutil.rmtree(path, ignore_errors=True)
            return
        self._put(target)
        self._start()

    def _put(self, path: str) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put(path)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._empty, name="layer-trash", daemon=True)
                self._thread.start()

    def _empty(self) -> None:
        while True:
            try:
                path = self._queue.get(timeout=5)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            shutil.rmtree(path, ignore_errors=True)
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._idle.notify_all()

    def wait_empty(self, timeout: float = 10) -> bool:
        """Block until everything discarded so far is deleted (shutdown, tests)."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._pending, timeout)
