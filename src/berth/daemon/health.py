"""Health checks (moby daemon/health.go): Config.Healthcheck run by exec in the container
(conmon --exec, as `docker exec` does), State.Health and `health_status` events.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..container.state import Health
from ..pkg import stringid
from ..runtime import specs
from ..types import gojson

if TYPE_CHECKING:
    from ..container.container import Container
    from .daemon import Daemon

log = logging.getLogger("berth.daemon")

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096
EXIT_STATUS_HEALTHY = 0
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


def _seconds(ns: int | None, default: float) -> float:
    return ns / 1e9 if ns else default


def _probe_command(ctr: "Container") -> list[str] | None:
    hc = ctr.Config.Healthcheck
    test = list(getattr(hc, "Test", None) or []) if hc is not None else []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return test[1:]
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return None


def init_health_monitor(d: "Daemon", ctr: "Container") -> None:
    """initHealthMonitor: State.Health back to `starting` and a probe loop."""
    stop_health_checks(ctr)
    cmd = _probe_command(ctr)
    if cmd is None:
        ctr.State.Health = None
        return
    if ctr.State.Health is None or ctr.State.Health.Status != STARTING:
        ctr.State.Health = Health(Status=STARTING, FailingStreak=0,
                                  Log=ctr.State.Health.Log if ctr.State.Health else [])
    ctr.health_task = asyncio.get_running_loop().create_task(_monitor(d, ctr, cmd))


def stop_health_checks(ctr: "Container") -> None:
    task = getattr(ctr, "health_task", None)
    if task is not None:
        task.cancel()
        ctr.health_task = None


async def _monitor(d: "Daemon", ctr: "Container", cmd: list[str]) -> None:
    hc = ctr.Config.Healthcheck
    interval = _seconds(getattr(hc, "Interval", 0), DEFAULT_INTERVAL)
    timeout = _seconds(getattr(hc, "Timeout", 0), DEFAULT_TIMEOUT)
    start_period = _seconds(getattr(hc, "StartPeriod", 0), DEFAULT_START_PERIOD)
    retries = getattr(hc, "Retries", 0) or DEFAULT_RETRIES
    started = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        if not ctr.State.Running or ctr.State.Paused:
            continue
        start_ns = time.time_ns()
        try:
            code, output = await asyncio.wait_for(_probe(d, ctr, cmd), timeout)
        except asyncio.TimeoutError:
            code, output = -1, f"Health check exceeded timeout ({_go_duration(timeout)})"
        except asyncio.CancelledError:
            raise
        except Exception as e:
            code, output = -1, str(e)
        _record(d, ctr, start_ns, code, output, retries, time.monotonic() - started < start_period)


def _record(d: "Daemon", ctr: "Container", start_ns: int, code: int, output: str, retries: int,
            in_start_period: bool) -> None:
    """handleProbeResult."""
    h = ctr.State.Health
    if h is None:
        return
    entry: dict[str, Any] = {"Start": gojson.format_go_time(start_ns), "End": gojson.format_go_time(time.time_ns()),
                             "ExitCode": code, "Output": output}
    logs = list(h.Log or [])
    logs.append(entry)
    h.Log = logs[-MAX_LOG_ENTRIES:]
    old = h.Status
    if code == EXIT_STATUS_HEALTHY:
        h.FailingStreak = 0
        h.Status = HEALTHY
    elif not in_start_period or h.Status != STARTING:
        h.FailingStreak += 1
        if h.FailingStreak >= retries:
            h.Status = UNHEALTHY
    if h.Status != old:
        d.log_container_event(ctr, "health_status: " + h.Status)
    with contextlib.suppress(Exception):
        ctr.to_disk()


def _go_duration(seconds: float) -> str:
    if seconds == int(seconds):
        s = int(seconds)
        return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"
    return f"{seconds}s"


async def _probe(d: "Daemon", ctr: "Container", cmd: list[str]) -> tuple[int, str]:
    """Run `cmd` in the container under conmon --exec, collecting its output."""
    proc = getattr(ctr, "process", None)
    if proc is None:
        raise RuntimeError("container is not running")
    with open(os.path.join(proc.state.bundle, "config.json"), "rb") as f:
        base = specs.decode(f.read()).process
    assert base is not None
    process = specs.Process(user=base.user, args=cmd, env=base.env, cwd=base.cwd,
                            capabilities=base.capabilities, no_new_privileges=base.no_new_privileges,
                            rlimits=base.rlimits)
    exec_id = stringid.generate_random_id()
    exec_dir = os.path.join(d.lifecycle.exec_root, "exec", exec_id)
    out = bytearray()
    # dockerd runs probes as execs, with their events (checked on the reference).
    label = " ".join(cmd)
    d.log_container_event(ctr, f"exec_create: {label}", {"execID": exec_id})
    d.log_container_event(ctr, f"exec_start: {label}", {"execID": exec_id})
    code = -1
    try:
        eproc, stream = await d.lifecycle.conmon.exec(proc, exec_id, process, exec_dir, attach=True)
        if stream is not None:
            try:
                while True:
                    chunk = await stream.read()
                    if chunk is None:
                        break
                    if len(out) < MAX_OUTPUT_LEN:
                        out += chunk[1]
            finally:
                stream.close()
        code = await eproc.wait_exit()
        d.log_container_event(ctr, "exec_die", {"execID": exec_id, "exitCode": str(code)})
    finally:
        import shutil

        shutil.rmtree(exec_dir, ignore_errors=True)
    return code, out[:MAX_OUTPUT_LEN].decode("utf-8", "replace")
