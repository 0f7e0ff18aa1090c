"""Atomic file writes (moby/pkg/ioutils/fswriters.go NewAtomicFileWriter).

Write to `.tmp-<name><random>` in the same directory, fsync, chmod, rename over the
target, then fsync the directory, so that a crash at any instant leaves either the
old file or the new one, never a torn one, and a rename acknowledged to a client
survives power loss. Blocking: call from a worker thread on hot paths.
"""
from __future__ import annotations

import os
import secrets


def write_file(path: str, data: bytes, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Atomically replace `path` with `data`."""
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".tmp-{base}{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync_dir:
        fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    """fsync a directory so that renames and creations in it are durable."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
