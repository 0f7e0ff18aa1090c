"""Starting a container (moby daemon/start.go ContainerStart, containerStart;
daemon/errors.go translateContainerdStartErr).

The run: mount the RW layer, network files and networking, the OCI spec into a bundle under
the exec-root, `runtime create` under a new conmon (which outlives us), the pre-start hooks
(attach clients connect to conmon's socket here so no output is lost), `runtime start`,
then State running and a monitor task that waits for the exit (monitor.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import errdefs
from ..logger import rotate as _rotate
from ..logger.config import file_config, inspect_log_path
from ..logger.factory import uses_pump
from ..logger.info import json_file_attrs
from ..runtime import specs
from ..runtime.conmon import PendingContainer
from ..runtime.oci import OCIRuntime, OCIRuntimeError, classify_start_error, runtime_error_message
from ..trace import traced
from ..types import gojson
from . import etcfiles, health, network, oci
from . import logs as _logs
from . import monitor as _monitor
from .create import _setup_working_directory
from .logs import abort_logger, logger_info
from .verify import verify_container_settings

if TYPE_CHECKING:
    from ..container.container import Container
    from ..logger.config import LogFileConfig
    from .core import Daemon

log = logging.getLogger("berth.daemon")

# Hooks run after `runtime create`, before `runtime start`: fn(ctr) (attach uses this).
PreStartHook = Callable[["Container"], Awaitable[None]]


@traced("StartLogger")
def _prepare_logging(ctr: Container) -> LogFileConfig | None:
    """StartLogger (blocking): the driver's option checks with dockerd's wrapping, inspect's
    LogPath, the file and any rotation left from the last run (berth.logger.rotate). None:
    conmon keeps no log (`none`)."""
    lc = ctr.host_config.LogConfig
    try:
        cfg = file_config(ctr.root, ctr.ID, lc.Type, lc.Config)
        if cfg is not None and cfg.attrs_enabled:
            json_file_attrs(logger_info(ctr))  # bad labels-regex/env-regex/tag fail the start
    except errdefs.DockerError as e:
        raise errdefs.Untyped(f"failed to initialize logging driver: {e}") from None
    ctr.LogPath = inspect_log_path(ctr.root, ctr.ID, lc.Type)
    if cfg is not None:
        _rotate.prepare(cfg, direct=not uses_pump(lc.Type))
    return cfg


@traced("ContainerStart")
async def container_start(d: Daemon, name: str, checkpoint: str = "", checkpoint_dir: str = "") -> None:
    """ContainerStart: the checks in dockerd's order, then containerStart."""
    if checkpoint and not d.config.experimental:
        raise errdefs.InvalidParameter("checkpoint is only supported in experimental mode")
    ctr = d.get_container(name)
    if ctr.State.Paused:
        raise errdefs.Conflict("cannot start a paused container, try unpause instead")
    if ctr.State.Running:
        raise errdefs.NotModified("Container is already started")
    if ctr.State.RemovalInProgress or ctr.State.Dead:
        raise errdefs.Conflict("container is marked for removal and cannot be started")
    if checkpoint_dir:
        raise errdefs.Forbidden("custom checkpointdir is not supported")
    verify_container_settings(ctr.host_config, None, d.sysinfo, d.default_runtime, d.runtimes,
                              systemd_cgroup=d.systemd_cgroup)
    await start_container(d, ctr, reset_restart_manager=True)


def translate_start_error(ctr: Container, message: str) -> errdefs.DockerError:
    """translateContainerdStartErr: exit code 126/127 and a 400 for what the user got wrong."""
    status, message = classify_start_error(message)
    if not status:
        return errdefs.Unknown(message)
    ctr.State.ExitCode = status
    return errdefs.InvalidParameter(message)


def _runtime_message(e: OCIRuntimeError) -> str:
    """containerd's wording around the runtime's error, as dockerd quotes it."""
    text = str(e).strip()
    # conmon passes runc's stderr through: logfmt `msg="..."` lines; keep the message.
    text = runtime_error_message(text) or text
    return f"failed to create shim task: OCI runtime create failed: {text}: unknown"


