"""Pausing containers with the cgroup freezer (moby daemon/pause.go, unpause.go)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .. import errdefs
from ..runtime.oci import OCIRuntimeError
from ..trace import traced
from . import health

if TYPE_CHECKING:
    from .core import Daemon

log = logging.getLogger("berth.daemon")


@traced("ContainerPause")
async def container_pause(d: Daemon, name: str) -> None:
    ctr = d.get_container(name)
    async with ctr.lock:
        if not ctr.State.Running:
            raise errdefs.Conflict(f"Container {ctr.ID} is not running")
        if ctr.State.Paused:
            raise errdefs.Conflict(f"Container {ctr.ID} is already paused")
        if ctr.State.Restarting:
            raise errdefs.Conflict(f"Container {ctr.ID} is restarting, wait until the container is running")
        if ctr.process is None:  # its exit is being handled: not running any more
            raise errdefs.Conflict(f"Container {ctr.ID} is not running")
        try:
            await ctr.process.runtime.pause(ctr.ID)
        except OCIRuntimeError as e:
            raise errdefs.System(f"Cannot pause container {name}: {e}") from None
        ctr.State.Paused = True
        health.update_health_monitor(d, ctr)
        await _checkpoint(d, ctr)
    d.log_container_event(ctr, "pause")


@traced("ContainerUnpause")
async def container_unpause(d: Daemon, name: str) -> None:
    ctr = d.get_container(name)
    async with ctr.lock:
        if not ctr.State.Paused:
            raise errdefs.Untyped(f"Container {ctr.ID} is not paused")  # errors.Errorf: 500
        if ctr.process is None:  # its exit is being handled: nothing left to resume
            raise errdefs.Conflict(f"Container {ctr.ID} is not running")
        try:
            await ctr.process.runtime.resume(ctr.ID)
        except OCIRuntimeError as e:
            raise errdefs.System(f"Cannot unpause container {name}: {e}") from None
        ctr.State.Paused = False
        health.update_health_monitor(d, ctr)
        await _checkpoint(d, ctr)
    d.log_container_event(ctr, "unpause")


async def _checkpoint(d: Daemon, ctr: Any) -> None:
    """The freezer has acted, so the state in memory is the truth: a checkpoint that
    fails (a full data root) is logged, as dockerd's event handler logs it, instead of
    failing the call with the container left paused behind its back."""
    try:
        await d.run_blocking(ctr.to_disk)
    except OSError as e:
        log.warning("container %s: could not save its state: %s", ctr.ID[:12], errdefs.os_error_text(e))
