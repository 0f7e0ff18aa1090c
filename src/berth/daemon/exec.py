"""Exec (moby daemon/exec.go ContainerExecCreate, ContainerExecStart, getExecConfig;
daemon/exec_linux.go execSetPlatformOpt; daemon/inspect.go ContainerExecInspect;
daemon/resize.go ContainerExecResize; daemon/monitor.go exec exit events).

Each exec runs under its own `conmon --exec` (runtime/conmon.py Conmon.exec) with its
bundle in `<exec-root>/execs/<exec id>`; the process spec starts from the container's own
(`<bundle>/config.json`: capabilities, rlimits, AppArmor, no-new-privileges) as dockerd
starts from the containerd container's spec. A task per started exec waits for it and
records the exit code, logs `exec_die` and drops it from the container's ExecIDs; the exec
stays inspectable afterwards, as in dockerd (its 5-minute GC is not reproduced: Berth
drops an exec when its container is removed).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .. import errdefs
from ..pkg import stringid, term
from ..runtime import spec as rspec
from ..runtime import specs
from ..runtime.conmon import AttachStream, ContainerProcess
from ..runtime.oci import OCIRuntimeError, classify_start_error, runtime_error_message
from ..trace import touches_through, traced
from ..types.exec import ExecConfig as ExecCreateRequest
from ..types.exec import ExecInspect, ExecProcessConfig
from .attach import EOF_OUTPUT, ClientStreams, copy_streams
from .oci import DEFAULT_PATH_ENV, get_user, replace_or_append_env

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

log = logging.getLogger("berth.daemon")

_STARTED_TIMEOUT = 10.0  # ContainerExecResize waits this long for the process


class ExecConfig:
    """container/exec.go ExecConfig: one exec instance."""

    def __init__(self, ctr: Container) -> None:
        self.ID = stringid.generate_random_id()
        self.container = ctr
        self.Running = False
        self.ExitCode: int | None = None
        self.OpenStdin = self.OpenStdout = self.OpenStderr = False
        self.CanRemove = False
        self.DetachKeys = b""
        self.Entrypoint = ""
        self.Args: list[str] = []
        self.Tty = False
        self.Privileged = False
        self.User = ""
        self.WorkingDir = ""
        self.Env: list[str] = []
        self.Pid = 0
        self.ConsoleSize: list[int] | None = None
        self.process: ContainerProcess | None = None
        self.started = asyncio.get_running_loop().create_future()  # ec.Started
        self.exited = asyncio.get_running_loop().create_future()
        self.monitor: asyncio.Task[None] | None = None


def _execs(d: Daemon) -> dict[str, ExecConfig]:
    return d._exec_commands


def forget_exec(d: Daemon, exec_id: str) -> None:
    """Drop a finished exec from the daemon's store (a running one stays)."""
    store = _execs(d)
    ec = store.get(exec_id)
    if ec is not None and not ec.Running:
        store.pop(exec_id, None)


def _container_execs(ctr: Container) -> list[str]:
    return ctr.exec_ids


def _check_active(ctr: Container, name: str) -> None:
    """getActiveContainer's state checks."""
    if not ctr.State.Running:
        raise errdefs.Conflict(f"Container {ctr.ID} is not running")
    if ctr.State.Paused:
        raise errdefs.Conflict(f"Container {name} is paused, unpause the container before exec")
    if ctr.State.Restarting:
        raise errdefs.Conflict(f"Container {ctr.ID} is restarting, wait until the container is running")


@touches_through(lambda ec: ec.container)
def get_exec_config(d: Daemon, name: str) -> ExecConfig:
    """getExecConfig: exact ID; its container must still exist and be running."""
    ec = _execs(d).get(name)
    if ec is None:
        raise errdefs.NotFound(f"No such exec instance: {name}")
    ctr = d.containers.get(ec.container.ID)
    if ctr is None:
        raise errdefs.NotFound(f"No such container: {name}")
    if not ctr.State.Running:
        raise errdefs.Conflict(f"Container {ctr.ID} is not running")
    if ctr.State.Paused:
        raise errdefs.Conflict(f"Container {ctr.ID} is paused, unpause the container before exec")
    if ctr.State.Restarting:
        raise errdefs.Conflict(f"Container {ctr.ID} is restarting, wait until the container is running")
    return ec