@traced("containerStart", action="start")
async def start_container(d: Daemon, ctr: Container, reset_restart_manager: bool) -> None:
    """containerStart: with the container lock held for the whole start."""
    async with ctr.lock:
        if reset_restart_manager and ctr.State.Running:
            return
        if ctr.State.RemovalInProgress or ctr.State.Dead:
            raise errdefs.Conflict("container is marked for removal and cannot be started")
        failed: BaseException | None = None
        try:
            await _start_locked(d, ctr, reset_restart_manager)
        except BaseException as err:
            await _start_failed(d, ctr, err)
            failed = err
    if failed is not None:
        if ctr.host_config.AutoRemove and not isinstance(failed, asyncio.CancelledError):
            # containerStart unlocks and removes before it returns its error: a client
            # waiting for `removed` is woken, and the next lookup is a 404.
            await _monitor.auto_remove(d, ctr)
        raise failed
    d.log_container_event(ctr, "start")


async def _start_failed(d: Daemon, ctr: Container, err: BaseException) -> None:
    """The deferred cleanup of containerStart: error into State, exit code 128 if none,
    checkpoint, unmount (AutoRemove follows once the lock is released)."""
    if isinstance(err, errdefs.DockerError) or not isinstance(err, asyncio.CancelledError):
        ctr.State.Error = str(err)
    if ctr.State.ExitCode == 0:
        ctr.State.ExitCode = 128
    ctr.process = None
    await abort_logger(ctr)  # a driver start_logger connected
    await _monitor.finish_logs(d, ctr)
    try:
        await _monitor.cleanup_and_checkpoint(d, ctr)
    except Exception as e:  # the start's own error is the answer, as in dockerd
        log.error("%s: failed saving state on start failure: %s", ctr.ID,
                  errdefs.os_error_text(e) if isinstance(e, OSError) else e)


def _prepare_bundle(d: Daemon, ctr: Container, bundle: str, netns: str | None,
                    fresh_dir: bool = True) -> tuple[str, specs.Spec]:
    """The blocking part of a start, in one thread hop: rootfs mount, network files,
    spec, bundle directory (unless made already: `fresh_dir=False`) and config.json."""
    rw = d.layers.get_rw_layer(ctr.ID)
    rootfs = rw.mount()
    ctr.rootfs_mounted = True  # runtime-only: monitor.cleanup_and_checkpoint unmounts exactly once
    etcfiles.write_network_files(d, ctr)
    setup_ipc_dirs(d, ctr)
    if ctr.Config.WorkingDir not in ("", "/"):
        # dockerd creates the working directory at start too (setupWorkingDirectory).
        _setup_working_directory(rootfs, ctr.Config.WorkingDir)
    spec = oci.create_spec(d, ctr, rootfs, netns)
    if fresh_dir:
        _fresh_bundle_dir(bundle)
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(specs.encode(spec))
    try:
        os.unlink(os.path.join(d.lifecycle.exits_dir, ctr.ID))
    except FileNotFoundError:
        pass
    return rootfs, spec


def _fresh_bundle_dir(bundle: str) -> None:
    shutil.rmtree(bundle, ignore_errors=True)
    os.makedirs(bundle, 0o700)


def _prepare_bundle_and_logging(d: Daemon, ctr: Container, bundle: str,
                                netns: str | None, fresh_dir: bool) -> LogFileConfig | None:
    _prepare_bundle(d, ctr, bundle, netns, fresh_dir)
    return _prepare_logging(ctr)


def _fresh_dirs(bundle: str, ctr_root: str) -> None:
    _fresh_bundle_dir(bundle)
    _logs.fresh_private(ctr_root)


