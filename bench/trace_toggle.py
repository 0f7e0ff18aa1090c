"""berthd with tracing switched on and off by SIGUSR1 (bench/trace_cost.py --toggle).

    python3 bench/trace_toggle.py <berthd's arguments>

Run with --metrics-addr and/or an OTLP endpoint, so tracing starts on. Each SIGUSR1 flips
berth.trace's switch; turning it off first does the work the last operations left for
later (the metrics' batch, the exporter's hand-off), so its CPU time falls in the block
that made it. Only for measuring: one process, the same heap, on and off in turn.

The cyclic GC's collections are counted and timed (thread CPU) by the state they ran in;
SIGUSR2 writes the totals so far as JSON to $TRACE_TOGGLE_GC (when set).
"""
from __future__ import annotations

import gc
import json
import os
import runpy
import signal
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

import berth.trace as trace
from berth.trace import core

# state → generation → [collections, seconds]
GC: dict[bool, list[list[float]]] = {True: [[0, 0.0] for _ in range(3)], False: [[0, 0.0] for _ in range(3)]}
_gc_t0 = 0.0


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    global _gc_t0
    if phase == "start":
        _gc_t0 = time.thread_time()
        return
    g = GC[core.state.on][info["generation"]]
    g[0] += 1
    g[1] += time.thread_time() - _gc_t0


def toggle(_sig: int, _frame: Any) -> None:
    """In the loop, as its next callback (a flush must not run inside another)."""
    loop = core._loop[0]
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(_toggle)
    else:
        _toggle()


def _toggle() -> None:
    if core.state.on:
        trace.flush()
        from berth.trace import metrics

        metrics.drain()
    core.state.on = not core.state.on


def dump_gc(_sig: int, _frame: Any) -> None:
    path = os.environ.get("TRACE_TOGGLE_GC")
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump({"on": GC[True], "off": GC[False]}, f)
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    if os.environ.get("TRACE_TOGGLE_FLUSH_DELAY"):  # trace_cost --instructions: one batch per block
        core.FLUSH_DELAY = float(os.environ["TRACE_TOGGLE_FLUSH_DELAY"])
    signal.signal(signal.SIGUSR1, toggle)
    signal.signal(signal.SIGUSR2, dump_gc)
    gc.callbacks.append(_gc_timer)
    sys.argv = ["berth", *sys.argv[1:]]
    runpy.run_module("berth", run_name="__main__")