@traced("ContainerExecCreate")
def container_exec_create(d: Daemon, name: str, config: ExecCreateRequest) -> str:
    """ContainerExecCreate (synchronous: register and answer without awaiting)."""
    ctr = d.get_container(name)
    _check_active(ctr, name)
    cmd = list(config.Cmd or [])
    keys = b""
    if config.DetachKeys:
        try:
            keys = term.to_bytes(config.DetachKeys)
        except ValueError:
            raise errdefs.Untyped(f"Invalid escape keys ({config.DetachKeys}) provided") from None
    ec = ExecConfig(ctr)
    ec.OpenStdin, ec.OpenStdout, ec.OpenStderr = config.AttachStdin, config.AttachStdout, config.AttachStderr
    ec.DetachKeys = keys
    ec.Entrypoint, ec.Args = cmd[0], cmd[1:]
    ec.Tty = config.Tty
    if isinstance(config.ConsoleSize, list):
        ec.ConsoleSize = config.ConsoleSize
    ec.Privileged = config.Privileged
    ec.User = config.User or ctr.Config.User
    ec.WorkingDir = config.WorkingDir or ctr.Config.WorkingDir
    # container.CreateDaemonEnvironment(config.Tty, linkedEnv), then the exec's own Env.
    base = [DEFAULT_PATH_ENV, "HOSTNAME=" + ctr.Config.Hostname]
    if config.Tty:
        base.append("TERM=xterm")
    base = replace_or_append_env(base, list(ctr.Config.Env or []))
    ec.Env = replace_or_append_env(base, list(config.Env or []))
    _execs(d)[ec.ID] = ec
    _container_execs(ctr).append(ec.ID)
    d.log_container_event(ctr, f"exec_create: {ec.Entrypoint} {' '.join(ec.Args)}", {"execID": ec.ID})
    return ec.ID


def exec_exists(d: Daemon, name: str) -> bool:
    """ExecExists: raises getExecConfig's error when it does not."""
    get_exec_config(d, name)
    return True


def container_exec_inspect(d: Daemon, id_: str) -> ExecInspect:
    ec = _execs(d).get(id_)
    if ec is None or ec.container.ID not in d.containers:
        raise errdefs.NotFound(f"No such exec instance: {id_}")
    pc = ExecProcessConfig(tty=ec.Tty, entrypoint=ec.Entrypoint, arguments=list(ec.Args),
                           privileged=ec.Privileged)
    if ec.User:
        pc.user = ec.User
    return ExecInspect(ID=ec.ID, Running=ec.Running, ExitCode=ec.ExitCode, ProcessConfig=pc,
                       OpenStdin=ec.OpenStdin, OpenStderr=ec.OpenStderr, OpenStdout=ec.OpenStdout,
                       CanRemove=ec.CanRemove, ContainerID=ec.container.ID, DetachKeys=ec.DetachKeys,
                       Pid=ec.Pid)


def _exec_dir(d: Daemon, exec_id: str) -> str:
    return os.path.join(d.config.exec_root, "execs", exec_id)


def _process_spec(d: Daemon, ctr: Container, ec: ExecConfig, console: list[int] | None) -> specs.Process:
    """The container's process spec with the exec's args, env, cwd and terminal, then
    execSetPlatformOpt (user, privileged). Blocking: reads config.json and /etc/passwd."""
    with open(os.path.join(d.lifecycle.bundle_dir(ctr.ID), "config.json"), "rb") as f:
        base = specs.decode(f.read()).process
    p = base if base is not None else specs.Process(user=specs.User(uid=0, gid=0), cwd="/")
    p.args = [ec.Entrypoint, *ec.Args]
    p.env = list(ec.Env)
    p.cwd = ec.WorkingDir or "/"
    p.terminal = ec.Tty
    p.console_size = specs.Box(height=console[0], width=console[1]) if ec.Tty and console else None
    if ec.User:
        p.user = get_user(f"/proc/{ctr.State.Pid}/root", ec.User, ctr.host_config.GroupAdd)
    if ec.Privileged:
        caps = rspec.all_capabilities()
        p.capabilities = specs.LinuxCapabilities(bounding=caps, permitted=caps, inheritable=caps,
                                                 effective=caps)
    return p


def _start_error(message: str) -> errdefs.DockerError:
    """translateContainerdStartErr for an exec (the exit code is 126 either way)."""
    text = runtime_error_message(message.strip()) or message.strip()
    status, msg = classify_start_error(f"OCI runtime exec failed: {text}: unknown")
    return errdefs.InvalidParameter(msg) if status else errdefs.Unknown(msg)


