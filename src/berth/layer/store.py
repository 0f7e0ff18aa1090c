"""The layer store (moby/layer/layer_store.go, ro_layer.go, mounted_layer.go,
moby/layer/filestore.go).

Read-only layers are content-addressed by chain ID and unpacked once; images share
them. Each holder of a layer owns one reference: `register` and `get` hand one out,
`release` gives it back, and a layer is deleted when its count reaches zero. A child
layer and a container's RW layer hold a reference on their parent, as in moby, so a
parent never goes before its children.

On disk (`root` is the layerdb directory):

    sha256/<chain hex>/{diff,size,cache-id,parent,tar-split.berth.gz}
    mounts/<container id>.json  {"mount-id", "init-id", "parent"}
    tmp/                  staging for the above; emptied at start

Metadata directories are written in `tmp/` and renamed into place, so a layer is
either fully registered or absent after a crash; driver directories that no
metadata names are removed at start. Reference counts are in memory only: the
image service takes its references again when it loads (moby does the same).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from .. import errdefs
from ..pkg import atomicfile, stringid
from ..trace import traced
from . import archive, tarsplit
from .changes import Change, dir_changes, overlay_changes
from .difftar import write_changes, write_overlay_diff
from .driver import Driver, Overlay2Driver, new_driver
from .initlayer import setup_init_layer


def create_chain_id(parent: str | None, diff_id: str) -> str:
    """moby/layer/layer.go createChainIDFromParent: sha256 of "<parent> <diff id>"."""
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def chain_id_of(diff_ids: list[str]) -> str | None:
    """The chain ID of a whole rootfs (layer.CreateChainID); None for no layers."""
    chain: str | None = None
    for d in diff_ids:
        chain = create_chain_id(chain, d)
    return chain


class Layer:
    """A read-only layer (roLayer). Identity is the chain ID."""

    def __init__(self, chain_id: str, diff_id: str, parent: Layer | None, cache_id: str, size: int) -> None:
        self.chain_id = chain_id
        self.diff_id = diff_id
        self.parent = parent
        self.cache_id = cache_id
        self.size = size
        self.references = 0  # guarded by the store's lock

    def diff_ids(self) -> list[str]:
        """The diff IDs from the base layer up to this one."""
        out: list[str] = []
        layer: Layer | None = self
        while layer is not None:
            out.append(layer.diff_id)
            layer = layer.parent
        return out[::-1]

    def total_size(self) -> int:
        """Size of this layer and all its parents (image VirtualSize)."""
        total = 0
        layer: Layer | None = self
        while layer is not None:
            total += layer.size
            layer = layer.parent
        return total


class RWLayer:
    """A container's read-write layer over its `-init` layer (mountedLayer)."""

    def __init__(self, store: LayerStore, container_id: str, mount_id: str, init_id: str | None,
                 parent: Layer | None) -> None:
        self._store = store
        self.container_id = container_id
        self.mount_id = mount_id
        self.init_id = init_id
        self.parent = parent
        self._gdd: dict[str, str] | None = None  # GetGraphDriverData, read once (inspect is hot)

    def graph_driver_data(self) -> dict[str, str] | None:
        """GraphDriver.Data of container inspect; None (JSON null) for vfs.

        A layer's lower chain never changes, so it is read from disk once (inspect is hot).
        """
        cached = self._gdd
        if cached is None:
            driver = self._store.driver
            if isinstance(driver, Overlay2Driver):
                # Known in memory: the init layer, then the image's layers top down (what
                # the RW layer's `lower` file names), so not even the first inspect reads it.
                lowers = [self.init_id] if self.init_id else []
                layer = self.parent
                while layer is not None:
                    lowers.append(layer.cache_id)
                    layer = layer.parent
                cached = driver.metadata_for(self.mount_id, lowers)
            else:
                cached = driver.metadata(self.mount_id)
            self._gdd = cached
        return dict(cached) if cached is not None else None

    @traced("Mount", leaf=True)
    def mount(self) -> str:
        """Mount (refcounted) and return the root filesystem path."""
        return self._store.driver.get(self.mount_id)

    @traced("Unmount", leaf=True)
    def unmount(self) -> None:
        self._store.driver.put(self.mount_id)

    def diff_dir(self) -> str:
        return self._store.driver.diff_dir(self.mount_id)

    def diff_size(self) -> int:
        """SizeRw: overlay2 measures its upper dir; vfs the files its changes name."""
        drv = self._store.driver
        if isinstance(drv, Overlay2Driver):
            return archive.directory_size(drv.diff_dir(self.mount_id))
        total = 0
        for c in self.changes():
            if c.Kind != 2:
                p = drv.diff_dir(self.mount_id) + c.Path
                if os.path.isfile(p) and not os.path.islink(p):
                    total += os.lstat(p).st_size
        return total

    def tar_stream(self, out: BinaryIO) -> None:
        """mountedLayer.TarStream: the layer's changes as a layer tar (see difftar)."""
        drv = self._store.driver
        if isinstance(drv, Overlay2Driver):
            write_overlay_diff(drv.diff_dir(self.mount_id), out)
        else:
            write_changes(drv.diff_dir(self.mount_id), self.changes(), out)

    def changes(self) -> list[Change]:
        drv = self._store.driver
        if isinstance(drv, Overlay2Driver):
            return overlay_changes(drv.lower_diff_dirs(self.mount_id), drv.diff_dir(self.mount_id))
        assert self.init_id is not None
        return dir_changes(drv.diff_dir(self.mount_id), drv.diff_dir(self.init_id))


