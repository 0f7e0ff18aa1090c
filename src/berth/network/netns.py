"""Persistent network namespaces without a helper process (what `ip netns add` and
`unshare --net=PATH` do, done from a short-lived thread).

Namespaces belong to threads on Linux, so a thread that calls unshare(CLONE_NEWNET) moves
only itself into the new namespace. That thread brings loopback up, bind-mounts its
namespace file onto the sandbox key so the namespace outlives it, and ends; the daemon's
other threads never leave the host's namespace. This saves two process spawns on every
start (and one on every stop), which is most of what a `--network none` container pays.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import threading

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2
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