@traced("ContainerExecStart")
async def container_exec_start(d: Daemon, name: str, get_streams: Callable[[], Awaitable[ClientStreams]] | None,
                               multiplexed: bool, console: list[int] | None = None) -> None:
    """ContainerExecStart. get_streams is None for a detached start (returns once the
    process runs); otherwise the output is copied until the process ends, whose exit code
    is recorded before this returns (the CLI inspects it right after)."""
    ec = get_exec_config(d, name)
    if ec.ExitCode is not None:
        raise errdefs.Conflict(f"Error: Exec command {ec.ID} has already run")
    if ec.Running:
        raise errdefs.Conflict(f"Error: Exec command {ec.ID} is already running")
    ec.Running = True
    ctr = ec.container
    d.log_container_event(ctr, f"exec_start: {ec.Entrypoint} {' '.join(ec.Args)}", {"execID": ec.ID})
    attach = get_streams is not None and (ec.OpenStdin or ec.OpenStdout or ec.OpenStderr)
    stream: AttachStream | None = None
    try:
        proc_spec = await d.run_blocking(_process_spec, d, ctr, ec, console or ec.ConsoleSize)
        cproc = ctr.process
        if cproc is None:
            raise errdefs.Conflict(f"Container {ctr.ID} is not running")
        exec_dir = _exec_dir(d, ec.ID)
        try:
            ec.process, stream = await d.lifecycle.conmon.exec(
                cproc, ec.ID, proc_spec, exec_dir, attach=attach, stdin=attach and ec.OpenStdin)
        except OCIRuntimeError as e:
            raise _start_error(str(e)) from None
    except BaseException:
        ec.Running = False
        ec.ExitCode = 126
        with contextlib.suppress(ValueError):
            _container_execs(ctr).remove(ec.ID)
        if not ec.started.done():
            ec.started.set_result(None)
        await d.run_blocking(shutil.rmtree, _exec_dir(d, ec.ID), True)
        raise
    ec.Pid = ec.process.pid
    ec.started.set_result(None)
    ec.monitor = asyncio.get_running_loop().create_task(_wait_exec(d, ec, ec.process))
    if get_streams is None or stream is None:
        if get_streams is not None:
            await asyncio.shield(ec.exited)
        return
    client = await get_streams()
    try:
        how = await copy_streams(stream, client, tty=ec.Tty, multiplexed=multiplexed,
                                 use_stdin=ec.OpenStdin, use_stdout=ec.OpenStdout, use_stderr=ec.OpenStderr,
                                 close_stdin=True, detach_keys=ec.DetachKeys)
    finally:
        stream.close()
    if how == EOF_OUTPUT:
        # The output ends when the process does; its exit code comes a moment later.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(ec.exited), 10)
    elif how == "detach":
        d.log_container_event(ctr, "exec_detach", {"execID": ec.ID})


async def _wait_exec(d: Daemon, ec: ExecConfig, proc: ContainerProcess) -> None:
    """The exit of an exec (monitor.go ProcessEvent EventExit for an exec)."""
    try:
        code = await proc.wait_exit()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("waiting for exec %s", ec.ID)
        code = 255
    ec.ExitCode = code
    ec.Running = False
    ec.Pid = ec.Pid
    with contextlib.suppress(ValueError):
        _container_execs(ec.container).remove(ec.ID)
    d.log_container_event(ec.container, "exec_die", {"execID": ec.ID, "exitCode": str(code)})
    if not ec.exited.done():
        ec.exited.set_result(code)
    await d.run_blocking(shutil.rmtree, _exec_dir(d, ec.ID), True)


async def container_exec_resize(d: Daemon, name: str, height: int, width: int) -> None:
    """ContainerExecResize: waits up to 10 s for the process to have started."""
    ec = get_exec_config(d, name)
    try:
        await asyncio.wait_for(asyncio.shield(ec.started), _STARTED_TIMEOUT)
    except TimeoutError:
        raise errdefs.Untyped("timeout waiting for exec session ready") from None
    if ec.process is None or ec.ExitCode is not None:
        raise errdefs.NotFound("no such exec")
    try:
        ec.process.resize(height, width)
    except OCIRuntimeError as e:
        raise errdefs.NotFound("no such exec") from e


def forget_container_execs(d: Daemon, ctr: Container) -> None:
    """Drop the execs of a removed container (dockerd's GC does this within 5 minutes)."""
    store = _execs(d)
    for id_ in [k for k, ec in store.items() if ec.container is ctr]:
        store.pop(id_, None)
