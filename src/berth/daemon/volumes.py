"""A container's mount points (moby/daemon/volumes.go registerMountPoints,
daemon/create_unix.go image volumes, daemon/volumes_unix.go populateVolumes).

Split in two for the event loop: `plan_mount_points` parses and validates every
spec and looks up `VolumesFrom` containers (pure, on the loop); `register_mount_points`
makes the volumes (disk, in the create path's worker thread).
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from .. import errdefs
from ..pkg import symlink
from ..pkg.stringid import generate_random_id
from ..trace import traced
from ..types import mount as mt
from ..types.container import HostConfig, NetworkingConfig
from ..volume import mounts
from ..volume.mounts import MountPoint, go_errno_text

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

log = logging.getLogger("berth.daemon")


@dataclass
class MountPlan:
    """Mount points parsed from the request, in dockerd's precedence order."""

    points: dict[str, MountPoint] = field(default_factory=dict)
    # (destination, volume name, driver, driver options, labels) to create or reuse
    volumes: list[tuple[str, str, str, dict[str, str] | None, dict[str, str] | None]] = field(default_factory=list)
    networking_config: NetworkingConfig | None = None


class _VolumeRef:
    """The `Volume` a mount point holds (volumeWrapper): gives its path."""

    def __init__(self, name: str, mountpoint: str) -> None:
        self.name = name
        self.mountpoint = mountpoint

    def path(self) -> str:
        return self.mountpoint


def plan_mount_points(d: Daemon, ctr: Container, hc: HostConfig) -> MountPlan:
    plan = MountPlan()
    points = plan.points
    # 2. VolumesFrom: every mount point of the source container, RW only if both allow it.
    for spec in hc.VolumesFrom or []:
        try:
            cid, mode = mounts.parse_volumes_from(spec)
        except errdefs.DockerError as e:
            raise errdefs.InvalidParameter(str(e)) from None
        except ValueError as e:
            raise errdefs.InvalidParameter(str(e)) from None
        try:
            src = d.get_container(cid)
        except errdefs.NotFound as e:
            raise errdefs.InvalidParameter(str(e)) from None
        for m in src.MountPoints.values():
            cp = MountPoint(
                Source=m.Source, Destination=m.Destination, RW=m.RW and mounts.read_write(mode),
                Name=m.Name, Driver=m.Driver, Type=m.Type, Propagation=m.Propagation, Spec=m.Spec,
            )
            if m.Type == mt.TYPE_VOLUME and m.Name:
                plan.volumes.append((m.Destination, m.Name, m.Driver, None, None))
            points[cp.Destination] = cp
    binds: set[str] = set()
    tmpfs = set((hc.Tmpfs or {}).keys()) if isinstance(hc.Tmpfs, dict) else set()
    # 3. Binds
    for raw in hc.Binds or []:
        bind = mounts.parse_mount_raw(raw, hc.VolumeDriver)
        if mounts.validate_bind_daemon_root(bind.Spec, d.root):
            bind.Propagation = mt.PROPAGATION_RSLAVE
        if bind.Destination in binds or bind.Destination in tmpfs:
            raise errdefs.InvalidParameter(f"Duplicate mount point: {bind.Destination}")
        if bind.Type == mt.TYPE_VOLUME:
            plan.volumes.append((bind.Destination, bind.Name, bind.Driver, None, None))
        binds.add(bind.Destination)
        points[bind.Destination] = bind
    # 4. Mounts
    for cfg in hc.Mounts or []:
        mp = mounts.parse_mount_spec(cfg)
        if mounts.validate_bind_daemon_root(mp.Spec, d.root):
            mp.Propagation = mt.PROPAGATION_RSLAVE
        if mp.Destination in binds:
            raise errdefs.InvalidParameter(f"Duplicate mount point: {mt.text(cfg.Target)}")
        if mp.Type == mt.TYPE_VOLUME:
            opts = labels = None
            vo = cfg.VolumeOptions
            if mt.is_set(vo):
                if mt.is_set(vo.DriverConfig) and isinstance(vo.DriverConfig.Options, dict):
                    opts = vo.DriverConfig.Options
                if isinstance(vo.Labels, dict):
                    labels = vo.Labels
            plan.volumes.append((mp.Destination, mp.Name, mp.Driver, opts, labels))
        if mp.Type == mt.TYPE_BIND:
            mp.SkipMountpointCreation = True
        binds.add(mp.Destination)
        points[mp.Destination] = mp
    return plan


