"""OOM kills of running containers on cgroup v2, seen as they happen (what containerd's
shim does with its cgroups v2 EventChan for dockerd).

conmon also reports OOM (an `oom` file in its persist dir), but on cgroup v2 it reads the
`oom` count of memory.events only when its own inotify callback runs or after the
container exited; under the systemd driver the scope is gone by then (systemd removes an
empty scope at once), so conmon misses it, and so does dockerd's shim at times
(moby#41929). Two sources here, either is enough:
- the kernel's own line for each kill in /dev/kmsg (`oom-kill:...,task_memcg=<cgroup>,...`,
  what cAdvisor reads): written before the victim is even signalled, so it is there when
  the exit is handled, cgroup or not; the kernel rate-limits it (10 per 5 s);
- memory.events of each container from the moment the runtime created it (before its
  process runs): one inotify descriptor, read by a thread of its own as soon as the file
  changes, while the cgroup still exists (the kernel may defer the change's notice by
  10 ms, and a cgroup removed meanwhile gives none).
An `oom_kill` count above the one at creation, or a kernel line naming the container's
cgroup (or one below it), marks the container. Linux only; inotify through libc with
ctypes (no extra dependency).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import re
import select
import struct
import threading

log = logging.getLogger("berth.runtime")

_IN_MODIFY = 0x00000002
_IN_IGNORED = 0x00008000
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
_CGROUP_ROOT = "/sys/fs/cgroup"
_KMSG = "/dev/kmsg"
_KILL_LINE = re.compile(rb"oom-kill:\S*?[,:]task_memcg=([^,\s]+)")


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
    """Per container, from its creation to its exit: was there an OOM kill in its cgroup.

    watch/forget run on the event loop; the reader thread only reads the inotify
    descriptor, the files it names and /dev/kmsg. One lock covers the tables both touch."""

    def __init__(self) -> None:
        self._fd = -1
        self._wake_r = self._wake_w = -1
        self._libc: ctypes.CDLL | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._by_wd: dict[int, str] = {}
        self._watch: dict[str, tuple[int, str, int]] = {}  # id -> (wd, memory.events, oom_kill at start)
        self._killed: set[str] = set()
        self._kmsg = -1
        self._kmsg_path = _KMSG

    def _ensure(self) -> bool:
        if self._fd >= 0:
            return True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(_IN_CLOEXEC)
        except (OSError, AttributeError):
            return False
        if fd < 0:
            log.warning("inotify_init1: %s", os.strerror(ctypes.get_errno()))
            return False
        self._libc, self._fd = libc, fd
        try:  # only the lines from now on (not readable in some containers: inotify alone then)
            self._kmsg = os.open(self._kmsg_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                os.lseek(self._kmsg, 0, os.SEEK_END)
            except OSError as e:  # a pipe (the tests) has no past to skip
                if e.errno != errno.ESPIPE:
                    raise
        except OSError as e:
            if self._kmsg >= 0:
                os.close(self._kmsg)
                self._kmsg = -1
            log.debug("OOM kills from memory.events only: %s: %s", self._kmsg_path, e)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._reader, args=(fd, self._wake_r, self._kmsg),
                                        name="berth-oomwatch", daemon=True)
        self._thread.start()
        return True

    def watch(self, cid: str, pid: int) -> None:
        """Watch the cgroup `pid` (the container's init) is in; v2 only. Again for the same
        cgroup while it is watched: kept as it is (the count from the first call)."""
        d = cgroup_v2_dir(pid)
        if d is None or not os.path.exists(os.path.join(_CGROUP_ROOT, "cgroup.controllers")):
            return
        events = os.path.join(d, "memory.events")
        with self._lock:
            w = self._watch.get(cid)
            if w is not None and w[1] == events and w[0] in self._by_wd:
                return
        self.forget(cid)
        self.watch_file(cid, events)

    def watch_file(self, cid: str, events: str) -> None:
        if not self._ensure():
            return
        assert self._libc is not None
        with self._lock:  # the reader cannot see an event of this watch before it is known
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(events), _IN_MODIFY)
            if wd < 0:
                return
            base = oom_kill_count(events)
            if base is None:
                self._libc.inotify_rm_watch(self._fd, wd)
                return
            self._by_wd[wd] = cid
            self._watch[cid] = (wd, events, base)

    def _check_locked(self, cid: str) -> None:
        w = self._watch.get(cid)
        if w is None:
            return
        n = oom_kill_count(w[1])
        if n is not None and n > w[2]:
            self._killed.add(cid)

    def _reader(self, fd: int, wake: int, kmsg: int) -> None:
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        poll.register(wake, select.POLLIN)
        if kmsg >= 0:
            poll.register(kmsg, select.POLLIN)
        while True:
            try:
                got = poll.poll()
                ready = {f for f, ev in got if ev & select.POLLIN}
                if wake in ready:
                    return
                if any(f == kmsg and not ev & select.POLLIN for f, ev in got):  # hung up: inotify alone
                    poll.unregister(kmsg)
                if kmsg in ready:
                    with self._lock:
                        self._drain_kmsg_locked()
                if fd not in ready:
                    continue
                data = os.read(fd, 64 * 1024)
            except InterruptedError:
                continue
            except OSError:
                return
            self._on_events(data)

    def _drain_kmsg_locked(self) -> None:
        """Every kernel line not read yet (one record per read on /dev/kmsg)."""
        while self._kmsg >= 0:
            try:
                rec = os.read(self._kmsg, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:  # lines overwritten before we read them: go on with the next
                continue
            except InterruptedError:
                continue
            except OSError:
                return
            if not rec:
                return
            for m in _KILL_LINE.finditer(rec):
                self._kernel_kill_locked(os.fsdecode(m.group(1)))

    def _kernel_kill_locked(self, memcg: str) -> None:
        path = os.path.join(_CGROUP_ROOT, memcg.lstrip("/"))
        for cid, (_wd, events, _base) in self._watch.items():
            d = os.path.dirname(events)
            if path == d or path.startswith(d + "/"):
                self._killed.add(cid)

    def _on_events(self, data: bytes) -> None:
        off = 0
        with self._lock:
            while off + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, off)
                off += _EVENT.size + length
                cid = self._by_wd.get(wd)
                if cid is None:
                    continue
                if mask & _IN_IGNORED:  # the cgroup went away
                    del self._by_wd[wd]
                    continue
                self._check_locked(cid)

    def forget(self, cid: str) -> bool:
        """Stop watching `cid`; True when it was OOM-killed while watched (a last read
        first, in case the event is still queued)."""
        with self._lock:
            self._drain_kmsg_locked()  # the kernel wrote its line before the kill: it is there
            self._check_locked(cid)
            w = self._watch.pop(cid, None)
            if w is not None and self._by_wd.pop(w[0], None) is not None and self._libc is not None:
                self._libc.inotify_rm_watch(self._fd, w[0])
            if cid in self._killed:
                self._killed.discard(cid)
                return True
            return False

    def close(self) -> None:
        if self._fd < 0:
            return
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self._fd, self._wake_r, self._wake_w, self._kmsg):
            if fd >= 0:
                os.close(fd)
        self._fd = self._wake_r = self._wake_w = self._kmsg = -1
