"""Exit handling, restart policies and live restore (moby daemon/monitor.go
handleContainerExit, restartmanager/restartmanager.go, daemon/daemon.go restore).

One asyncio task per running container waits on its conmon (a pidfd, no polling). When the
container exits: State stopped (or restarting), `waitStop` waiters woken, cleanup (runtime
state, cgroup, rootfs mount, network), checkpoint, `die` event, then the restart policy or
AutoRemove. Exit handling is keyed on the ContainerProcess: whoever handles an exit first
(the monitor, or a forced removal that already holds the container lock) clears
`ctr.process`, and the other finds nothing to do.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import errdefs
from ..container.restartmanager import RestartCanceled, RestartManager
from ..logger.config import uses_pump
from ..logger.rotate import settle_container
from ..runtime.conmon import EXIT_UNKNOWN, ContainerProcess
from ..types import gojson
from . import health, network, wait
from .logs import attach_logger, begin_finish_logger, finish_logger
from .volumes import unmount_volumes

if TYPE_CHECKING:
    from ..container.container import Container
    from ..container.state import State
    from ..runtime.oci import OCIRuntime
    from .core import Daemon

log = logging.getLogger("berth.daemon")



def restart_manager(ctr: Container) -> RestartManager:
    rm = ctr.restart_manager
    if rm is None:
        rp = ctr.host_config.RestartPolicy
        rm = RestartManager(rp.Name or "no", rp.MaximumRetryCount or 0, ctr.RestartCount)
        ctr.restart_manager = rm
    return rm


def update_restart_policy(ctr: Container) -> None:
    """UpdateMonitor: after HostConfig.RestartPolicy changed (`docker update --restart`),
    the running container's manager follows the new policy, keeping its count."""
    rm = ctr.restart_manager
    if rm is not None:
        rp = ctr.host_config.RestartPolicy
        rm.policy = rp.Name or "no"
        rm.max_retry = rp.MaximumRetryCount or 0


def reset_restart_manager(ctr: Container) -> None:
    """ResetRestartManager(true): a fresh manager, restart count back to 0."""
    old = ctr.restart_manager
    if old is not None:
        old.cancel()
    ctr.restart_manager = None
    ctr.RestartCount = 0
    restart_manager(ctr)


def watch_oom(d: Daemon, ctr: Container, proc: ContainerProcess) -> None:
    """OOM kills on cgroup v2, read while the cgroup exists (runtime/oomwatch.py)."""
    try:
        d.lifecycle.oom.watch(ctr.ID, proc.pid)
    except (OSError, ValueError):
        log.debug("no OOM watch for %s", ctr.ID, exc_info=True)


def watch(d: Daemon, ctr: Container, proc: ContainerProcess) -> None:
    """Start the task that waits for `proc` to exit and handles it."""
    ctr.monitor_task = asyncio.get_running_loop().create_task(_watch(d, ctr, proc))
    watch_oom(d, ctr, proc)  # kept if the start set it already
    rotation = d.log_rotation
    if rotation is not None:  # its log is watched while the process runs
        rotation.watch(ctr.ID)
    attach_logger(d, ctr, proc)  # LOGS: the pump of json-file and shipping drivers


async def _watch(d: Daemon, ctr: Container, proc: ContainerProcess) -> None:
    try:
        code = await proc.wait_exit()
    except asyncio.CancelledError:
        return
    if ctr.process is proc:
        begin_finish_logger(d, ctr)
    try:
        async with ctr.lock:
            await handle_exit_locked(d, ctr, proc, code)
    except Exception:
        log.exception("handling the exit of %s failed", ctr.ID)


def _oom_killed(proc: ContainerProcess) -> bool:
    """conmon leaves an `oom` file in its persist dir (the bundle) when the kernel's OOM
    killer hit the container (podman reads the same file). On cgroup v2 with the systemd
    driver conmon misses it (the scope is gone before its last check): the daemon's own
    watcher (Runtimes.oom) covers that."""
    return os.path.exists(os.path.join(proc.state.bundle, "oom"))