async def _launch_conmon(d: Daemon, ctr: Container, runtime: OCIRuntime,
                         dirs_made: asyncio.Future[bool]) -> PendingContainer | None:
    """A conmon for this start, launched before the network and the bundle are made: it
    waits on its start pipe until `_create_task` lets it run `runtime create`, so its own
    start-up (exec, dynamic linking, opening its log file: ~2 ms) overlaps those. Only
    when its log file is known beforehand (private_log_ahead); None otherwise, and
    `_create_task` launches it in turn. `dirs_made` is set once the bundle directory is
    made anew (True) or known not to be (False): the bundle is written from then on,
    while conmon is being spawned."""
    rts = d.lifecycle
    bundle = rts.bundle_dir(ctr.ID)
    try:
        log_path = _logs.private_log_ahead(d, ctr)
        if log_path is None:
            return None
        # conmon's working directory, and the log file it opens at once begun anew
        await d.run_blocking(_fresh_dirs, bundle, ctr.root)
        dirs_made.set_result(True)
    finally:
        if not dirs_made.done():
            dirs_made.set_result(False)
    return await rts.conmon.launch_container(
        ctr.ID, bundle, runtime, exit_dir=rts.exits_dir, persist_dir=bundle,
        log_path=log_path, log_driver="k8s-file",
        terminal=bool(ctr.Config.Tty), stdin=bool(ctr.Config.OpenStdin))


async def _abort_launch(launch: asyncio.Future[PendingContainer | None] | None) -> None:
    """The start failed before `_create_task` took the launched conmon: end it."""
    if launch is None:
        return
    try:
        pending = await asyncio.shield(launch)
    except Exception:  # nothing was launched
        return
    if pending is not None:
        await pending.abort()


async def _create_task(d: Daemon, ctr: Container, runtime: Any, netns: str | None,
                       reset_restart_manager: bool,
                       launch: asyncio.Future[PendingContainer | None] | None,
                       dirs_made: asyncio.Future[bool] | None) -> tuple[Any, Any]:
    """The bundle, the log file and the runtime's `create` under conmon (the task exists,
    its process waits to be started). `launch`: a conmon launched for it beforehand,
    `dirs_made` its bundle directory made."""
    rts = d.lifecycle
    bundle = rts.bundle_dir(ctr.ID)
    pending: PendingContainer | None = None
    prepared: asyncio.Future[LogFileConfig | None] | None = None
    try:
        made = dirs_made is not None and await asyncio.shield(dirs_made)
        # Logging (berth.logger): conmon writes the file, Berth rotates it. One thread hop
        # for both blocking preparations, while the conmon launched ahead is spawned.
        prepared = asyncio.ensure_future(
            d.run_blocking(_prepare_bundle_and_logging, d, ctr, bundle, netns, not made))
        if launch is not None:
            try:
                pending = await asyncio.shield(launch)
            except Exception as e:  # the launch below says what is wrong, as it did
                log.debug("early conmon launch for %s: %s", ctr.ID, e)
        log_cfg = await prepared
        if reset_restart_manager:
            _monitor.reset_restart_manager(ctr)
            ctr.HasBeenManuallyStopped = False
        # json-file and the shipping drivers: conmon writes a private file the pump reads.
        conmon_log = await _logs.start_logger(d, ctr, log_cfg, private_ready=pending is not None)
    except BaseException:
        if prepared is not None:
            await asyncio.gather(prepared, return_exceptions=True)  # its undo must see all it made
        if pending is not None:
            await pending.abort()
        else:
            await _abort_launch(launch)
        raise
    direct = log_cfg is not None and conmon_log == log_cfg.path
    try:
        if pending is not None and conmon_log == pending.log_path:
            proc = await pending.create()
        else:
            if pending is not None:
                await pending.abort()
            proc = await rts.conmon.create_container(
                ctr.ID, bundle, runtime, exit_dir=rts.exits_dir, persist_dir=bundle,
                log_path=conmon_log, log_driver="k8s-file" if conmon_log else "none",
                terminal=bool(ctr.Config.Tty), stdin=bool(ctr.Config.OpenStdin),
                log_size_max=_rotate.backstop_size(log_cfg) if direct and log_cfg else None)
        if direct and log_cfg is not None and log_cfg.max_size >= 0:  # only a rotating log needs it
            await d.run_blocking(_rotate.started, log_cfg)
    except OCIRuntimeError as e:
        await _logs.abort_logger(ctr)
        await _delete_runtime(runtime, ctr.ID)
        raise translate_start_error(ctr, _runtime_message(e)) from None
    except BaseException:
        if pending is not None:
            await pending.abort()
        await _logs.abort_logger(ctr)
        raise
    return proc, runtime


