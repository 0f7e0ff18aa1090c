"""Signalling containers (moby daemon/kill.go ContainerKill, killWithSignal, Kill,
killPossiblyDeadProcess)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal as _signal
from typing import TYPE_CHECKING

from .. import errdefs
from ..pkg.signal import parse_signal
from ..runtime.oci import ContainerNotExist, OCIRuntimeError
from ..trace import traced
from . import monitor, wait

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

log = logging.getLogger("berth.daemon")


def err_not_running(cid: str) -> errdefs.Conflict:
    return errdefs.Conflict(f"Container {cid} is not running")


def stop_signal(ctr: Container) -> int:
    """Container.StopSignal: Config.StopSignal, else SIGTERM."""
    if ctr.Config.StopSignal:
        with contextlib.suppress(ValueError):
            return parse_signal(ctr.Config.StopSignal)
    return int(_signal.SIGTERM)


@traced("ContainerKill")
async def container_kill(d: Daemon, name: str, sig_str: str) -> None:
    """ContainerKill: parse the signal (400), look the container up (404), then kill."""
    sig = 0
    if sig_str:
        try:
            sig = parse_signal(sig_str)
        except ValueError as e:
            raise errdefs.InvalidParameter(str(e)) from None
    ctr = d.get_container(name)
    if sig < 0 or sig > 64:
        raise errdefs.Untyped(f"The linux daemon does not support signal {sig}")
    # No signal or SIGKILL: a regular Kill (SIGKILL and wait for the exit).
    if sig in (0, int(_signal.SIGKILL)):
        await kill(d, ctr)
        return
    await kill_with_signal(d, ctr, sig)


@traced("killWithSignal")
async def kill_with_signal(d: Daemon, ctr: Container, sig: int) -> None:
    """killWithSignal: cancel the restart policy for a stopping signal, mark the container
    manually stopped, signal it (not while restarting), resume it if it was paused, and log
    the `kill` event. Under the container lock, as in dockerd: the exit handler waits for
    it, so `kill` always comes before `die`."""
    async with ctr.lock:
        await _kill_with_signal_locked(d, ctr, sig)


async def _kill_with_signal_locked(d: Daemon, ctr: Container, sig: int) -> None:
    if not ctr.State.Running:
        raise err_not_running(ctr.ID)
    unpause = False
    if ctr.Config.StopSignal and sig != _signal.SIGKILL:
        if stop_signal(ctr) == sig:
            monitor.restart_manager(ctr).cancel()
            unpause = ctr.State.Paused
    else:
        monitor.restart_manager(ctr).cancel()
        unpause = ctr.State.Paused
    if not d.shutting_down:  # a daemon shutdown is no user's stop
        ctr.HasBeenManuallyStopped = True
        try:  # dockerd ignores CheckpointTo's error here: a full disk must not block a stop
            await d.run_blocking(ctr.to_disk)
        except OSError as e:
            log.warning("container %s: %s", ctr.ID, errdefs.os_error_text(e))
    if ctr.State.Restarting:
        return
    proc = ctr.process
    runtime = proc.runtime if proc is not None else d.lifecycle.get(
        ctr.host_config.Runtime if isinstance(ctr.host_config.Runtime, str) else "")
    try:
        await runtime.kill(ctr.ID, sig)
    except ContainerNotExist:
        unpause = False
        log.info("container kill of %s failed: container not found", ctr.ID)
    except OCIRuntimeError as e:
        msg = str(e)
        if "not running" in msg or "process already finished" in msg or "no such process" in msg:
            unpause = False
        else:
            raise errdefs.System(f"Cannot kill container {ctr.ID}: {msg}") from None
    if unpause:
        with contextlib.suppress(OCIRuntimeError):
            await runtime.resume(ctr.ID)
            ctr.State.Paused = False
    d.log_container_event(ctr, "kill", {"signal": str(sig)})


async def kill_possibly_dead_process(d: Daemon, ctr: Container, sig: int) -> None:
    try:
        await kill_with_signal(d, ctr, sig)
    except errdefs.Conflict:
        pass  # errNoSuchProcess / not running: it is already dead


async def kill(d: Daemon, ctr: Container) -> None:
    """Kill: SIGKILL, then wait up to 2 s for the exit; if it is still running, kill the
    pid directly and wait for good."""
    if not ctr.State.Running:
        raise err_not_running(ctr.ID)
    fut = wait.wait_condition(ctr, wait.NOT_RUNNING)
    try:
        await kill_possibly_dead_process(d, ctr, int(_signal.SIGKILL))
    except errdefs.DockerError:
        if ctr.State.Running:
            raise
    try:
        await asyncio.wait_for(asyncio.shield(fut), 2)
    except TimeoutError:
        pid = ctr.State.Pid
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, _signal.SIGKILL)
        await fut


async def kill_for_removal(d: Daemon, ctr: Container) -> None:
    """daemon.Kill on a forced removal; the caller holds the container lock, so the exit is
    handled here rather than by the monitor (which would wait for the lock)."""
    proc = ctr.process
    monitor.restart_manager(ctr).cancel()
    ctr.removing_now = True
    if proc is None or not ctr.State.Running:
        # Restarting (no process) or already exited: just record it as stopped.
        if ctr.State.Running:
            s = ctr.State
            s.Running = s.Restarting = s.Paused = False
            s.Pid = 0
            wait.notify_stop(ctr)
        return
    with contextlib.suppress(OCIRuntimeError):
        await proc.runtime.kill(ctr.ID, int(_signal.SIGKILL))
    d.log_container_event(ctr, "kill", {"signal": "9"})
    try:
        code = await asyncio.wait_for(proc.wait_exit(), 10)
    except TimeoutError:
        if ctr.State.Pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(ctr.State.Pid, _signal.SIGKILL)
        code = await proc.wait_exit()
    await monitor.handle_exit_locked(d, ctr, proc, code, allow_auto_remove=False)
