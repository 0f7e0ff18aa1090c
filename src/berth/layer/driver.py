"""Graph drivers: overlay2 and vfs (moby/daemon/graphdriver/overlay2/overlay.go,
moby/daemon/graphdriver/vfs/driver.go).

overlay2 layout, as dockerd's:

    <home>/<id>/diff      the layer's own files (upper dir of a container)
    <home>/<id>/link      the short name of this layer under l/
    <home>/<id>/lower     "l/ABC:l/DEF", the parent chain, nearest first (absent for a base layer)
    <home>/<id>/work      overlayfs work dir (layers with a parent)
    <home>/<id>/merged    mount point
    <home>/l/<short>      -> ../<id>/diff

The `l/` links keep the mount option string short: a page (4096 bytes) holds about
125 layers by link against ~40 by full path (moby's comment on `linkDir`). Drivers
are thread-safe: the mount refcounts are guarded by a lock.
"""
from __future__ import annotations

import base64
import ctypes
import os
import secrets
import shutil
import subprocess
import tempfile
import threading

from .. import errdefs
from ..pkg import ioutil
from .trash import Trash

_LINK_DIR = "l"
_ID_LENGTH = 26  # overlay2 generateID: base32 of 16 random bytes, unpadded
_MAX_OPTS = 4096 - 1  # mount(2) takes one page of data

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_MNT_DETACH = 2