@traced("setHostConfig", leaf=True)
def register_mount_points(d: Daemon, ctr: Container, plan: MountPlan) -> None:
    """Create or reuse the named volumes of the plan and attach them (blocking)."""
    for dest, name, driver, opts, labels in plan.volumes:
        mp = plan.points[dest]
        # `-v /x` or a volume mount without a Source: the parser (20.10) has named it
        # already; tell the service it is anonymous (moby 23+ labels it so).
        anonymous = mt.text(mp.Spec.Source) == ""
        v = d.volumes.create(name or "", driver or "local", opts, labels, reference=ctr.ID, anonymous=anonymous)
        mp.Volume = _VolumeRef(v.Name, v.Mountpoint)
        mp.Name = v.Name
        mp.Driver = v.Driver
        mp.Source = v.Mountpoint
        if mp.Driver == "local" and not mt.text(mp.Mode):
            mp.Mode = "z"
    ctr.MountPoints = plan.points


def has_volumes_to_populate(ctr: Container) -> bool:
    """Has the container a volume mount point to fill from the image (CopyData)?"""
    return any(mp.Type == mt.TYPE_VOLUME and mp.Volume is not None and mp.CopyData
               for mp in ctr.MountPoints.values())


def create_image_volumes(d: Daemon, ctr: Container, rootfs: str) -> None:
    """One anonymous volume per Config.Volumes key not already mounted, then copy the
    image's content into fresh ones (populateVolumes)."""
    tmpfs = ctr.host_config.Tmpfs if isinstance(ctr.host_config.Tmpfs, dict) else {}
    for spec in ctr.Config.Volumes or {}:
        dest = os.path.normpath(spec)
        if dest in ctr.MountPoints or dest in tmpfs:  # HasMountFor: mount points and --tmpfs
            continue
        path = symlink.follow_symlink_in_scope(os.path.join(rootfs, dest.lstrip("/")), rootfs)
        if os.path.exists(path) and not os.path.isdir(path):
            raise errdefs.Untyped(f"cannot mount volume over existing file, file exists {path}")
        # No name: the service makes one up and marks the volume anonymous (moby 23+
        # createContainerOSSpecificSettings passes "" too; 20.10 generated the ID here).
        v = d.volumes.create("", ctr.host_config.VolumeDriver or "local", None, None, reference=ctr.ID)
        mp = MountPoint(Destination=dest, RW=True, Name=v.Name, Driver=v.Driver, Type=mt.TYPE_VOLUME,
                        Source=v.Mountpoint)
        mp.Volume = _VolumeRef(v.Name, v.Mountpoint)
        mp.CopyData = True
        ctr.MountPoints[dest] = mp
    populate_volumes(d, ctr, rootfs)


def populate_volumes(d: Daemon, ctr: Container, rootfs: str) -> None:
    """populateVolumes: every volume mount point with CopyData (not `nocopy`, not from
    VolumesFrom) gets the image's content at its destination if the volume is empty
    (CopyImagePathContent: the volume is mounted for the copy, so a volume with device
    options is filled on its device)."""
    for mp in ctr.MountPoints.values():
        if mp.Type != mt.TYPE_VOLUME or mp.Volume is None or not mp.CopyData:
            continue
        src = symlink.follow_symlink_in_scope(os.path.join(rootfs, mp.Destination.lstrip("/")), rootfs)
        if not os.path.lexists(src):
            continue
        mid = generate_random_id()
        path = d.volumes.mount(mp.Volume.name, mid)
        try:
            d.volumes.copy_image_content(src, path)
        finally:
            try:
                d.volumes.unmount(mp.Volume.name, mid)
            except errdefs.DockerError as e:
                log.warning("error while unmounting volume %s: %s", mp.Volume.name, e)


def release_mount_points(d: Daemon, ctr: Container, remove_anonymous: bool) -> None:
    """Drop the container's volume references; remove anonymous ones if asked
    (daemon/mounts.go removeMountPoints)."""
    for mp in list(ctr.MountPoints.values()):
        if mp.Type != mt.TYPE_VOLUME or not mp.Name:
            continue
        try:
            d.volumes.release(mp.Name, ctr.ID)
        except errdefs.DockerError:
            continue
        # Named mount points (`-v name:/foo`) are kept; anonymous ones have no Spec.Source.
        if remove_anonymous and mt.text(mp.Spec.Source) == "":
            try:
                d.volumes.remove(mp.Name)
            except errdefs.DockerError as e:
                log.warning("cannot remove anonymous volume %s: %s", mp.Name, e)


