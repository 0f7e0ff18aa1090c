"""Health checks (moby daemon/health.go): Config.Healthcheck run as an exec in the container,
State.Health and `health_status` events.

Each probe is a real exec instance (cmdProbe.run: registerExecCommand, then
ContainerExecStart), made and started through daemon/exec.py: while it runs its ID is in
the container's ExecIDs and `GET /exec/{id}/json` answers for it, with the
exec_create/exec_start/exec_die events, as on the reference dockerd. The interval is
HealthConfig.StartInterval (API 1.44, default 5s) while the container is still `starting`
within its StartPeriod, and Interval otherwise (moby 25's getInterval).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from .. import errdefs
from ..container.state import Health
from ..types import gojson
from ..types.container import HealthConfig
from ..types.exec import ExecConfig as ExecCreateRequest
from .exec import container_exec_create, container_exec_inspect, container_exec_start, forget_exec

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

log = logging.getLogger("berth.daemon")

# health.go: defaultProbeInterval, defaultProbeTimeout, defaultStartPeriod,
# defaultStartInterval (moby 25), defaultProbeRetries, maxLogEntries, maxOutputLen.
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096
EXIT_STATUS_HEALTHY = 0
EXEC_GC_DELAY = 300.0  # daemon.execCommandGC: finished execs go within 5 minutes
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


def _seconds(ns: Any, default: float) -> float:
    """timeoutWithDefault: a zero (or absent) duration means the default."""
    return ns / 1e9 if isinstance(ns, int) and ns else default


def _health_config(ctr: Container) -> HealthConfig:
    """The container's Healthcheck, or one with every field unset when it has none."""
    hc = ctr.Config.Healthcheck
    return hc if isinstance(hc, HealthConfig) else HealthConfig()


def probe_command(ctr: Container) -> list[str] | None:
    """getProbe + cmdProbe: CMD runs its arguments, CMD-SHELL the container's shell
    (Config.Shell, else /bin/sh -c) with them; NONE or anything else: no probe."""
    test = list(_health_config(ctr).Test or [])
    if not test:
        return None
    if test[0] == "CMD":
        return test[1:]
    if test[0] == "CMD-SHELL":
        shell = ctr.Config.Shell if isinstance(ctr.Config.Shell, list) and ctr.Config.Shell else ["/bin/sh", "-c"]
        return [*shell, *test[1:]]
    return None


def init_health_monitor(d: Daemon, ctr: Container) -> None:
    """initHealthMonitor: State.Health back to `starting` (streak 0) and a probe loop."""
    stop_health_checks(ctr)
    cmd = probe_command(ctr)
    if cmd is None:
        ctr.State.Health = None
        return
    h = ctr.State.Health
    ctr.State.Health = Health(Status=STARTING, FailingStreak=0, Log=h.Log if h is not None else [])
    update_health_monitor(d, ctr)


def update_health_monitor(d: Daemon, ctr: Container) -> None:
    """updateHealthMonitor: a probe loop while the container runs unpaused, none else
    (pause, unpause and exit call it; the status is left as it is when it starts again)."""
    if ctr.State.Health is None:
        return
    cmd = probe_command(ctr)
    if ctr.State.Running and not ctr.State.Paused and cmd is not None:
        if ctr.health_task is None:
            ctr.health_task = asyncio.get_running_loop().create_task(_monitor(d, ctr, cmd))
    else:
        stop_health_checks(ctr)


def stop_health_checks(ctr: Container) -> None:
    """Health.CloseMonitorChannel: a stopped monitor leaves the status `unhealthy`, as
    dockerd shows it for a paused or stopped container ("for compatibility reasons")."""
    task = ctr.health_task
    if task is not None:
        task.cancel()
        ctr.health_task = None
        if ctr.State.Health is not None:
            ctr.State.Health.Status = UNHEALTHY


def next_interval(hc: HealthConfig, status: str | None, since_start: float) -> float:
    """getInterval: StartInterval while still `starting` inside the start period."""
    interval = _seconds(hc.Interval, DEFAULT_INTERVAL)
    start_period = _seconds(hc.StartPeriod, DEFAULT_START_PERIOD)
    if since_start >= start_period:
        return interval
    if status == STARTING:
        return _seconds(hc.StartInterval, DEFAULT_START_INTERVAL)
    return interval


async def _monitor(d: Daemon, ctr: Container, cmd: list[str]) -> None:
    hc = _health_config(ctr)
    timeout = _seconds(hc.Timeout, DEFAULT_TIMEOUT)
    start_period = _seconds(hc.StartPeriod, DEFAULT_START_PERIOD)
    retries = hc.Retries or DEFAULT_RETRIES
    started = time.monotonic()
    while True:
        h = ctr.State.Health
        await asyncio.sleep(next_interval(hc, h.Status if h is not None else None, time.monotonic() - started))
        if not ctr.State.Running or ctr.State.Paused:
            continue  # dockerd stops the monitor while paused (updateHealthMonitor)
        start_ns = time.time_ns()
        probe_started = time.monotonic()
        code, output = await run_probe(d, ctr, cmd, timeout)
        handle_probe_result(d, ctr, start_ns, code, output, retries,
                            probe_started - started < start_period)


