"""Open paths inside a directory as if it were the root (chroot semantics, no chroot).

dockerd applies layer tars inside a chroot of the layer directory
(moby/pkg/chrootarchive/diff_unix.go applyLayer re-execs itself and chroots), so
`../x` lands in `/x`, an absolute symlink `/tmp` means `<layer>/tmp`, and nothing
can be written outside the layer. A chroot is process-wide, which a threaded
daemon cannot afford, so Berth gets the same containment from openat2(2) with
RESOLVE_IN_ROOT (Linux 5.6+): every `..` and every absolute symlink met while
resolving is clamped to the given root by the kernel, race-free. Where openat2 is
missing, a userspace walk does the same resolution (not race-free, but only
the daemon writes in a layer directory while it is being unpacked).
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat

_NR_OPENAT2 = 437  # same number on every architecture (asm-generic)
_RESOLVE_IN_ROOT = 0x10
_RESOLVE_NO_MAGICLINKS = 0x02
_MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_have_openat2: bool | None = None


def _openat2(dir_fd: int, path: str, flags: int, mode: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    while True:
        fd = _syscall(_NR_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EINTR:
            continue
        if err == errno.EAGAIN:  # a concurrent rename elsewhere on the system; retry as the man page says
            continue
        raise OSError(err, os.strerror(err), path)


def _resolve_userspace(root_fd: int, path: str) -> tuple[int, str]:
    """Walk `path` under `root_fd` clamping `..` and absolute links; returns (parent fd, last name)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    stack: list[int] = [os.dup(root_fd)]
    links = 0
    try:
        while parts:
            name = parts.pop(0)
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            if not parts:  # last component: not followed
                fd = os.dup(stack[-1])
                return fd, name
            try:
                st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                raise
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            stack.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1]))
        return os.dup(stack[-1]), "."
    finally:
        for fd in stack:
            os.close(fd)


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0o644) -> int:
    """open(2) `path` (relative or absolute) resolved inside `root_fd`; the last component follows
    symlinks only if `flags` lacks O_NOFOLLOW, and then still inside the root."""
    global _have_openat2
    if _have_openat2 is not False:
        try:
            fd = _openat2(root_fd, path.lstrip("/") or ".", flags, mode)
            _have_openat2 = True
            return fd
        except OSError as e:
            if e.errno != errno.ENOSYS or _have_openat2:
                raise
            _have_openat2 = False
    parent, name = _resolve_userspace(root_fd, path)
    try:
        if name == ".":
            return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=parent)
        return os.open(name, flags | os.O_CLOEXEC, mode, dir_fd=parent)
    finally:
        os.close(parent)


def open_parent_in_root(root_fd: int, path: str) -> tuple[int, str]:
    """The directory holding `path` (resolved inside the root) and the last component's name.

    `path` must be clean (no `.`/`..` components once cleaned) and not the root itself.
    """
    head, _, name = path.strip("/").rpartition("/")
    fd = open_in_root(root_fd, head or ".", os.O_RDONLY | os.O_DIRECTORY)
    return fd, name
