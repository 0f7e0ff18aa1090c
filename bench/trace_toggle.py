"""berthd with tracing switched on and off by SIGUSR1 (bench/trace_cost.py --toggle).

    python3 bench/trace_toggle.py <berthd's arguments>

Run with --metrics-addr and/or an OTLP endpoint, so tracing starts on. Each SIGUSR1 flips
berth.trace's switch; turning it off first does the work the last operations left for
later (the metrics' batch, the exporter's hand-off), so its CPU time falls in the block
that made it. Only for measuring: one process, the same heap, on and off in turn.
"""
from __future__ import annotations

import os
import runpy
import signal
import sys
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

import berth.trace as trace
from berth.trace import core


def toggle(_sig: int, _frame: Any) -> None:
    if core.state.on:
        from berth.trace import metrics

        metrics.drain()
        pipe = trace._otlp
        if pipe is not None and pipe.pending:
            if pipe._timer is not None:
                pipe._timer.cancel()
            pipe._flush()
    core.state.on = not core.state.on


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, toggle)
    sys.argv = ["berth", *sys.argv[1:]]
    runpy.run_module("berth", run_name="__main__")
