"""Observability: the create path made visible (issue 15).

- `core`: the recorder. Step functions carry `@traced("name")` (or `with step("name"):`,
  `with process("runc start"):` for a program Berth runs); the API layer opens one
  operation per request (`begin_request` / `end_operation`).
- `otlp`: operations as OpenTelemetry spans over OTLP/HTTP, configured by OTEL_* variables.
- `metrics`: dockerd 20.10's Prometheus metrics plus per-step histograms (prometheus_client).
- `page`, `server`: the `--metrics-addr` listener: /metrics and the timeline page.

Off (no OTLP endpoint, no --metrics-addr) every hook is one flag test. A subsystem with no
dependency on `daemon` or `api`: both import it.

For new code (pull/push, ...): decorate the step function with `@traced("dockerdName")`
and run helper programs inside `with process("prog subcommand"):`; nothing else is needed.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from . import otlp, page
from .core import (
    PROCESS,
    REQUEST,
    STEP,
    ContextExecutor,
    Operation,
    begin_operation,
    begin_request,
    current_operation,
    end_operation,
    flush,
    in_context,
    process,
    state,
    step,
    touch,
    touches,
    touches_through,
    traced,
)
from .exporter import ExporterPipe

log = logging.getLogger("berth.trace")

__all__ = [
    "PROCESS", "REQUEST", "STEP", "Operation", "begin_operation", "begin_request", "current_operation",
    "end_operation", "flush", "in_context", "process", "setup", "shutdown", "state", "step", "touch", "touches",
    "touches_through", "traced",
]

_otlp: Any = None


def setup(metrics: bool) -> bool:
    """Turn the recorder on if OTLP export is configured or `metrics` (--metrics-addr) is
    given; returns whether it is on. Safe to call once per process."""
    global _otlp
    state.sinks = []
    if otlp.configured():
        refusal = otlp.check_protocol()
        if refusal:
            log.warning("%s", refusal)
        else:
            _otlp = ExporterPipe()
            state.sinks.append(_otlp)
            log.info("tracing: exporting spans over OTLP/HTTP (exporter pid %d)", _otlp.proc.pid)
    if metrics:
        # Late: prometheus_client (about 10 ms to import) only with --metrics-addr.
        from . import metrics as _metrics
        state.sinks.append(_metrics.observe_operations)
        state.keeper = page.RING.add
        state.action_sink = _metrics.queue_action
    state.on = bool(state.sinks)
    if state.on:
        try:  # blocking work sent to the loop's default pool keeps its place in the trace
            asyncio.get_running_loop().set_default_executor(ContextExecutor(thread_name_prefix="asyncio"))
        except RuntimeError:  # no loop (a unit test): nothing runs in its pool
            pass
    return state.on


def shutdown() -> None:
    """Flush what is queued for the collector and turn the recorder off."""
    global _otlp
    state.on = False
    flush()
    state.sinks = []
    state.keeper = None
    state.action_sink = None
    if _otlp is not None:
        _otlp.shutdown()
        _otlp = None
