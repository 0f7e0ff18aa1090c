"""Stopping containers (moby daemon/stop.go ContainerStop, containerStop)."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .. import errdefs
from ..pkg.signal import parse_signal
from ..trace import traced
from . import kill as _kill
from . import wait

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

log = logging.getLogger("berth.daemon")
DEFAULT_STOP_TIMEOUT = 10


def stop_timeout(ctr: Container) -> int:
    t = ctr.Config.StopTimeout
    return t if isinstance(t, int) else DEFAULT_STOP_TIMEOUT


@traced("ContainerStop")
async def container_stop(d: Daemon, name: str, timeout: int | None, signal: str = "") -> None:
    """ContainerStop: 304 when not running; errors wrapped as dockerd does.

    `signal` (API 1.42's `signal` parameter; "" for the container's stop signal) is
    parsed by containerStop, so an invalid one reads
    `cannot stop container: <name>: Invalid signal: <raw>`, wrapped as errdefs.System.
    """
    ctr = d.get_container(name)
    if not ctr.State.Running:
        raise errdefs.NotModified("Container is already stopped")
    if timeout is None:
        timeout = stop_timeout(ctr)
    try:
        await container_stop_inner(d, ctr, timeout, signal)
    except errdefs.DockerError as e:
        raise errdefs.System(f"cannot stop container: {name}: {e}") from None


async def _wait_not_running(ctr: Container, seconds: float | None) -> bool:
    fut = wait.wait_condition(ctr, wait.NOT_RUNNING)
    if fut.done():
        return True
    try:
        await asyncio.wait_for(fut, seconds)
        return True
    except TimeoutError:
        return False


@traced("containerStop")
async def container_stop_inner(d: Daemon, ctr: Container, seconds: int, signal: str = "") -> None:
    """containerStop: stop signal, wait `seconds` (negative: forever), then SIGKILL.

    A non-empty `signal` replaces the container's stop signal (moby 23+ containerStop:
    signal.ParseSignal, an error is errdefs.InvalidParameter before anything is sent).
    """
    if not ctr.State.Running:
        return
    sig = _kill.stop_signal(ctr)
    if signal:
        try:
            sig = parse_signal(signal)
        except ValueError as e:
            raise errdefs.InvalidParameter(str(e)) from None
    try:
        await _kill.kill_possibly_dead_process(d, ctr, sig)
    except errdefs.DockerError:
        if not await _wait_not_running(ctr, 2):
            log.info("Container failed to stop after sending signal %d to the process, force killing", sig)
            await _kill.kill_possibly_dead_process(d, ctr, 9)
    if not await _wait_not_running(ctr, seconds if seconds >= 0 else None):
        log.info("Container %s failed to exit within %d seconds of signal %d - using the force",
                 ctr.ID, seconds, sig)
        try:
            await _kill.kill(d, ctr)
        except errdefs.DockerError as e:
            await _wait_not_running(ctr, None)
            log.warning("%s", e)
    d.log_container_event(ctr, "stop")
