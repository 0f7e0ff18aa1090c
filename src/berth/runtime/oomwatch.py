"""OOM kills of running containers on cgroup v2, seen as they happen (what containerd's
shim does with its cgroups v2 EventChan for dockerd).

conmon also reports OOM (an `oom` file in its persist dir), but on cgroup v2 it reads the
`oom` count of memory.events only when its own inotify callback runs or after the
container exited; under the systemd driver the scope is gone by then (systemd removes an
empty scope at once), so conmon misses it. Here one inotify descriptor for the daemon
watches each running container's memory.events; on a change the file is read at once,
while the cgroup still exists, and an `oom_kill` count above the one at start marks the
container. Linux only; inotify through libc with ctypes (no extra dependency).
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import struct

log = logging.getLogger("berth.runtime")

_IN_MODIFY = 0x00000002
_IN_IGNORED = 0x00008000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
_CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_v2_dir(pid: int, root: str = _CGROUP_ROOT) -> str | None:
    """The unified-hierarchy cgroup directory of `pid` (None: no v2 line or no process)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return os.path.join(root, line[3:].strip().lstrip("/"))
    except OSError:
        pass
    return None


def oom_kill_count(events_path: str) -> int | None:
    """`oom_kill` of a memory.events file (None when it cannot be read)."""
    try:
        with open(events_path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return None
    return 0


class OOMWatcher:
    """Per running container: is there an OOM kill in its cgroup since it started."""

    def __init__(self) -> None:
        self._fd = -1
        self._libc: ctypes.CDLL | None = None
        self._by_wd: dict[int, str] = {}
        self._watch: dict[str, tuple[int, str, int]] = {}  # id -> (wd, memory.events, oom_kill at start)
        self._killed: set[str] = set()

    def _ensure(self) -> bool:
        if self._fd >= 0:
            return True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except (OSError, AttributeError):
            return False
        if fd < 0:
            log.warning("inotify_init1: %s", os.strerror(ctypes.get_errno()))
            return False
        self._libc, self._fd = libc, fd
        asyncio.get_running_loop().add_reader(fd, self._on_events)
        return True

    def watch(self, cid: str, pid: int) -> None:
        """Start watching the cgroup `pid` (the container's init) is in; v2 only."""
        self.forget(cid)
        d = cgroup_v2_dir(pid)
        if d is None or not os.path.exists(os.path.join(_CGROUP_ROOT, "cgroup.controllers")):
            return
        self.watch_file(cid, os.path.join(d, "memory.events"))

    def watch_file(self, cid: str, events: str) -> None:
        base = oom_kill_count(events)
        if base is None or not self._ensure():
            return
        assert self._libc is not None
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(events), _IN_MODIFY)
        if wd < 0:
            return
        self._by_wd[wd] = cid
        self._watch[cid] = (wd, events, base)

    def _check(self, cid: str) -> None:
        w = self._watch.get(cid)
        if w is None:
            return
        n = oom_kill_count(w[1])
        if n is not None and n > w[2]:
            self._killed.add(cid)

    def _on_events(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError:
            return
        off = 0
        while off + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, off)
            off += _EVENT.size + length
            cid = self._by_wd.get(wd)
            if cid is None:
                continue
            if mask & _IN_IGNORED:  # the cgroup went away
                self._by_wd.pop(wd, None)
                continue
            self._check(cid)

    def forget(self, cid: str) -> bool:
        """Stop watching `cid`; True when it was OOM-killed while watched (a last read
        first, in case the event is still queued)."""
        self._check(cid)
        w = self._watch.pop(cid, None)
        if w is not None and self._by_wd.pop(w[0], None) is not None and self._libc is not None:
            self._libc.inotify_rm_watch(self._fd, w[0])
        if cid in self._killed:
            self._killed.discard(cid)
            return True
        return False

    def close(self) -> None:
        if self._fd >= 0:
            try:
                asyncio.get_running_loop().remove_reader(self._fd)
            except RuntimeError:
                pass
            os.close(self._fd)
            self._fd = -1