class _Progress(io.RawIOBase):
    """The layer file, read with how far it got written every 256 KiB to the first 8 bytes
    of `out` (an fd), for the daemon to read while the worker unpacks."""

    def __init__(self, f: BinaryIO, out: int) -> None:
        super().__init__()
        self.f, self.out, self.pos, self._told = f, out, 0, 0

    def readinto(self, b: Any) -> int:
        n = self.f.readinto(b)  # type: ignore[attr-defined]  # a file opened "rb"
        self.pos += n or 0
        if self.pos - self._told >= 1 << 18 or not n:
            self._told = self.pos
            os.pwrite(self.out, struct.pack("<Q", self.pos), 0)
        return n

    def readable(self) -> bool:
        return True


def _apply_file(path: str, dest: str, whiteouts: str, split_path: str,
                progress_path: str | None = None) -> tuple[str, int]:
    """In a worker process: apply the layer file at `path` into `dest` (diff ID, size); the
    compressed bytes read so far go to `progress_path` as they are read."""
    with open(path, "rb") as f:
        if progress_path is None:
            res = archive.apply_layer(f, dest, whiteouts, split_path)
        else:
            out = os.open(progress_path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                res = archive.apply_layer(_Progress(f, out), dest, whiteouts, split_path)  # type: ignore[arg-type]  # read()/readinto() are all it needs
            finally:
                os.close(out)
    return res.diff_id, res.disk_size if res.disk_size is not None else archive.directory_size(dest)


@dataclass
class Unpacked:
    """A layer unpacked but not yet chained (LayerStore.unpack)."""

    cache_id: str
    diff_id: str
    size: int
    staging: str


class LayerStore:
    """Content-addressed layers and container RW layers over one graph driver.

    `root` is the layerdb directory (dockerd: `<data-root>/image/<driver>/layerdb`).
    Driver data goes under `graph_root` (`<graph_root>/overlay2` or `<graph_root>/vfs`);
    by default the data root three levels above a `.../image/<x>/layerdb` root, else `root`.
    """

    def __init__(self, root: str, driver: str = "overlay2", graph_root: str | None = None) -> None:
        self.root = root
        if graph_root is None:
            parts = os.path.normpath(root).split(os.sep)
            graph_root = os.sep.join(parts[:-3]) if len(parts) > 3 and parts[-3] == "image" else root
        self._lock = threading.Lock()
        os.makedirs(os.path.join(root, "sha256"), mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(root, "mounts"), mode=0o700, exist_ok=True)
        shutil.rmtree(os.path.join(root, "tmp"), ignore_errors=True)
        os.makedirs(os.path.join(root, "tmp"), mode=0o700)
        self.driver: Driver = new_driver(graph_root, driver)
        self._layers: dict[str, Layer] = {}
        self._mounts: dict[str, RWLayer] = {}
        self._restore()

    @property
    def driver_name(self) -> str:
        return self.driver.name

    # -- restore ---------------------------------------------------------------------

    def _meta_dir(self, chain_id: str) -> str:
        return os.path.join(self.root, "sha256", chain_id.split(":", 1)[1])

    def _read(self, d: str, name: str) -> str | None:
        try:
            with open(os.path.join(d, name)) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def _load_layer(self, hexid: str, seen: set[str]) -> Layer | None:
        chain_id = "sha256:" + hexid
        if chain_id in self._layers:
            return self._layers[chain_id]
        if hexid in seen:
            return None
        seen.add(hexid)
        d = os.path.join(self.root, "sha256", hexid)
        diff_id, cache_id, size = self._read(d, "diff"), self._read(d, "cache-id"), self._read(d, "size")
        if not diff_id or not cache_id or size is None:
            return None
        parent_id = self._read(d, "parent")
        parent = None
        if parent_id:
            parent = self._load_layer(parent_id.split(":", 1)[1], seen)
            if parent is None:
                return None
            parent.references += 1
        layer = Layer(chain_id, diff_id, parent, cache_id, int(size))
        self._layers[chain_id] = layer
        return layer

    def _restore(self) -> None:
        seen: set[str] = set()
        for hexid in os.listdir(os.path.join(self.root, "sha256")):
            if "-" not in hexid:
                self._load_layer(hexid, seen)
            elif hexid.endswith("-removing"):  # a release the daemon did not finish
                shutil.rmtree(os.path.join(self.root, "sha256", hexid), ignore_errors=True)
        for name in os.listdir(os.path.join(self.root, "mounts")):
            path = os.path.join(self.root, "mounts", name)
            try:
                if name.startswith(".") or not name.endswith(".json"):
                    raise ValueError(name)  # staging of an interrupted create_rw_layer
                with open(path, "rb") as f:
                    record = json.loads(f.read())
                mount_id, init_id, parent_id = record["mount-id"], record["init-id"], record["parent"]
            except (ValueError, KeyError, OSError):
                os.unlink(path)
                continue
            parent = self._layers.get(parent_id) if parent_id else None
            if parent is not None:
                parent.references += 1
            cid = name[: -len(".json")]
            self._mounts[cid] = RWLayer(self, cid, mount_id, init_id or None, parent)
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Driver directories no metadata names are leftovers of an interrupted register/create."""
        known = {layer.cache_id for layer in self._layers.values()}
        for m in self._mounts.values():
            known.add(m.mount_id)
            if m.init_id:
                known.add(m.init_id)
        home = self.driver.dir("x").rsplit("/", 1)[0]
        for name in os.listdir(home):
            if name in ("l",) or name.startswith(".") or name in known:
                continue
            self.driver.remove(name)

    # -- read-only layers ------------------------------------------------------------

    @traced("Register")  # layerStore.Register (applyTar inside)
    def register(self, tar_stream: BinaryIO, parent: str | None) -> Layer:
        """Unpack a layer tar on top of `parent` (a chain ID) and return it with one reference.

        Idempotent: when the resulting chain ID exists, the new copy is discarded and the
        existing layer is returned with one more reference. Unpack errors raise
        errdefs.System with dockerd's text; nothing is left on disk.
        """
        with self._lock:
            p = None
            if parent is not None:
                p = self._layers.get(parent)
                if p is None:
                    raise errdefs.NotFound("layer does not exist")
                p.references += 1  # held by the new layer, or given back below
        cache_id = stringid.generate_random_id()
        staging = tempfile.mkdtemp(prefix="write-set-", dir=os.path.join(self.root, "tmp"))
        try:
            self.driver.create(cache_id, p.cache_id if p else None)
            try:
                res = archive.apply_layer(tar_stream, self.driver.diff_dir(cache_id), self.driver.whiteouts,
                                          os.path.join(staging, tarsplit.FILE_NAME))
                # overlay2's ApplyDiff reports the size of the diff dir; the naive (vfs) path
                # reports the sum of the entries' sizes.
                size = ((res.disk_size if res.disk_size is not None else archive.directory_size(
                    self.driver.diff_dir(cache_id))) if isinstance(self.driver, Overlay2Driver) else res.size)
            except BaseException:
                self.driver.remove(cache_id)
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if p is not None:
                self.release(p.chain_id)
            raise
        chain_id = create_chain_id(p.chain_id if p else None, res.diff_id)
        with self._lock:
            existing = self._layers.get(chain_id)
            if existing is None:
                try:
                    self._commit(staging, chain_id, res.diff_id, p, cache_id, size)
                except BaseException:
                    self.driver.remove(cache_id)
                    shutil.rmtree(staging, ignore_errors=True)
                    if p is not None:
                        p.references -= 1
                    raise
                layer = Layer(chain_id, res.diff_id, p, cache_id, size)
                layer.references = 1
                self._layers[chain_id] = layer
                return layer
            existing.references += 1
        self.driver.remove(cache_id)
        shutil.rmtree(staging, ignore_errors=True)
        if p is not None:
            self.release(p.chain_id)
        return existing

    # -- two-phase registration (pull: unpack side by side, chain in order) ----------------

    def can_unpack_detached(self) -> bool:
        """overlay2 diff dirs do not depend on the parent's contents; vfs copies the parent."""
        return isinstance(self.driver, Overlay2Driver)

    @traced("applyTar")  # the untar of layerStore.Register, before its parent is known
    def unpack(self, tar_stream: BinaryIO) -> Unpacked:
        """Unpack a layer tar with no parent yet (overlay2 only); commit_unpacked chains it.
        Errors as register's; nothing is left on disk on failure."""
        cache_id = stringid.generate_random_id()
        staging = tempfile.mkdtemp(prefix="write-set-", dir=os.path.join(self.root, "tmp"))
        try:
            self.driver.create(cache_id, None)
            try:
                res = archive.apply_layer(tar_stream, self.driver.diff_dir(cache_id), self.driver.whiteouts,
                                          os.path.join(staging, tarsplit.FILE_NAME))
                size = res.disk_size if res.disk_size is not None else archive.directory_size(
                    self.driver.diff_dir(cache_id))
            except BaseException:
                self.driver.remove(cache_id)
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Unpacked(cache_id, res.diff_id, size, staging)

    @traced("applyTar")
    def unpack_file(self, path: str, pool: Any, progress: Callable[[int], None] | None = None) -> Unpacked:
        """unpack() of a (compressed) layer file, the tar work done in `pool` (a process pool:
        unpacking is CPU-bound Python, and processes unpack side by side where threads would
        share one interpreter lock). `progress` hears how many of the file's bytes the worker
        has read, every 100 ms while it runs."""
        cache_id = stringid.generate_random_id()
        staging = tempfile.mkdtemp(prefix="write-set-", dir=os.path.join(self.root, "tmp"))
        fd, progress_path = tempfile.mkstemp(prefix="progress-", dir=os.path.join(self.root, "tmp"))
        try:
            self.driver.create(cache_id, None)
            try:
                fut = pool.submit(_apply_file, path, self.driver.diff_dir(cache_id), self.driver.whiteouts,
                                  os.path.join(staging, tarsplit.FILE_NAME), progress_path if progress else None)
                while True:
                    try:
                        diff_id, size = fut.result(timeout=0.1)
                        break
                    except concurrent.futures.TimeoutError:
                        told = os.pread(fd, 8, 0)
                        if progress is not None and len(told) == 8:
                            progress(struct.unpack("<Q", told)[0])
            except BaseException:
                self.driver.remove(cache_id)
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            os.close(fd)
            os.unlink(progress_path)
        return Unpacked(cache_id, diff_id, size, staging)

    def discard_unpacked(self, u: Unpacked) -> None:
        self.driver.remove(u.cache_id)
        shutil.rmtree(u.staging, ignore_errors=True)

    @traced("Register")
    def commit_unpacked(self, u: Unpacked, parent: str | None) -> Layer:
        """Chain an unpacked layer on `parent` (a chain ID) and register it with one reference,
        as register would have; an existing chain ID wins and the copy is discarded."""
        with self._lock:
            p = None
            if parent is not None:
                p = self._layers.get(parent)
                if p is None:
                    self.discard_unpacked(u)
                    raise errdefs.NotFound("layer does not exist")
            chain_id = create_chain_id(p.chain_id if p else None, u.diff_id)
            existing = self._layers.get(chain_id)
            if existing is not None:
                existing.references += 1
        if existing is not None:
            self.discard_unpacked(u)
            return existing
        try:
            if p is not None:
                self.driver.attach_parent(u.cache_id, p.cache_id)  # type: ignore[union-attr]  # only overlay2 unpacks detached layers (can_unpack_detached)
        except BaseException:
            self.discard_unpacked(u)
            raise
        with self._lock:
            existing = self._layers.get(chain_id)
            if existing is None:
                if p is not None:
                    p.references += 1
                try:
                    self._commit(u.staging, chain_id, u.diff_id, p, u.cache_id, u.size)
                except BaseException:
                    if p is not None:
                        p.references -= 1
                    self.discard_unpacked(u)
                    raise
                layer = Layer(chain_id, u.diff_id, p, u.cache_id, u.size)
                layer.references = 1
                self._layers[chain_id] = layer
                return layer
            existing.references += 1
        self.discard_unpacked(u)
        return existing

    def _commit(self, staging: str, chain_id: str, diff_id: str, parent: Layer | None, cache_id: str,
                size: int) -> None:
        files = {"diff": diff_id, "size": str(size), "cache-id": cache_id}
        if parent is not None:
            files["parent"] = parent.chain_id
        for name, value in files.items():
            with open(os.path.join(staging, name), "w") as f:
                f.write(value)
                f.flush()
                os.fsync(f.fileno())
        os.chmod(staging, 0o700)
        os.rename(staging, self._meta_dir(chain_id))
        atomicfile.fsync_dir(os.path.join(self.root, "sha256"))

    def get(self, chain_id: str) -> Layer:
        """The layer, with one more reference (moby layerStore.Get)."""
        with self._lock:
            layer = self._layers.get(chain_id)
            if layer is None:
                raise errdefs.NotFound("layer does not exist")
            layer.references += 1
            return layer

    def lookup(self, chain_id: str) -> Layer | None:
        """The layer without taking a reference (for reading sizes and paths)."""
        with self._lock:
            return self._layers.get(chain_id)

    def size(self, chain_id: str) -> int:
        layer = self.lookup(chain_id)
        if layer is None:
            raise errdefs.NotFound("layer does not exist")
        return layer.size

    def release(self, chain_id: str) -> list[str]:
        """Give back one reference; returns the chain IDs deleted as a result (child first)."""
        removed: list[tuple[Layer, str]] = []
        with self._lock:
            layer = self._layers.get(chain_id)
            if layer is None:
                return []
            while layer is not None:
                layer.references -= 1
                if layer.references > 0:
                    break
                del self._layers[layer.chain_id]
                # The chain ID's metadata directory leaves its name under the lock, with the
                # name's entry in the map: a register of the same chain ID right after (a pull
                # or load following `docker rmi`) finds the name free (dockerd deletes before
                # answering, so it never races). The content goes after, outside the lock;
                # the new layer's content is in a directory of its own (a new cache ID).
                removed.append((layer, self._unname_meta(layer.chain_id)))
                layer = layer.parent
        for layer, gone in removed:
            self.driver.remove(layer.cache_id)
            shutil.rmtree(gone, ignore_errors=True)
        return [layer.chain_id for layer, _gone in removed]

    def _unname_meta(self, chain_id: str) -> str:
        """Move a chain ID's metadata directory out of its name; where it went."""
        d = self._meta_dir(chain_id)
        gone = f"{d}-{stringid.generate_random_id()[:8]}-removing"
        try:
            os.rename(d, gone)
        except FileNotFoundError:
            return d
        return gone

    def tar_stream(self, chain_id: str, out: BinaryIO) -> int:
        """Write the layer's original tar (byte-identical, via its tar-split) to `out`."""
        layer = self.lookup(chain_id)
        if layer is None:
            raise errdefs.NotFound("layer does not exist")
        split = os.path.join(self._meta_dir(chain_id), tarsplit.FILE_NAME)
        try:
            return tarsplit.reassemble(split, self.driver.diff_dir(layer.cache_id), out)
        except OSError as e:
            raise errdefs.System(f"failed to get layer for image {chain_id}: {e}") from e

    def layers(self) -> Iterator[Layer]:
        with self._lock:
            return iter(list(self._layers.values()))

    # -- RW layers -------------------------------------------------------------------

    def create_rw_layer(self, container_id: str, parent_chain_id: str | None,
                        storage_opt: dict[str, str] | None = None) -> RWLayer:
        """The container's RW layer and its `-init` layer (layerStore.CreateRWLayer + initMount).

        The mount ID is random, as dockerd's; the init layer is `<mount id>-init`.
        `storage_opt` (HostConfig.StorageOpt) is checked by the driver before anything is made.
        """
        if storage_opt:
            self.driver.check_storage_opt(storage_opt)
        with self._lock:
            if container_id in self._mounts:
                raise errdefs.Conflict("mount already exists with name")  # ErrMountNameConflict
            parent = None
            if parent_chain_id is not None:
                parent = self._layers.get(parent_chain_id)
                if parent is None:
                    raise errdefs.NotFound("layer does not exist")
                parent.references += 1
        mount_id = stringid.generate_random_id()
        init_id = mount_id + "-init"
        try:
            self.driver.create(init_id, parent.cache_id if parent else None)
            try:
                lowers = [self.driver.diff_dir(parent.cache_id)] + self.driver.lower_diff_dirs(parent.cache_id) \
                    if parent is not None and isinstance(self.driver, Overlay2Driver) else []
                if isinstance(self.driver, Overlay2Driver):
                    setup_init_layer(self.driver.diff_dir(init_id), lowers)
                else:
                    setup_init_layer(self.driver.diff_dir(init_id), [self.driver.diff_dir(init_id)])
                self.driver.create(mount_id, init_id)
            except BaseException:
                self.driver.remove(init_id)
                raise
            try:
                self._write_mount(container_id, mount_id, init_id, parent)
            except BaseException:
                self.driver.remove(mount_id)
                self.driver.remove(init_id)
                raise
        except BaseException:
            if parent is not None:
                self.release(parent.chain_id)
            raise
        rw = RWLayer(self, container_id, mount_id, init_id, parent)
        with self._lock:
            self._mounts[container_id] = rw
        return rw

    def _write_mount(self, container_id: str, mount_id: str, init_id: str, parent: Layer | None) -> None:
        """mounts/<container id>.json, written to a temp name and renamed.

        One file rather than moby's three (mount-id, init-id, parent): every file costs a
        create on the container-create hot path. No fsync either: the daemon fsyncs the
        container's config right after, which on journaling filesystems commits this too;
        an unreadable mount file is dropped at restore.
        """
        record = {"mount-id": mount_id, "init-id": init_id, "parent": parent.chain_id if parent else ""}
        path = os.path.join(self.root, "mounts", container_id + ".json")
        tmp = os.path.join(self.root, "mounts", "." + container_id + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(record).encode())
        finally:
            os.close(fd)
        os.rename(tmp, path)

    def get_rw_layer(self, container_id: str) -> RWLayer:
        with self._lock:
            rw = self._mounts.get(container_id)
        if rw is None:
            raise errdefs.NotFound("mount does not exist")  # ErrMountDoesNotExist
        return rw

    def discard_dir(self, path: str) -> None:
        """Remove a directory of the data root (a removed container's) the way layers go:
        renamed into the driver's trash at once, deleted from the disk in the background
        (deleted in place when the trash is on another filesystem)."""
        self.driver.trash.discard(path)

    def close(self) -> None:
        """Wait for deleted layer directories to be gone from the disk (driver trash)."""
        self.driver.trash.wait_empty()

    def remove_rw_layer(self, container_id: str) -> list[str]:
        """Delete the RW and init layers; returns the read-only layers deleted with them."""
        with self._lock:
            rw = self._mounts.pop(container_id, None)
        if rw is None:
            raise errdefs.NotFound("mount does not exist")
        self.driver.remove(rw.mount_id)
        if rw.init_id:
            self.driver.remove(rw.init_id)
        try:
            os.unlink(os.path.join(self.root, "mounts", container_id + ".json"))
        except FileNotFoundError:
            pass
        if rw.parent is not None:
            return self.release(rw.parent.chain_id)
        return []
