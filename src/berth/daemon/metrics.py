"""What the daemon tells the metrics (moby daemon/metrics.go, daemon/events/metrics.go):
engine info, CPUs and memory, container states, event and health-check counts.

Read at scrape time from the daemon's own state, so nothing is updated on the hot path.
Called once at start-up, only with --metrics-addr.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import ENGINE_VERSION
from ..trace import metrics as m
from . import health
from .info import GIT_COMMIT, _mem_total, _os_release

if TYPE_CHECKING:
    from .core import Daemon


def register(d: Daemon) -> None:
    os_name, os_version = _os_release()
    info_labels = ["architecture", "commit", "daemon_id", "graphdriver", "kernel", "os", "os_type",
                   "os_version", "version"]
    info_values = [os.uname().machine, GIT_COMMIT, d.engine_id, d.layers.driver_name, os.uname().release,
                   os_name, "linux", os_version, ENGINE_VERSION]
    ncpu = os.cpu_count() or 1
    mem = _mem_total()

    def engine() -> Iterable[Any]:
        yield m.gauge("engine_daemon_engine_info",
                      "The information related to the engine and the OS it is running on",
                      labels=info_labels, samples=[(info_values, 1)])
        yield m.gauge("engine_daemon_engine_cpus_cpus", "The number of cpus that the host system of the engine has",
                      ncpu)
        yield m.gauge("engine_daemon_engine_memory_bytes",
                      "The number of bytes of memory that the host system of the engine has", mem)

    def states() -> Iterable[Any]:
        running = paused = stopped = 0
        for c in list(d.containers.values()):
            if c.State.Paused:
                paused += 1
            elif c.State.Running:
                running += 1
            else:
                stopped += 1
        yield m.gauge("engine_daemon_container_states_containers", "The count of containers in various states",
                      labels=["state"], samples=[(["paused"], paused), (["running"], running), (["stopped"], stopped)])

    def events() -> Iterable[Any]:
        yield m.gauge("engine_daemon_events_subscribers_total", "The number of current subscribers to events",
                      d.events.subscribers_count())
        yield m.counter("engine_daemon_events_total", "The number of events logged",
                        d.events.logged)

    def health_checks() -> Iterable[Any]:
        yield m.counter("engine_daemon_health_checks_failed_total", "The total number of failed health checks",
                        health.CHECKS[1])
        yield m.counter("engine_daemon_health_checks_total", "The total number of health checks", health.CHECKS[0])

    for fn in (engine, states, events, health_checks):
        m.register_callback(fn)