def _mount(source: str, target: str, fstype: str, data: str) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _unmount(target: str) -> None:
    if _libc.umount2(target.encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _generate_link_id() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=")[:_ID_LENGTH]


class Overlay2Driver:
    """moby/daemon/graphdriver/overlay2/overlay.go, without quota or userns remapping."""

    name = "overlay2"
    whiteouts = "overlay"

    @staticmethod
    def check_storage_opt(opts: dict[str, str]) -> None:
        """CreateReadWrite's StorageOpt checks. Berth never has project quotas (overlay
        on xfs with pquota), so a `size` is always refused; dockerd refuses the exact key
        `size` that way and any other key with parseStorageOpt's "Unknown option"
        (a differently cased `size` crashes its handler: refused here as `size`)."""
        if "size" in opts:
            raise errdefs.Untyped("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
        for key in opts:
            if key.lower() == "size":
                raise errdefs.Untyped("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
            raise errdefs.Untyped(f"Unknown option {key.lower()}")

    def __init__(self, home: str, mount_opts: str = "index=off") -> None:
        self.home = home
        self._mount_opts = mount_opts
        self._lock = threading.Lock()
        self._refs: dict[str, int] = {}
        os.makedirs(os.path.join(home, _LINK_DIR), mode=0o700, exist_ok=True)
        os.chmod(home, 0o710)
        self.trash = Trash(home)

    @staticmethod
    def probe(home: str) -> str | None:
        """Mount options that work on this host, or None if overlayfs cannot be mounted here.

        Like overlay2's supportsOverlay plus the index=off check, done for real in a
        temporary directory on the same filesystem as `home`.
        """
        os.makedirs(home, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".probe-", dir=home)
        try:
            for d in ("l1", "l2", "u", "w", "m"):
                os.mkdir(os.path.join(tmp, d))
            for extra in (",index=off", ""):
                try:
                    _mount("overlay", os.path.join(tmp, "m"), "overlay",
                           f"lowerdir={tmp}/l1:{tmp}/l2,upperdir={tmp}/u,workdir={tmp}/w{extra}")
                except OSError:
                    continue
                _unmount(os.path.join(tmp, "m"))
                return extra.lstrip(",")
            return None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # f-strings, not os.path.join: IDs are driver-made names, and these run for every
    # layer of a container's first inspect
    def dir(self, id_: str) -> str:
        return f"{self.home}/{id_}"

    def diff_dir(self, id_: str) -> str:
        return f"{self.home}/{id_}/diff"

    def create(self, id_: str, parent: str | None) -> None:
        """overlay2 create: diff, link and l/ symlink; with a parent also work and lower."""
        d = self.dir(id_)
        os.mkdir(d, 0o710)
        try:
            os.mkdir(os.path.join(d, "diff"), 0o755)
            link = _generate_link_id()
            os.symlink(os.path.join("..", id_, "diff"), os.path.join(self.home, _LINK_DIR, link))
            ioutil.write_file(os.path.join(d, "link"), link.encode())  # errors worded as dockerd's
            if parent is not None:
                self.attach_parent(id_, parent)
        except BaseException:
            self.remove(id_)
            raise

    def attach_parent(self, id_: str, parent: str) -> None:
        """Give a layer made with no parent its parent afterwards (work dir and lower chain), so
        that layers can be unpacked side by side and chained in order (pull)."""
        d = self.dir(id_)
        os.mkdir(os.path.join(d, "work"), 0o700)
        with open(os.path.join(self.dir(parent), "link")) as f:
            lower = f"{_LINK_DIR}/{f.read().strip()}"
        try:
            with open(os.path.join(self.dir(parent), "lower")) as f:
                lower += ":" + f.read().strip()
        except FileNotFoundError:
            pass
        ioutil.write_file(os.path.join(d, "lower"), lower.encode())

    def remove(self, id_: str) -> None:
        d = self.dir(id_)
        try:
            with open(os.path.join(d, "link")) as f:
                link = f.read().strip()
            if link:
                os.unlink(os.path.join(self.home, _LINK_DIR, link))
        except FileNotFoundError:
            pass
        merged = os.path.join(d, "merged")
        if os.path.ismount(merged):
            _unmount(merged)
        self.trash.discard(d)

    def _lower_dirs(self, id_: str) -> list[str]:
        try:
            with open(os.path.join(self.dir(id_), "lower")) as f:
                lower = f.read().strip()
        except FileNotFoundError:
            return []
        out = []
        for link in lower.split(":"):
            target = os.readlink(os.path.join(self.home, link))
            out.append(os.path.normpath(os.path.join(self.home, _LINK_DIR, target)))
        return out

    def metadata(self, id_: str) -> dict[str, str] | None:
        """GraphDriver.Data as overlay2 GetMetadata: LowerDir only when there is a parent."""
        return self._metadata(id_, self._lower_dirs(id_))

    def metadata_for(self, id_: str, lower_ids: list[str]) -> dict[str, str]:
        """metadata() for a layer whose lower chain (driver IDs, nearest first) the caller knows."""
        return self._metadata(id_, [self.diff_dir(i) for i in lower_ids])

    def _metadata(self, id_: str, lowers: list[str]) -> dict[str, str]:
        d = self.dir(id_)
        data = {}
        if lowers:
            data["LowerDir"] = ":".join(lowers)
        data["MergedDir"] = f"{d}/merged"
        data["UpperDir"] = f"{d}/diff"
        data["WorkDir"] = f"{d}/work"
        return data

    def get(self, id_: str) -> str:
        """Mount the layer (refcounted); a layer without parents is its diff dir, unmounted."""
        d = self.dir(id_)
        try:
            with open(os.path.join(d, "lower")) as f:
                lower = f.read().strip()
        except FileNotFoundError:
            return os.path.join(d, "diff")
        merged = os.path.join(d, "merged")
        with self._lock:
            n = self._refs.get(id_, 0)
            if n == 0 and not os.path.ismount(merged):
                os.makedirs(merged, mode=0o700, exist_ok=True)
                opts = (f"lowerdir={':'.join(os.path.join(self.home, x) for x in lower.split(':'))},"
                        f"upperdir={d}/diff,workdir={d}/work")
                if self._mount_opts:
                    opts += "," + self._mount_opts
                try:
                    if len(opts) <= _MAX_OPTS:
                        _mount("overlay", merged, "overlay", opts)
                    else:
                        self._mount_relative(id_, lower)
                except OSError as e:
                    raise errdefs.System(f"error creating overlay mount to {merged}: {e}") from e
            self._refs[id_] = n + 1
        return merged

    def _mount_relative(self, id_: str, lower: str) -> None:
        """Too long for a page with absolute paths: mount from inside `home` (moby's mountFrom
        re-exec does the same) so that the `l/...` names stay relative. A child process keeps
        the daemon's working directory untouched."""
        opts = f"lowerdir={lower},upperdir={id_}/diff,workdir={id_}/work"
        if self._mount_opts:
            opts += "," + self._mount_opts
        res = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, f"{id_}/merged"],
                             cwd=self.home, capture_output=True, text=True)
        if res.returncode != 0:
            raise OSError(res.stderr.strip())

    def put(self, id_: str) -> None:
        """Drop one mount reference; unmount at zero."""
        with self._lock:
            n = self._refs.get(id_, 0)
            if n > 1:
                self._refs[id_] = n - 1
                return
            self._refs.pop(id_, None)
            merged = os.path.join(self.dir(id_), "merged")
            if os.path.ismount(merged):
                _unmount(merged)

    def lower_diff_dirs(self, id_: str) -> list[str]:
        """The diff dirs of the parents, nearest first (for docker diff)."""
        return self._lower_dirs(id_)


class VfsDriver:
    """moby/daemon/graphdriver/vfs: every layer is a full copy of its parent plus its diff."""

    name = "vfs"
    whiteouts = "apply"

    @staticmethod
    def check_storage_opt(opts: dict[str, str]) -> None:
        """vfs CreateReadWrite: `size` needs quota support (never here), nothing else exists."""
        for key in opts:
            if key == "size":
                raise errdefs.NotImplemented("Filesystem does not support, or has not enabled quotas")
            raise errdefs.Untyped(f"Storage opt {key} not supported")

    def __init__(self, home: str) -> None:
        self.home = home
        self._parents: dict[str, str | None] = {}
        os.makedirs(os.path.join(home, "dir"), mode=0o710, exist_ok=True)
        self.trash = Trash(home)

    def dir(self, id_: str) -> str:
        return os.path.join(self.home, "dir", id_)

    def diff_dir(self, id_: str) -> str:
        return self.dir(id_)

    def create(self, id_: str, parent: str | None) -> None:
        d = self.dir(id_)
        if parent is None:
            os.mkdir(d, 0o755)
            return
        # cp -a keeps owners, modes, times, xattrs, devices and hard links (vfs dirCopy).
        res = subprocess.run(["cp", "-a", "--reflink=auto", self.dir(parent), d], capture_output=True, text=True)
        if res.returncode != 0:
            shutil.rmtree(d, ignore_errors=True)
            raise errdefs.System(f"vfs: copying {parent}: {res.stderr.strip()}")

    def remove(self, id_: str) -> None:
        self.trash.discard(self.dir(id_))

    def metadata(self, id_: str) -> dict[str, str] | None:
        return None  # vfs has no metadata: GraphDriver.Data is null

    def get(self, id_: str) -> str:
        return self.dir(id_)

    def put(self, id_: str) -> None:
        pass

    def lower_diff_dirs(self, id_: str) -> list[str]:
        return []


Driver = Overlay2Driver | VfsDriver


def new_driver(graph_root: str, name: str) -> Driver:
    """overlay2 if asked and mountable here, else vfs (dockerd would refuse; Berth falls back
    so that it runs in containers without overlay support)."""
    if name == "overlay2":
        home = os.path.join(graph_root, "overlay2")
        opts = Overlay2Driver.probe(home)
        if opts is not None:
            return Overlay2Driver(home, opts)
    elif name != "vfs":
        raise errdefs.System(f"error initializing graphdriver: driver not supported: {name}")
    return VfsDriver(os.path.join(graph_root, "vfs"))