async def handle_exit_locked(d: Daemon, ctr: Container, proc: ContainerProcess, code: int,
                             allow_auto_remove: bool = True, exited_at_ns: int | None = None) -> None:
    """handleContainerExit, with the container lock held by the caller."""
    if ctr.process is not proc:
        return  # someone else handled this exit already
    ctr.process = None
    health.stop_health_checks(ctr)
    seen_oom = d.lifecycle.oom.forget(ctr.ID)
    oom = _oom_killed(proc) or seen_oom
    s = ctr.State
    started = ctr.started_monotonic
    duration = time.monotonic() - started if started is not None else 0.0
    rm = restart_manager(ctr)
    restart = not ctr.removing_now and rm.should_restart(code, ctr.HasBeenManuallyStopped, duration)
    wait.begin_exit(ctr)
    try:
        await _handle_exit(d, ctr, s, restart, code, oom, exited_at_ns)
    finally:
        # dockerd's waiters take the container lock to read the result, so they wake
        # only after handleContainerExit: the network released (a published port free
        # again, no address in inspect), the state written, the `die` event sent.
        wait.notify_stop(ctr)
    if restart:
        asyncio.get_running_loop().create_task(_restart_later(d, ctr, rm, code))
    elif allow_auto_remove and ctr.host_config.AutoRemove:
        asyncio.get_running_loop().create_task(auto_remove(d, ctr))


async def _handle_exit(d: Daemon, ctr: Container, s: State, restart: bool, code: int, oom: bool,
                       exited_at_ns: int | None) -> None:
    now = gojson.format_go_time(exited_at_ns if exited_at_ns is not None else time.time_ns())
    # daemon.Cleanup's unmounts need nothing from the logs and show in no answer: they
    # run while the rest of the output is delivered (~1 ms each, side by side).
    unmounted = asyncio.ensure_future(d.run_blocking(_cleanup_files, d, ctr))
    # handleContainerExit waits for the stdio copy and closes the logger (StreamConfig.Wait,
    # Reset) before SetStopped: whoever sees the container stopped reads all of its logs.
    try:
        await finish_logs(d, ctr)
    finally:
        _warn_cleanup(ctr, await asyncio.gather(unmounted, return_exceptions=True))
    if restart:
        ctr.RestartCount += 1
        s.Running, s.Restarting, s.Paused, s.Pid = True, True, False, 0
    else:
        s.Running, s.Restarting, s.Paused, s.Pid = False, False, False, 0
    s.FinishedAt = now
    s.ExitCode = code
    s.OOMKilled = oom
    if oom:
        d.log_container_event(ctr, "oom")
    d.log_container_event(ctr, "die", {"exitCode": str(code)})
    await cleanup_and_checkpoint(d, ctr)


async def _restart_later(d: Daemon, ctr: Container, rm: RestartManager, code: int) -> None:
    err: BaseException | None = None
    try:
        await rm.wait()
        await d.start_container(ctr, reset_restart_manager=False)
    except RestartCanceled as e:
        err = e
    except Exception as e:
        log.debug("failed to restart container %s: %s", ctr.ID, e)
        err = e
    if err is not None:
        async with ctr.lock:
            if ctr.State.Restarting:
                s = ctr.State
                s.Running, s.Restarting, s.Paused, s.Pid = False, False, False, 0
                s.FinishedAt = gojson.format_go_time(time.time_ns())
                wait.notify_stop(ctr)
                await d.run_blocking(ctr.to_disk)
        if ctr.host_config.AutoRemove:
            await auto_remove(d, ctr)


async def auto_remove(d: Daemon, ctr: Container) -> None:
    """autoRemove: ContainerRm with force and its anonymous volumes."""
    if ctr.ID not in d.containers:
        return
    try:
        await d.container_rm(ctr.ID, True, True, False)
    except errdefs.DockerError as e:
        if "already in progress" not in str(e):
            log.error("error removing container %s: %s", ctr.ID, e)


async def finish_logs(d: Daemon, ctr: Container) -> None:
    """LOGS, once conmon is gone: the rest of the run's output delivered (finish_logger) and
    the log's last rotation (settle_container), side by side."""
    if uses_pump(ctr.host_config.LogConfig.Type):  # the pump rotates as it writes: nothing to settle
        results: Iterable[object] = await asyncio.gather(finish_logger(d, ctr), return_exceptions=True)
    else:
        results = await asyncio.gather(d.run_blocking(settle_container, ctr), finish_logger(d, ctr),
                                       return_exceptions=True)
    _warn_cleanup(ctr, results)


