"""Atomic file writes (moby/pkg/ioutils/fswriters.go NewAtomicFileWriter).

Write to `.tmp-<name><random>` in the same directory, fsync, chmod, rename over the
target, then fsync the directory (errors as Go's *os.PathError, errdefs.PathError), so that a crash at any instant leaves either the
old file or the new one, never a torn one, and a rename acknowledged to a client
survives power loss. Blocking: call from a worker thread on hot paths.
"""
from __future__ import annotations

import os
import secrets

from berth.errdefs import PathError
from berth.pkg.ioutil import write_all


def write_file(path: str, data: bytes, mode: int = 0o644, sync_dir: bool = True, durable: bool = True) -> None:
    """Atomically replace `path` with `data`.

    `durable=False` is for run state under the exec-root (what dockerd and containerd keep
    in /var/run and /run, a tmpfs): the rename still leaves the old file or the new one
    whenever the daemon dies, but nothing is synced, since what the file describes (a
    container's monitor, a veth) does not outlive the machine either."""
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".tmp-{base}{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as e:
        raise PathError("open", tmp, e) from None
    try:
        try:
            write_all(fd, tmp, data)
            if durable:
                _sync(fd, tmp)
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
    if sync_dir and durable:
        fsync_dir(directory)


def write_files(directory: str, files: list[tuple[str, bytes, int]]) -> None:
    """Atomically replace several files of one directory: each is the old one or the new
    one whenever a crash comes. All are written and synced before the first rename, so
    the journal commits that syncing forces are shared (on ext4 the second fsync finds
    its file committed by the first), then renamed, then the directory synced once."""
    tmps: list[tuple[str, str]] = []
    fds: list[int] = []
    try:
        try:
            for name, data, mode in files:
                tmp = os.path.join(directory, f".tmp-{name}{secrets.token_hex(4)}")
                try:
                    fds.append(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode))
                except OSError as e:
                    raise PathError("open", tmp, e) from None
                tmps.append((tmp, os.path.join(directory, name)))
                write_all(fds[-1], tmp, data)
                os.fchmod(fds[-1], mode)
            for fd, (tmp, _) in zip(fds, tmps, strict=True):
                _sync(fd, tmp)
        finally:
            for fd in fds:
                os.close(fd)
        while tmps:
            os.rename(*tmps[0])
            tmps.pop(0)
    except BaseException:
        for tmp, _ in tmps:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise
    fsync_dir(directory)


def _sync(fd: int, path: str) -> None:
    try:
        os.fsync(fd)
    except OSError as e:
        raise PathError("sync", path, e) from None


def fsync_dir(directory: str) -> None:
    """fsync a directory so that renames and creations in it are durable."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
