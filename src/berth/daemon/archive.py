"""docker cp and export (moby daemon/archive.go ContainerStatPath, ContainerArchivePath,
ContainerExtractToDir, daemon/archive_unix.go, daemon/export.go ContainerExport).

The file work happens in a child process chrooted into the container's root
(archive_child.py), as dockerd's chrootarchive does, so symlinks inside the container never
resolve on the host. A running container's root is `/proc/<pid>/root`, which shows its
volumes and bind mounts as the container sees them. For a stopped container the RW layer
is mounted for the operation and, as dockerd's mountVolumes does, its volumes, bind mounts
and network files are mounted over it: by the child, in a mount namespace of its own, so
nothing is left mounted when it exits (archive_child.py mount_volumes).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import msgspec

from .. import errdefs
from ..types import gojson
from .oci import user_mounts
from .volumes import unmount_volumes

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "archive_child.py")
_CHUNK = 65536


class ContainerPathStat(msgspec.Struct):
    """types.ContainerPathStat (the X-Docker-Container-Path-Stat header, base64 JSON)."""

    name: str
    size: int
    mode: int
    mtime: str
    linkTarget: str


class _ChildStat(msgspec.Struct):
    name: str
    size: int
    mode: int
    mtime_ns: int
    linkTarget: str
    dir: bool


class _Root:
    """The container's root for one operation; release() undoes a temporary mount.
    `mounts` are the volumes the child mounts over it: (source, destination, recursive,
    read-only)."""

    def __init__(self, path: str, release: Callable[[], None] | None,
                 mounts: list[tuple[str, str, bool, bool]] | None = None) -> None:
        self.path = path
        self._release = release
        self.mounts = mounts or []

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


async def _open_root(d: Daemon, ctr: Container) -> _Root:
    """daemon.Mount + mountVolumes: the container's RW layer mounted (a running container's
    is already, the mount is counted) and its volumes and binds set up, to be mounted over
    it by the child. Never the running container's own view (/proc/<pid>/root): as in
    dockerd, its tmpfs mounts and /proc are not part of what docker cp sees."""
    rw = d.layers.get_rw_layer(ctr.ID)
    path = await d.run_blocking(rw.mount)

    def release() -> None:  # DetachAndUnmount + daemon.Unmount
        try:
            unmount_volumes(d, ctr)
        finally:
            rw.unmount()

    try:
        mounts = await d.run_blocking(volume_mounts, d, ctr)
    except BaseException:
        await d.run_blocking(release)
        raise
    return _Root(path, release, mounts)


async def _open_root_for(d: Daemon, ctr: Container, path: str, name: str) -> _Root:
    """_open_root for one operation on `path`: a mount source that is gone is the os.Stat
    error mountVolumes returns, which the Container*Path functions answer as the file not
    being found (os.IsNotExist)."""
    try:
        return await _open_root(d, ctr)
    except FileNotFoundError:
        raise _not_found(path, name) from None


def volume_mounts(d: Daemon, ctr: Container) -> list[tuple[str, str, bool, bool]]:
    """setupMounts for mountVolumes: the container's bind-type mounts (volumes, binds and
    its network files) in mount order; tmpfs mounts are not part of it, as in dockerd.
    Blocking (mounts volumes with device options, makes missing bind sources, logs a
    `mount` event per volume, as a start does)."""
    mounts, _ = user_mounts(d, ctr, ctr.host_config.ReadonlyRootfs)
    out = []
    for m in mounts:
        if m.type != "bind" or not m.source:
            continue
        os.stat(m.source)  # a bind source removed since the create: FileNotFoundError
        out.append((m.source, m.destination, "rbind" in m.options, "ro" in m.options))
    return out


async def _spawn(op: str, root: _Root | str, *args: str, stdin: int | None = None) -> asyncio.subprocess.Process:
    path = root.path if isinstance(root, _Root) else root
    env = dict(os.environ)
    if isinstance(root, _Root) and root.mounts:
        env["BERTH_ARCHIVE_MOUNTS"] = msgspec.json.encode([list(m) for m in root.mounts]).decode()
    return await asyncio.create_subprocess_exec(
        sys.executable, "-I", _CHILD, op, path, *args, stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)


def _not_found(path: str, name: str) -> errdefs.DockerError:
    return errdefs.NotFound(f"Could not find the file {path} in container {name}")


async def _stat(root: _Root, path: str, name: str) -> _ChildStat:
    proc = await _spawn("stat", root, path)
    out, err = await proc.communicate()
    if proc.returncode == 2:
        raise _not_found(path, name)
    if proc.returncode != 0:
        raise errdefs.System(err.decode(errors="replace").strip() or "stat failed")
    return msgspec.json.decode(out, type=_ChildStat)


def _public(st: _ChildStat) -> ContainerPathStat:
    return ContainerPathStat(name=st.name, size=st.size, mode=st.mode, mtime=gojson.format_go_time(st.mtime_ns),
                             linkTarget=st.linkTarget)


async def container_stat_path(d: Daemon, name: str, path: str) -> ContainerPathStat:
    """ContainerStatPath (HEAD archive)."""
    ctr = d.get_container(name)
    root = await _open_root_for(d, ctr, path, name)
    try:
        return _public(await _stat(root, path, name))
    finally:
        await d.run_blocking(root.release)


async def _stream(proc: asyncio.subprocess.Process, done: Callable[[], object]) -> AsyncIterator[bytes]:
    try:
        assert proc.stdout is not None
        while True:
            chunk = await proc.stdout.read(_CHUNK)
            if not chunk:
                break
            yield chunk
        await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await asyncio.shield(asyncio.ensure_future(_call(done)))


async def _call(fn: Callable[[], object]) -> None:
    r = fn()
    if asyncio.iscoroutine(r):
        await r


async def container_archive_path(d: Daemon, name: str, path: str) -> tuple[AsyncIterator[bytes], ContainerPathStat]:
    """ContainerArchivePath (GET archive): the stat, then the tar of the resource."""
    ctr = d.get_container(name)
    root = await _open_root_for(d, ctr, path, name)
    try:
        st = await _stat(root, path, name)
        proc = await _spawn("archive", root, path)
    except BaseException:
        await d.run_blocking(root.release)
        raise
    d.log_container_event(ctr, "archive-path")
    return _stream(proc, lambda: d.run_blocking(root.release)), _public(st)


def _in_volume(ctr: Container, abs_path: str) -> tuple[bool, bool]:
    """checkIfPathIsInAVolume: (in a volume, that volume is writable)."""
    for mp in ctr.MountPoints.values():
        dest = mp.Destination
        if dest and (abs_path == dest or abs_path.startswith(dest.rstrip("/") + "/")):
            return True, mp.RW
    return False, True


def lookup_host_user(name: str) -> tuple[int, int]:
    """tarCopyOptions' idtools.LookupUser (blocking): dockerd resolves the container's
    `User` in the HOST's user database (/etc/passwd by name, then `getent passwd`), not
    the container's, and uses that entry's uid and primary gid; `uid:gid` forms fail."""
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 4 and fields[0] == name:
                    return _atoi(fields[2]), _atoi(fields[3])
    except OSError:
        pass
    getent = shutil.which("getent")
    if getent is None:
        raise errdefs.Untyped("unable to find getent command")
    r = subprocess.run([getent, "passwd", name], capture_output=True, timeout=30)
    if r.returncode == 1:
        raise errdefs.Untyped("getent reported invalid parameters/database unknown")
    if r.returncode == 2:
        raise errdefs.Untyped(f'getent unable to find entry "{name}" in passwd database')
    if r.returncode == 3:
        raise errdefs.Untyped("getent database doesn't support enumeration")
    if r.returncode != 0:
        raise errdefs.Untyped(f"exit status {r.returncode}")
    for line in r.stdout.decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 4:
            return _atoi(fields[2]), _atoi(fields[3])
    raise errdefs.Untyped(f'getent failed to find passwd entry for "{name}"')


def _atoi(s: str) -> int:
    """libcontainer's passwd parser reads a bad number as 0."""
    try:
        return int(s)
    except ValueError:
        return 0


