"""The volume service: named volumes, their references, filters and events.

Follows moby v20.10.24 volume/service/service.go (VolumesService: Create, Get, List,
Remove, Prune, LocalVolumesSize, Release), volume/service/store.go (VolumeStore:
references, OpErr wrapping), volume/service/errors.go (OpErr texts),
volume/service/by.go + service.go `filtersToBy` (list and prune filters) and
volume/service/convert.go (`volumeToAPIType`). Only the `local` driver exists:
plugins are out of scope, so any other driver name is "plugin not found" (404), as
dockerd answers when no such plugin is installed.

References (which containers use a volume) live in memory only; the daemon takes
them again when it restores its containers, as dockerd does. All methods block
(disk) and are thread-safe: the daemon calls them from worker threads.
"""
from __future__ import annotations

import builtins
import logging
import os
import threading
from collections.abc import Callable

from .. import errdefs
from ..pkg.stringid import generate_random_id
from ..types.filters import Args, invalid_filter
from ..types.volume import Volume, VolumesPruneReport, VolumeUsageData
from . import local
from .copy_content import copy_existing_contents
from .local import DRIVER_NAME, LocalVolume, Root
from .mounts import go_quote

log = logging.getLogger("berth.volume")

EmitFn = Callable[[str, str, dict[str, str]], None]

# service.go acceptedListFilterTags / acceptedPruneFilters.
ACCEPTED_LIST_FILTERS = ("dangling", "name", "driver", "label")
ACCEPTED_PRUNE_FILTERS = ("label", "label!")

_ZERO_TIME = "0001-01-01T00:00:00Z"

# moby 23+ volume/service AnonymousLabel: set on every volume created without a name.
# Berth records it apart from Labels (LocalVolume.anonymous) because 20.10 never set it;
# callers pass `anonymous_label=True` (the API layer does from 1.42) to see and filter it
# as the label, as dockerd 29 shows it at every version.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def _op_error(err: errdefs.DockerError, op: str, name: str) -> errdefs.DockerError:
    """store.OpErr: `<op> <name>: <cause>`, keeping the cause's class (and so its status)."""
    prefix = f"{op} {name}" if name else op
    return type(err)(f"{prefix}: {err}")


def _no_such_volume(name: str) -> errdefs.NotFound:
    return errdefs.NotFound(f"get {name}: no such volume" if name else "get: no such volume")