def _lazy_initialize_volume(d: Daemon, ctr: Container, mp: MountPoint) -> None:
    """lazyInitializeVolume: after a daemon restart a mount point has its volume's name
    and driver but no volume attached; get it again (taking the reference)."""
    if mp.Driver and mp.Volume is None:
        v = d.volumes.get(mp.Name, driver=mp.Driver, reference=ctr.ID)
        mp.Volume = _VolumeRef(v.Name, v.Mountpoint)


def _setup_mount_point(d: Daemon, mp: MountPoint) -> str:
    """MountPoint.Setup: mount the volume (the local driver mounts a device given in its
    options on first use), or create a missing bind source as a directory (`-v`/Binds
    only: `--mount type=bind` is SkipMountpointCreation). Its host path."""
    if mp.SkipMountpointCreation:
        return mp.Source
    if mp.Volume is not None:
        mid = mt.text(mp.ID) or generate_random_id()
        try:
            path = d.volumes.mount(mp.Volume.name, mid)
        except errdefs.DockerError as e:
            raise type(e)(f"error while mounting volume '{mp.Source}': {e}") from None
        mp.ID = mid
        mp.active += 1
        return path
    if not mp.Source:
        raise errdefs.Untyped("Unable to setup mount point, neither source nor volume defined")
    if mt.text(mp.Type) == mt.TYPE_BIND:
        # idtools.MkdirAllAndChownNew(Source, 0755): a file in the way is no error here
        # (the runtime reports it), anything else is.
        try:
            os.makedirs(mp.Source, 0o755, exist_ok=True)
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.EEXIST):
                raise errdefs.Untyped(
                    f"error while creating mount source path '{mp.Source}': "
                    f"mkdir {e.filename or mp.Source}: {go_errno_text(e)}"
                ) from None
    return mp.Source


def setup_mounts(d: Daemon, ctr: Container) -> dict[str, str]:
    """setupMounts' mount point half (blocking): every mount point but tmpfs ones set up,
    a `mount` event per volume; destination → host path. Used by the start and by
    docker cp (mountVolumes); undone by unmount_volumes."""
    hc = ctr.host_config
    tmpfs = set(hc.Tmpfs or {}) if isinstance(hc.Tmpfs, dict) else set()
    tmpfs.update(m.Destination for m in ctr.MountPoints.values() if mt.text(m.Type) == mt.TYPE_TMPFS)
    paths: dict[str, str] = {}
    for mp in ctr.MountPoints.values():
        if mp.Destination in tmpfs:
            continue
        _lazy_initialize_volume(d, ctr, mp)
        paths[mp.Destination] = _setup_mount_point(d, mp)
        if mp.Volume is not None:
            d.volumes.log_event("mount", mp.Volume.name, {
                "driver": mp.Driver or "local", "container": ctr.ID, "destination": mp.Destination,
                "read/write": "true" if mp.RW else "false", "propagation": mt.text(mp.Propagation),
            })
    return paths


def unmount_volumes(d: Daemon, ctr: Container) -> None:
    """container.UnmountVolumes (blocking): MountPoint.Cleanup for every volume set up,
    then an `unmount` event; failures are logged, as Cleanup's caller does."""
    errors = []
    for mp in ctr.MountPoints.values():
        if not mt.text(mp.ID):
            continue
        if mp.Volume is None:  # restored after a daemon restart: dockerd's prepareMountPoints
            try:
                _lazy_initialize_volume(d, ctr, mp)
            except errdefs.DockerError:
                continue
            if mp.Volume is None:
                continue
        try:
            d.volumes.unmount(mp.Volume.name, mt.text(mp.ID))
        except errdefs.DockerError as e:
            errors.append(f"error unmounting volume {mp.Volume.name}: {e}")
            continue
        mp.active = max(0, mp.active - 1)
        if mp.active == 0:
            mp.ID = UNSET
        d.volumes.log_event("unmount", mp.Volume.name, {"driver": mp.Driver or "local", "container": ctr.ID})
    if errors:
        log.warning("container %s: error while unmounting volumes: %s", ctr.ID, "; ".join(errors))


def attach_volumes(d: Daemon, ctr: Container) -> None:
    """On restore: hold references and paths for the container's volumes."""
    for mp in ctr.MountPoints.values():
        if mp.Type == mt.TYPE_VOLUME and mp.Name:
            try:
                v = d.volumes.get(mp.Name)
            except errdefs.DockerError:
                continue
            d.volumes.acquire(mp.Name, ctr.ID)
            mp.Volume = _VolumeRef(v.Name, v.Mountpoint)


__all__ = ["MountPlan", "plan_mount_points", "register_mount_points", "Any", "shutil"]
