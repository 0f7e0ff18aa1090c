"""Persistent network namespaces without a helper process (what `ip netns add` and
`unshare --net=PATH` do, done from a short-lived thread).

Namespaces belong to threads on Linux, so a thread that calls unshare(CLONE_NEWNET) moves
only itself into the new namespace. That thread brings loopback up, bind-mounts its
namespace file onto the sandbox key so the namespace outlives it, and ends; the daemon's
other threads never leave the host's namespace. This saves two process spawns on every
start (and one on every stop), which is most of what a `--network none` container pays.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import secrets
import socket
import struct
import threading

log = logging.getLogger("berth.network")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_MOVE = 0x2000
MNT_DETACH = 0x2
_THREAD_IDLE = 30.0  # seconds a background thread here waits for more work before it ends
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _loopback_up() -> None:
    """SIOCSIFFLAGS on `lo` in the calling thread's namespace (`ip link set lo up`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _make(path: str, result: list[BaseException]) -> None:
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
        _loopback_up()
        src = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        _check(_libc.mount(src, path.encode(), None, MS_BIND, None), "mount")
    except BaseException as e:  # reported to the caller; this thread ends either way
        result.append(e)


def create(path: str) -> None:
    """A new network namespace with loopback up, bind-mounted at `path` (made empty here)."""
    with open(path, "w"):
        pass
    errors: list[BaseException] = []
    t = threading.Thread(target=_make, args=(path, errors), name="netns-create")
    t.start()
    t.join()
    if errors:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        raise errors[0]


def remove(path: str) -> None:
    """Lazily unmount the namespace at `path` (it goes when its last user does) and unlink it."""
    if os.path.ismount(path):
        _check(_libc.umount2(path.encode(), MNT_DETACH), f"umount {path}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Spares:
    """Namespaces made ahead of the starts that take them (a container's own, for `none`
    and bridge networks): making one (a thread, unshare, loopback up, a bind mount) costs
    a start 1-4 ms on a busy host, taking one costs a mount move. A background thread
    keeps `size` ready in a directory of their own (so the netns directory holds only
    what containers use); `take(path)` moves one onto the container's sandbox key
    (MS_MOVE). Whatever is in that directory when the daemon starts was left by a crash
    and goes; `close` removes what is there at a stop."""

    def __init__(self, directory: str, size: int = 2) -> None:
        self.dir = directory
        self._size = size
        self._lock = threading.Lock()
        self._ready: list[str] = []
        self._thread: threading.Thread | None = None
        self._wanted = threading.Condition(self._lock)
        self._closed = False
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for name in os.listdir(directory):
            try:
                remove(os.path.join(directory, name))
            except OSError as e:
                log.warning("%s", e)

    def take(self, path: str) -> bool:
        """Put a ready namespace at `path` (made empty here); False if none is ready or
        the move failed (the caller makes one). Either way more are made."""
        with self._lock:
            spare = self._ready.pop() if self._ready else None
            if not self._closed:
                if self._thread is None or not self._thread.is_alive():
                    # one filler for a burst of starts: a thread started per take cost the
                    # start that took it ~0.3 ms (and the GIL while it started)
                    self._thread = threading.Thread(target=self._fill, name="netns-spares", daemon=True)
                    self._thread.start()
                else:
                    self._wanted.notify()
        if spare is None:
            return False
        try:
            with open(path, "w"):
                pass
            _check(_libc.mount(spare.encode(), path.encode(), None, MS_MOVE, None), f"move {spare}")
        except OSError as e:  # a shared parent mount refuses MS_MOVE: make them in place
            log.debug("network namespace made ahead: %s", e)
            with contextlib.suppress(OSError):
                os.unlink(path)
            with contextlib.suppress(OSError):
                remove(spare)
            with self._lock:
                self._closed = True  # no use making more
                self._wanted.notify()
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spare)
        return True

    def _fill(self) -> None:
        while True:
            with self._lock:
                # full: wait for the next take a while, then end (a quiet daemon keeps no thread)
                if not self._closed and len(self._ready) >= self._size:
                    self._wanted.wait_for(lambda: self._closed or len(self._ready) < self._size,
                                          _THREAD_IDLE)
                if self._closed or len(self._ready) >= self._size:
                    self._thread = None
                    return
            path = os.path.join(self.dir, secrets.token_hex(8))
            try:
                create(path)
            except OSError as e:  # a start makes its own then (and says what is wrong)
                log.warning("network namespace ahead of a start: %s", e)
                with self._lock:
                    self._thread = None
                return
            with self._lock:
                if not self._closed:
                    self._ready.append(path)
                    continue
            with contextlib.suppress(OSError):
                remove(path)  # closed meanwhile

    def close(self) -> None:
        """Remove the namespaces not taken; make no more."""
        with self._lock:
            self._closed = True
            self._wanted.notify()
            ready, self._ready = self._ready, []
            thread = self._thread
        if thread is not None:
            thread.join()
        for path in ready:
            try:
                remove(path)
            except OSError as e:
                log.warning("%s", e)


class Retired:
    """Namespaces of stopped containers, removed by a background thread. Unmounting one
    takes ~1 ms in a busy daemon (the kernel waits out an RCU grace period), the largest
    step of a `--network none` exit, and nothing needs it done before the exit's state
    is written: the path is a new one at every start, a veth left in it is tracked as
    dying on its own (Netavark._teardown_veth), and what a crash leaves in the directory
    goes at the next daemon start (releaseNetwork's leftovers). `close` removes the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: list[str] = []
        self._more = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False

    def retire(self, path: str) -> None:
        with self._lock:
            self._paths.append(path)
            if self._closed:  # stopping: no thread any more (one left after close() goes at the next start)
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="netns-retired", daemon=True)
                self._thread.start()
            else:
                self._more.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._paths and not self._closed:
                    self._more.wait_for(lambda: bool(self._paths) or self._closed, _THREAD_IDLE)
                if not self._paths or self._closed:
                    self._thread = None
                    return
                path = self._paths.pop(0)
            _remove_logged(path)

    def close(self) -> None:
        """At a stop: the thread ends after the namespace it is at, the rest go now."""
        with self._lock:
            self._closed = True
            self._more.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            paths, self._paths = self._paths, []
        for path in paths:
            _remove_logged(path)


def _remove_logged(path: str) -> None:
    try:
        remove(path)
    except OSError as e:
        log.warning("%s", e)