async def _start_locked(d: Daemon, ctr: Container, reset_restart_manager: bool) -> None:
    rts = d.lifecycle
    hc = ctr.host_config
    runtime = rts.get(hc.Runtime if isinstance(hc.Runtime, str) else "")
    await _monitor.await_runtime_cleanup(ctr)
    dirs_made: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    launch = asyncio.ensure_future(_launch_conmon(d, ctr, runtime, dirs_made))
    try:
        netns = await network.initialize_networking(d, ctr)
    except BaseException:
        await _abort_launch(launch)
        raise
    # netavark attaches the namespace while the bundle is written and the runtime creates
    # the container; the process is started only once both are done.
    net_ready = asyncio.ensure_future(network.finish_networking(d, ctr))
    try:
        proc, runtime = await _create_task(d, ctr, runtime, netns, reset_restart_manager, launch, dirs_made)
    except BaseException:
        await asyncio.gather(net_ready, return_exceptions=True)  # cleanup must see all it made
        raise
    try:
        await net_ready
    except BaseException:
        await _delete_runtime(runtime, ctr.ID)
        raise
    # the OOM watch from before the process runs: a kill at once is counted too
    _monitor.watch_oom(d, ctr, proc)
    try:
        for hook in list(ctr.pre_start_hooks):
            try:
                await hook(ctr)
            except Exception:
                log.exception("pre-start hook of %s failed", ctr.ID)
        await proc.start()
    except OCIRuntimeError as e:
        rts.oom.forget(ctr.ID)
        await _delete_runtime(runtime, ctr.ID)
        raise translate_start_error(ctr, f"failed to start task: {e}: unknown") from None
    except BaseException:
        rts.oom.forget(ctr.ID)
        await _delete_runtime(runtime, ctr.ID)
        raise
    ctr.process = proc
    s = ctr.State
    s.Error = ""
    s.Paused = False
    s.Running = True
    s.Restarting = False
    s.ExitCode = 0
    s.Pid = proc.pid
    s.StartedAt = gojson.format_go_time(time.time_ns())
    ctr.HasBeenStartedBefore = True
    ctr.started_monotonic = time.monotonic()
    # The monitor starts before the checkpoint so a container that exits at once is seen.
    _monitor.watch(d, ctr, proc)
    await d.run_blocking(ctr.to_disk)
    health.init_health_monitor(d, ctr)


@traced("setupIpcDirs", leaf=True)
def setup_ipc_dirs(d: Daemon, ctr: Container) -> None:
    """setupIpcDirs (blocking): a `shareable` container gets a tmpfs of ShmSize at
    `<root>/mounts/shm`; `container:<id>` uses the donor's, which must be shareable."""
    mode = ctr.host_config.IpcMode or "private"
    if mode.startswith("container:"):
        target = mode.split(":", 1)[1]
        msg = f"can't join IPC of container {target}"
        try:
            donor = d.get_container(target)
        except errdefs.DockerError as e:
            raise errdefs.Untyped(f"{msg}: {e}") from None
        if not donor.State.Running:
            raise errdefs.Untyped(f"{msg}: Container {donor.ID} is not running")
        if donor.State.Restarting:
            raise errdefs.Untyped(f"{msg}: Container {donor.ID} is restarting, wait until the container is running")
        if not donor.ShmPath or not os.path.isdir(donor.ShmPath):
            raise errdefs.Untyped(f"{msg}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)")
        ctr.ShmPath = donor.ShmPath
        return
    if mode != "shareable":
        ctr.ShmPath = ""
        return
    path = os.path.join(ctr.root, "mounts", "shm")
    os.makedirs(path, 0o700, exist_ok=True)
    if not os.path.ismount(path):
        size = ctr.host_config.ShmSize or d.config.default_shm_size
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"mode=1777,size={size},nosuid,nodev,noexec", "shm", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise errdefs.System(f"mounting shm tmpfs: {r.stderr.strip()}")
    ctr.ShmPath = path


async def _delete_runtime(runtime: OCIRuntime, cid: str) -> None:
    try:
        await runtime.delete(cid, force=True)
    except Exception as e:  # the error the user sees is the start error
        log.warning("cleanup of failed start of %s: %s", cid, e)
