"""DELETE /containers/{id} (moby/daemon/delete.go ContainerRm, cleanupContainer)."""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from .. import errdefs
from ..container.container import Container
from ..trace import traced
from . import network, volumes
from .exec import forget_container_execs
from .logs import stop_logger

if TYPE_CHECKING:
    from .core import Daemon

log = logging.getLogger("berth.daemon")


@traced("ContainerRm", action="delete")
async def container_rm(d: Daemon, name: str, force: bool, remove_volume: bool, remove_link: bool) -> None:
    ctr = d.get_container(name)
    if remove_link:
        rm_link(d, ctr, name)
        return
    if ctr.State.RemovalInProgress:
        raise errdefs.Conflict(f"removal of container {name} is already in progress")
    await cleanup_container(d, ctr, force, remove_volume)


def rm_link(d: Daemon, ctr: Container, name: str) -> None:
    """Remove the legacy link `/parent/alias` (untyped errors, as dockerd's)."""
    if not name.startswith("/"):
        name = "/" + name
    parent, _, _ = name.rpartition("/")
    if parent == "":
        raise errdefs.Untyped("Conflict, cannot remove the default link name of the container")
    try:
        d.get_container(parent)
    except errdefs.NotFound:
        raise errdefs.Untyped(f"Cannot get parent {parent} for link name {name}") from None
    d.names.release(name)


@traced("cleanupContainer")
async def cleanup_container(d: Daemon, ctr: Container, force: bool, remove_volume: bool) -> None:
    """cleanupContainer: refuse a running container unless forced, then remove everything."""
    async with ctr.lock:
        if ctr.State.Running and not force:
            if ctr.State.Paused:
                raise errdefs.Conflict(
                    f"You cannot remove a paused container {ctr.ID}. Unpause and then stop the container "
                    "before attempting removal or force remove"
                )
            raise errdefs.Conflict(
                f"You cannot remove a running container {ctr.ID}. Stop the container before attempting "
                "removal or force remove"
            )
        if ctr.State.RemovalInProgress:
            raise errdefs.Conflict(f"removal of container {ctr.Name.lstrip('/')} is already in progress")
        ctr.State.RemovalInProgress = True
        try:
            if ctr.State.Running:
                await d.kill_for_removal(ctr)
            await stop_logger(d, ctr)
            await d.run_blocking(_remove_on_disk, d, ctr, remove_volume)
        except BaseException:
            ctr.State.RemovalInProgress = False
            raise
        d.unregister(ctr)
        forget_container_execs(d, ctr)
        ctr.State.Dead = True
    d.log_container_event(ctr, "destroy")
    d.on_container_removed(ctr)


def _remove_on_disk(d: Daemon, ctr: Container, remove_volume: bool) -> None:
    """The layer, then the directory (config first, so a crash mid-way leaves no
    half container: restore drops directories without config.v2.json; then the rest into
    the layers' trash), then volumes."""
    try:
        os.unlink(os.path.join(ctr.root, "config.v2.json"))
    except FileNotFoundError:
        pass
    network.wait_released(d, ctr)  # the host end of a bridge endpoint is gone too
    try:
        d.layers.remove_rw_layer(ctr.ID)
    except errdefs.NotFound:
        pass
    except Exception as e:
        raise errdefs.System(f"unable to remove filesystem for {ctr.ID}: {e}") from e
    # The directory's files (hosts, resolv.conf, the log, ...) are unlinked off the
    # request path, as the layer's are: one rename now.
    d.layers.discard_dir(ctr.root)
    volumes.release_mount_points(d, ctr, remove_volume)