async def cleanup_and_checkpoint(d: Daemon, ctr: Container) -> None:
    """daemon.Cleanup, then CheckpointTo (checkpoint_exit): runtime state and cgroup,
    rootfs mount and network, then the exit's state on disk (the logs were finished
    before the state changed: finish_logs). All is done before this returns, so the
    waiters woken after it see everything as dockerd's do."""
    rts = d.lifecycle
    runtime = rts.get(ctr.host_config.Runtime if isinstance(ctr.host_config.Runtime, str) else "")
    # `runtime delete` (state dir and cgroup of a dead container; in-process for runc when
    # that is all it does): nothing waits for it but the next start of the same container
    # (await_runtime_cleanup), so it runs beside the rest instead of before it.
    loop = asyncio.get_running_loop()
    runtime_deleted = loop.create_task(_runtime_delete(runtime, ctr.ID))
    ctr.runtime_cleanup = runtime_deleted
    await d.run_blocking(_release_and_checkpoint, d, ctr)
    # conmon's record of the run goes once the exit's state is written (drop_run_record),
    # off the exit's path too: the next start waits for it with the runtime's delete.
    ctr.runtime_cleanup = loop.create_task(_drop_run_record(d, ctr, runtime_deleted))


def _release_and_checkpoint(d: Daemon, ctr: Container) -> None:
    """The network's release and the unmounts (done already at an exit: _handle_exit),
    then the checkpoint, in one thread hop (blocking): each step is short (the slow
    parts, a veth's deletion, a namespace's unmount and runc's delete, are off this
    path), so the hops between them, not the steps, were the wait."""
    for step in (network.release_network_blocking, _cleanup_files):
        try:
            step(d, ctr)
        except Exception as e:
            log.warning("container %s: cleanup failed: %s", ctr.ID, e)
    checkpoint_exit(d, ctr)


def _warn_cleanup(ctr: Container, results: Iterable[object]) -> None:
    for r in results:
        if isinstance(r, BaseException):
            log.warning("container %s: cleanup failed: %s", ctr.ID, r)


async def _runtime_delete(runtime: OCIRuntime, cid: str) -> None:
    try:
        await runtime.delete_stopped(cid)
    except Exception as e:
        log.warning("runtime delete of %s failed: %s", cid, e)


async def await_runtime_cleanup(ctr: Container) -> None:
    """Before a container is created in the runtime again, its last delete must be done."""
    task = ctr.runtime_cleanup
    if task is not None:
        ctr.runtime_cleanup = None
        await asyncio.shield(task)


def checkpoint_exit(d: Daemon, ctr: Container) -> None:
    """Write the exit's state (blocking); conmon's record of the run is dropped after
    it (drop_run_record)."""
    ctr.to_disk()
    unmount_volumes(d, ctr)  # UnmountVolumes: the local driver unmounts after the last user


def drop_run_record(d: Daemon, ctr: Container) -> None:
    """conmon's record of the run: its bundle (with the state file reattach reads) and its
    exit file. Only after the exit's state is on disk: a crash in between finds the exit
    again in conmon's files at the next start, never a run with neither (blocking)."""
    shutil.rmtree(d.lifecycle.bundle_dir(ctr.ID), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(d.lifecycle.exits_dir, ctr.ID))


async def _drop_run_record(d: Daemon, ctr: Container, runtime_deleted: asyncio.Task[None]) -> None:
    try:
        await d.run_blocking(drop_run_record, d, ctr)
    except Exception as e:
        log.warning("container %s: cleanup failed: %s", ctr.ID, e)
    await asyncio.shield(runtime_deleted)


async def await_all_runtime_cleanups(d: Daemon) -> None:
    """At a stop: what the last exits left to the background is finished first."""
    tasks = [c.runtime_cleanup for c in d.containers.values() if c.runtime_cleanup is not None]
    await asyncio.gather(*tasks, return_exceptions=True)