class VolumeService:
    """VolumesService + VolumeStore over the `local` driver rooted at `<data-root>/volumes`."""

    def __init__(self, root: str, emit: EmitFn | None = None) -> None:
        self.root = root
        self._driver = Root(root)
        self._emit = emit
        # Guards _refs and the check-then-act of create/remove (store.go's locks).
        self._lock = threading.RLock()
        self._refs: dict[str, dict[str, None]] = {}  # name → container ids, insertion-ordered
        self._prune_running = threading.Lock()

    # --- events -------------------------------------------------------------------

    def _log_event(self, action: str, name: str, attributes: dict[str, str]) -> None:
        """daemon.LogVolumeEvent; a failing subscriber must not fail the operation."""
        if self._emit is None:
            return
        try:
            self._emit(action, name, attributes)
        except Exception:  # events are best effort, as in dockerd
            log.exception("cannot log volume event %s %s", action, name)

    def log_event(self, action: str, name: str, attributes: dict[str, str]) -> None:
        """A volume event for the daemon's uses of a volume (`mount`, `unmount`)."""
        self._log_event(action, name, attributes)

    # --- lookups ------------------------------------------------------------------

    @staticmethod
    def _lookup_driver(driver: str) -> None:
        """drivers.lookup: only `local` exists here."""
        if driver and driver != DRIVER_NAME:
            raise errdefs.NotFound(
                f"error looking up volume plugin {driver}: plugin {go_quote(driver)} not found"
            )

    def _get_local(self, name: str, driver: str | None = None) -> LocalVolume:
        v = self._driver.get(name)
        if v is None:
            if driver:
                try:
                    self._lookup_driver(driver)
                except errdefs.DockerError as e:
                    raise _op_error(e, "get", name) from None
            raise _no_such_volume(name)
        return v

    @staticmethod
    def _labels(v: LocalVolume, anonymous_label: bool) -> dict[str, str] | None:
        """The volume's labels, with ANONYMOUS_LABEL for an anonymous one when asked."""
        if not (anonymous_label and v.anonymous):
            return v.labels
        return {**(v.labels or {}), ANONYMOUS_LABEL: ""}

    def _to_api(self, v: LocalVolume, with_size: bool = False, anonymous_label: bool = False) -> Volume:
        """convert.go volumeToAPIType (+ UsageData for df)."""
        try:
            created = v.created_at()
        except OSError:
            created = _ZERO_TIME  # Go formats the zero time.Time it gets on a stat error
        out = Volume(
            CreatedAt=created,
            Driver=v.driver_name(),
            Labels=self._labels(v, anonymous_label),
            Mountpoint=v.path(),
            Name=v.name,
            Options=v.options,
            Scope=local.SCOPE,
        )
        if with_size:
            try:
                size = directory_size(v.path())
            except OSError:
                size = -1  # dockerd's UsageData.Size "-1 if not available"
            out.UsageData = VolumeUsageData(RefCount=len(self.refs(v.name)), Size=size)
        return out

    # --- operations ---------------------------------------------------------------

    def create(
        self,
        name: str | None,
        driver: str = DRIVER_NAME,
        opts: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        reference: str | None = None,
        anonymous_label: bool = False,
        anonymous: bool = False,
    ) -> Volume:
        """VolumesService.Create: make the volume, or return the existing one as it is.

        An empty name gets a random 64-hex one. Labels/options given for an existing
        volume are ignored. A `create` event is logged every time, also for an
        existing volume (the CLI's `docker run -v name:/x` shows one per run).
        Errors read `create <name>: <cause>`. A volume made without a name is marked
        anonymous (moby 23+ adds AnonymousLabel there; see ANONYMOUS_LABEL), and so is
        one with `anonymous` set: 20.10's mount parser names a container's anonymous
        volumes itself, before they get here. An existing volume keeps its marker.
        """
        anonymous = anonymous or not name
        if not name:
            name = generate_random_id()
        with self._lock:
            try:
                self._lookup_driver(driver)
                v, _created = self._driver.create(name, opts, labels, anonymous)
            except errdefs.DockerError as e:
                raise _op_error(e, "create", name) from None
            if reference:
                self._refs.setdefault(name, {})[reference] = None
            api = self._to_api(v, anonymous_label=anonymous_label)
        self._log_event("create", v.name, {"driver": v.driver_name()})
        return api

    def get(
        self, name: str, driver: str | None = None, reference: str | None = None, anonymous_label: bool = False
    ) -> Volume:
        """VolumesService.Get: 404 `get <name>: no such volume`; optionally take a reference.

        With `driver`, a volume of another driver is a 409, as store.Get.
        """
        with self._lock:
            v = self._get_local(name, driver)
            if driver and driver != v.driver_name():
                raise errdefs.Conflict(f"get {name}: found volume driver does not match passed in driver")
            if reference:
                self._refs.setdefault(name, {})[reference] = None
            return self._to_api(v, anonymous_label=anonymous_label)

    def list(
        self, filters: Args | None = None, anonymous_label: bool = False
    ) -> tuple[list[Volume], list[str] | None]:
        """VolumesService.List: (volumes, warnings); warnings are always None here."""
        by = self._filters_to_by(filters or Args(), ACCEPTED_LIST_FILTERS, anonymous_label)
        with self._lock:
            return [self._to_api(v, anonymous_label=anonymous_label) for v in self._driver.list() if by(v)], None

    def remove(self, name: str, force: bool = False) -> None:
        """VolumesService.Remove: 404 if missing (nothing with force), 409 while in use.

        `force` is dockerd's PurgeOnError: a missing volume is not an error, and one
        the driver fails to delete is forgotten anyway (the error is still returned).
        A `destroy` event follows a successful removal.
        """
        with self._lock:
            v = self._driver.get(name)
            if v is None:
                if force:
                    return
                raise _no_such_volume(name)
            refs = self._refs.get(name)
            if refs:
                raise errdefs.Conflict(f"remove {name}: volume is in use - [{', '.join(refs)}]")
            try:
                self._driver.remove(v)
            except errdefs.DockerError as e:
                if force:
                    self._driver.forget(name)
                    self._refs.pop(name, None)
                raise _op_error(e, "remove", name) from None
            self._refs.pop(name, None)
        self._log_event("destroy", name, {"driver": v.driver_name()})

    def prune(self, filters: Args | None = None, anonymous_label: bool = False) -> VolumesPruneReport:
        """VolumesService.Prune: remove every unused local volume matching `label`/`label!`.

        API 1.41 prunes named and anonymous volumes alike. dockerd removes them through
        the store, so no `destroy` events are logged, only one `prune` event with the
        bytes reclaimed. A second concurrent prune is refused with 409. API 1.42's
        "anonymous only" is the API layer's `label=com.docker.volume.anonymous` filter,
        matched against the anonymous marker when `anonymous_label` is set.
        """
        if not self._prune_running.acquire(blocking=False):
            raise errdefs.Conflict("a prune operation is already running")
        try:
            by = self._filters_to_by(filters or Args(), ACCEPTED_PRUNE_FILTERS, anonymous_label)
            with self._lock:
                candidates = [
                    v for v in self._driver.list()
                    if v.driver_name() == DRIVER_NAME and not self._refs.get(v.name) and by(v)
                ]  # fmt: skip
            report = VolumesPruneReport(VolumesDeleted=[], SpaceReclaimed=0)
            for v in candidates:
                try:
                    size = directory_size(v.path())
                except OSError as e:
                    log.warning("could not determine size of volume %s: %s", v.name, e)
                    size = 0
                with self._lock:
                    if self._refs.get(v.name) or self._driver.get(v.name) is not v:
                        continue  # taken or removed meanwhile (vs.Remove would refuse)
                    try:
                        self._driver.remove(v)
                    except errdefs.DockerError as e:
                        log.warning("could not remove volume %s: %s", v.name, e)
                        continue
                report.SpaceReclaimed += size
                assert report.VolumesDeleted is not None
                report.VolumesDeleted.append(v.name)
        finally:
            self._prune_running.release()
        self._log_event("prune", "", {"reclaimed": str(report.SpaceReclaimed)})
        return report

    def local_volumes_size(self, anonymous_label: bool = False) -> builtins.list[Volume]:
        """VolumesService.LocalVolumesSize: every local volume with UsageData, for df."""
        with self._lock:
            vols = self._driver.list()
        return [self._to_api(v, with_size=True, anonymous_label=anonymous_label) for v in vols]

    # --- references and mounting (the daemon's side) ------------------------------

    def acquire(self, name: str, ref: str) -> None:
        """Record that container `ref` uses the volume (store.Get WithGetReference)."""
        with self._lock:
            self._get_local(name)
            self._refs.setdefault(name, {})[ref] = None

    def release(self, name: str, ref: str) -> None:
        """VolumesService.Release: drop a reference; unknown names and refs are fine."""
        with self._lock:
            refs = self._refs.get(name)
            if refs is not None:
                refs.pop(ref, None)
                if not refs:
                    del self._refs[name]

    def refs(self, name: str) -> builtins.list[str]:
        """The containers holding the volume, in the order they took it."""
        with self._lock:
            return list(self._refs.get(name) or ())

    def mount(self, name: str, ref: str) -> str:
        """volume.Mount: mount a volume with device options on first use; its data path."""
        v = self._get_local(name)
        return v.mount(ref)

    def unmount(self, name: str, ref: str) -> None:
        """volume.Unmount: unmount when the last user is gone."""
        v = self._driver.get(name)
        if v is not None:
            v.unmount(ref)

    def copy_image_content(self, src_dir: str, volume_path: str) -> None:
        """Populate a volume from the image (container_unix.go copyExistingContents).
        A source that is not a directory fails as fs.CopyDir fails (a 500, as dockerd)."""
        try:
            copy_existing_contents(src_dir, volume_path)
        except NotADirectoryError as e:
            raise errdefs.Untyped(e.strerror or str(e)) from None

    # --- filters (service.go filtersToBy, by.go) ----------------------------------

    def _filters_to_by(
        self, f: Args, accepted: tuple[str, ...], anonymous_label: bool = False
    ) -> Callable[[LocalVolume], bool]:
        f.validate(accepted)
        drivers = f.get("driver")
        check_name = f.contains("name")
        referenced: bool | None = None
        if f.contains("dangling"):
            if f.exact_match("dangling", "true") or f.exact_match("dangling", "1"):
                dangling = True
            elif f.exact_match("dangling", "false") or f.exact_match("dangling", "0"):
                dangling = False
            else:
                raise invalid_filter("dangling", sorted(f.get("dangling")))
            referenced = not dangling

        def by(v: LocalVolume) -> bool:
            if drivers and v.driver_name() not in drivers:
                return False
            if check_name and not f.match("name", v.name):
                return False
            # byLabelFilter
            labels = self._labels(v, anonymous_label)
            if not f.match_kv_list("label", labels):
                return False
            if f.contains("label!") and f.match_kv_list("label!", labels):
                return False
            return not (referenced is not None and bool(self._refs.get(v.name)) != referenced)

        return by


def directory_size(path: str) -> int:
    """moby/pkg/directory.Size: bytes of the non-directory entries, hard links once.

    Entries that vanish during the walk are skipped; a missing `path` is an error.
    """
    os.lstat(path)
    seen: set[int] = set()
    total = 0

    def walk(d: str) -> None:
        nonlocal total
        try:
            entries = list(os.scandir(d))
        except FileNotFoundError:
            return
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if e.is_dir(follow_symlinks=False):
                walk(e.path)
                continue
            if st.st_size == 0 or st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            total += st.st_size

    walk(path)
    return total