async def container_extract_to_dir(d: Daemon, name: str, path: str, copy_uid_gid: bool,
                                   no_overwrite_dir_non_dir: bool, body: AsyncIterator[bytes]) -> None:
    """ContainerExtractToDir (PUT archive): PATH must be a directory."""
    ctr = d.get_container(name)
    abs_path = posixpath.normpath(posixpath.join("/", path))
    in_volume, rw = _in_volume(ctr, abs_path)
    if in_volume and not rw:
        raise errdefs.InvalidParameter("mounted volume is marked read-only")
    if not in_volume and ctr.host_config.ReadonlyRootfs:
        raise errdefs.InvalidParameter("container rootfs is marked read-only")
    root = await _open_root_for(d, ctr, path, name)
    try:
        uid = gid = -1  # defaultTarCopyOptions: the archive's own owners
        if copy_uid_gid and ctr.Config.User:
            uid, gid = await d.run_blocking(lookup_host_user, ctr.Config.User)
        proc = await _spawn("extract", root, path, "1" if no_overwrite_dir_non_dir else "0", str(uid), str(gid),
                            stdin=asyncio.subprocess.PIPE)
        assert proc.stdin is not None
        try:
            async for chunk in body:
                proc.stdin.write(chunk)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child stopped reading: its exit status says why
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.close()
        _, err = await proc.communicate()
    finally:
        await d.run_blocking(root.release)
    if proc.returncode == 2:
        raise _not_found(path, name)
    if proc.returncode == 3:
        raise errdefs.InvalidParameter("extraction point is not a directory")
    if proc.returncode != 0:
        raise errdefs.Untyped(err.decode(errors="replace").strip() or "extract failed")
    d.log_container_event(ctr, "extract-to-dir")


async def container_export(d: Daemon, name: str) -> AsyncIterator[bytes]:
    """ContainerExport: a tar of the container's root filesystem (its RW layer mounted over
    the image; volumes are not part of it)."""
    ctr = d.get_container(name)
    if ctr.State.Dead:
        raise errdefs.Conflict(f"You cannot export container {ctr.ID} which is Dead")
    if ctr.State.RemovalInProgress:
        raise errdefs.Conflict(f"You cannot export container {ctr.ID} which is being removed")
    rw = d.layers.get_rw_layer(ctr.ID)
    path = await d.run_blocking(rw.mount)
    try:
        proc = await _spawn("export", path)
    except BaseException:
        await d.run_blocking(rw.unmount)
        raise
    d.log_container_event(ctr, "export")
    return _stream(proc, lambda: d.run_blocking(rw.unmount))