def _cleanup_files(d: Daemon, ctr: Container) -> None:
    shm = os.path.join(ctr.root, "mounts", "shm")
    if ctr.ShmPath == shm and os.path.ismount(shm):
        # unmountIpcMount: a shareable container's /dev/shm goes with its run
        subprocess.run(["umount", shm], capture_output=True)
    if ctr.rootfs_mounted:
        ctr.rootfs_mounted = False
        try:
            d.layers.get_rw_layer(ctr.ID).unmount()
        except Exception as e:
            log.warning("unmount of %s failed: %s", ctr.ID, e)


# -- live restore (daemon.go restore) -------------------------------------------------
async def restore_containers(d: Daemon) -> None:
    """Re-attach running containers, account for those that exited while we were down,
    then restart what the policies say and remove AutoRemove leftovers."""
    to_restart: list[Container] = []
    to_remove: list[Container] = []
    for ctr in list(d.containers.values()):
        s = ctr.State
        if s.Running or s.Restarting:
            try:
                await _restore_one(d, ctr)
            except Exception:
                log.exception("failed to restore container %s", ctr.ID)
                continue
        if not ctr.State.Running:
            if _should_restart_at_start(ctr):
                to_restart.append(ctr)
            elif ctr.host_config.AutoRemove and ctr.HasBeenStartedBefore:
                to_remove.append(ctr)
    for ctr in to_restart:
        try:
            await d.start_container(ctr, reset_restart_manager=False)
        except Exception as e:
            log.error("failed to start container %s: %s", ctr.ID, e)
    for ctr in to_remove:
        await auto_remove(d, ctr)


def _should_restart_at_start(ctr: Container) -> bool:
    """container.ShouldRestart as the restore loop asks it (AutoRestart)."""
    rp = ctr.host_config.RestartPolicy
    if rp.Name == "always":
        return True
    if rp.Name == "unless-stopped":
        return not ctr.HasBeenManuallyStopped
    if rp.Name == "on-failure":
        return ctr.State.ExitCode != 0 and (not rp.MaximumRetryCount or ctr.RestartCount < rp.MaximumRetryCount)
    return False


async def _restore_one(d: Daemon, ctr: Container) -> None:
    rts = d.lifecycle
    bundle = rts.bundle_dir(ctr.ID)
    try:
        proc = rts.conmon.reattach(bundle)
    except FileNotFoundError:
        proc = None
    # The rootfs mount survives us, but its reference count lives in memory: take one.
    try:
        await d.run_blocking(d.layers.get_rw_layer(ctr.ID).mount)
        ctr.rootfs_mounted = True
    except Exception as e:
        log.warning("container %s: cannot mount its rootfs: %s", ctr.ID, e)
    if proc is not None and proc.conmon_alive():
        ctr.process = proc
        ctr.started_monotonic = time.monotonic()
        if ctr.State.Restarting:
            ctr.State.Restarting = False
        watch(d, ctr, proc)
        health.init_health_monitor(d, ctr)
        log.info("container %s re-attached (pid %d)", ctr.ID, proc.pid)
        return
    # It exited while we were down: its real status is in conmon's exit file.
    if proc is not None:
        code = proc.exit_code()
        code = EXIT_UNKNOWN if code is None else code
        try:
            exited_at = os.stat(proc.exit_file).st_mtime_ns
        except OSError:
            exited_at = None
    else:
        code, exited_at = EXIT_UNKNOWN, None
    async with ctr.lock:
        await _exit_while_down(d, ctr, code, exited_at)


async def _exit_while_down(d: Daemon, ctr: Container, code: int, exited_at: int | None) -> None:
    ctr.process = None
    wait.begin_exit(ctr)
    try:
        await _exited_while_down(d, ctr, code, exited_at)
    finally:
        wait.notify_stop(ctr)
    ctr.restart_manager = None


async def _exited_while_down(d: Daemon, ctr: Container, code: int, exited_at: int | None) -> None:
    await finish_logs(d, ctr)
    s = ctr.State
    s.Running, s.Restarting, s.Paused, s.Pid = False, False, False, 0
    s.ExitCode = code
    s.FinishedAt = gojson.format_go_time(exited_at if exited_at is not None else time.time_ns())
    d.log_container_event(ctr, "die", {"exitCode": str(code)})
    await cleanup_and_checkpoint(d, ctr)
