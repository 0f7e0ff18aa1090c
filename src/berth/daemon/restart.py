"""Restarting containers (moby daemon/restart.go ContainerRestart, containerRestart)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errdefs
from ..trace import traced
from .start import start_container
from .stop import container_stop_inner, stop_timeout

if TYPE_CHECKING:
    from .core import Daemon


@traced("ContainerRestart")
async def container_restart(d: Daemon, name: str, timeout: int | None, signal: str = "") -> None:
    """ContainerRestart: stop (with `signal`, API 1.42, when it runs) and start again.

    Errors read `Cannot restart container <name>: <cause>` and are untyped (fmt.Errorf
    in dockerd), an invalid `signal` included; a stopped container is only started, so
    its `signal` is never parsed, as in containerRestart.
    """
    ctr = d.get_container(name)
    if timeout is None:
        timeout = stop_timeout(ctr)
    try:
        if ctr.State.Running:
            # AutoRemove is off for the stop, so the container survives its own restart.
            auto_remove = ctr.host_config.AutoRemove
            ctr.host_config.AutoRemove = False
            try:
                await container_stop_inner(d, ctr, timeout, signal)
            finally:
                ctr.host_config.AutoRemove = auto_remove
                await d.run_blocking(ctr.to_disk)
        await start_container(d, ctr, reset_restart_manager=True)
    except errdefs.DockerError as e:
        raise errdefs.Untyped(f"Cannot restart container {name}: {e}") from None
    d.log_container_event(ctr, "restart")