async def run_probe(d: Daemon, ctr: Container, cmd: list[str], timeout: float) -> tuple[int, str]:
    """One probe with its timeout: (exit code, output). A probe that cannot run or takes
    too long counts as exit code -1, with the error as its output."""
    holder: dict[str, str] = {}
    task = asyncio.ensure_future(_probe(d, ctr, cmd, holder))
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        # ContainerExecStart on a cancelled context: SIGTERM to the probe process.
        exec_id = holder.get("id")
        if exec_id:
            with contextlib.suppress(errdefs.DockerError, ProcessLookupError, PermissionError):
                pid = container_exec_inspect(d, exec_id).Pid
                if pid:
                    os.kill(pid, signal.SIGTERM)
        task.cancel()
        await asyncio.wait([task])
        return -1, f"Health check exceeded timeout ({go_duration(timeout)})"
    except asyncio.CancelledError:
        task.cancel()
        raise
    except errdefs.DockerError as e:
        return -1, str(e)
    except Exception as e:  # an OSError from conmon is a failed probe, not a dead monitor
        log.warning("Health check for container %s error: %s", ctr.ID, e)
        return -1, str(e)


class _ProbeOutput:
    """limitedBuffer as the exec's client: keeps the first 4096 bytes of stdout and
    stderr together, and appends "..." when more came."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.buf = bytearray()
        self.truncated = False

    async def read(self) -> bytes:
        await self.gone.wait()  # the probe has no stdin
        return b""

    async def write(self, data: bytes) -> None:
        keep = MAX_OUTPUT_LEN - len(self.buf)
        if keep > 0:
            self.buf += data[:keep]
        if keep < len(data):
            self.truncated = True

    def text(self) -> str:
        out = self.buf.decode("utf-8", "replace")
        return out + "..." if self.truncated else out


async def _probe(d: Daemon, ctr: Container, cmd: list[str], holder: dict[str, str]) -> tuple[int, str]:
    """cmdProbe.run: an exec of `cmd` (user and working dir from the container's Config),
    its output collected, its exit code read back from the exec."""
    req = ExecCreateRequest(AttachStdout=True, AttachStderr=True, Cmd=cmd, User=ctr.Config.User,
                            WorkingDir=ctr.Config.WorkingDir)
    exec_id = container_exec_create(d, ctr.ID, req)
    holder["id"] = exec_id
    _forget_later(d, exec_id)
    output = _ProbeOutput()

    async def streams() -> _ProbeOutput:
        return output

    try:
        await container_exec_start(d, exec_id, streams, False)
    finally:
        output.gone.set()
    info = container_exec_inspect(d, exec_id)
    if info.ExitCode is None:
        raise errdefs.Untyped(f"healthcheck for container {ctr.ID} has no exit code")
    return info.ExitCode, output.text()


def _forget_later(d: Daemon, exec_id: str) -> None:
    """A probe's exec stays inspectable for a while, then goes, as dockerd's exec GC does;
    without this a long-lived container would pile up one exec per probe. (daemon/exec.py
    keeps other execs until their container is removed.)"""
    asyncio.get_running_loop().call_later(EXEC_GC_DELAY, forget_exec, d, exec_id)


# engine_daemon_health_checks_total / _failed_total (berth.daemon.metrics reads them)
CHECKS = [0, 0]


def handle_probe_result(d: Daemon, ctr: Container, start_ns: int, code: int, output: str, retries: int,
                        in_start_period: bool) -> None:
    """handleProbeResult: keep the last five results; a failure inside the start period
    does not count while the container is still `starting`."""
    h = ctr.State.Health
    if h is None:
        return
    CHECKS[0] += 1
    CHECKS[1] += code == -1  # dockerd counts a probe that could not run (or timed out), not an unhealthy one
    entry: dict[str, Any] = {"Start": gojson.format_go_time(start_ns), "End": gojson.format_go_time(time.time_ns()),
                             "ExitCode": code, "Output": output}
    logs = list(h.Log or [])
    logs.append(entry)
    h.Log = logs[-MAX_LOG_ENTRIES:]
    old = h.Status
    if code == EXIT_STATUS_HEALTHY:
        h.FailingStreak = 0
        h.Status = HEALTHY
    elif not (in_start_period and h.Status == STARTING):
        h.FailingStreak += 1
        if h.FailingStreak >= retries:
            h.Status = UNHEALTHY
    if h.Status != old:
        d.log_container_event(ctr, "health_status: " + h.Status)
    with contextlib.suppress(Exception):
        ctr.to_disk()


def go_duration(seconds: float) -> str:
    """time.Duration.String for the timeout message: "30s", "1.5s", "500ms", "1m30s"."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _trim(ns / 1e3) + "µs"
    if ns < 1_000_000_000:
        return _trim(ns / 1e6) + "ms"
    h, rem = divmod(ns, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    s = _trim(rem / 1e9) + "s"
    if h:
        return f"{h}h{m}m{s}"
    if m:
        return f"{m}m{s}"
    return s


def _trim(v: float) -> str:
    return f"{v:.9f}".rstrip("0").rstrip(".")
