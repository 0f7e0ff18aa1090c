"""Finished operations as OpenTelemetry spans, exported over OTLP/HTTP (protobuf).

Configured as dockerd 25+ and every OTel SDK are: by the standard variables. Tracing is on
when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and neither
OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none); the exporter reads the endpoint,
headers, timeout and compression, the batch processor OTEL_BSP_*, the sampler
OTEL_TRACES_SAMPLER(_ARG), the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
A client's W3C `traceparent` header makes its span the request's parent.

The spans are made after the fact from the recorder's timings (ReadableSpan straight to the
batch processor): the SDK's live-span machinery would cost more per step than the step.
"""
from __future__ import annotations

import logging
import os
import random
from typing import TYPE_CHECKING, Any

from .. import ENGINE_VERSION
from .core import PROCESS, REQUEST, Operation

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger("berth.trace")


def configured(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for trace export."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def check_protocol(env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """The refusal for an OTLP protocol Berth does not speak (only http/protobuf), else None."""
    proto = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
             or "http/protobuf").strip()
    if proto != "http/protobuf":
        return f"OTLP protocol {proto!r} is not supported (only http/protobuf): traces are not exported"
    exporter = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter != "otlp":
        return f"OTEL_TRACES_EXPORTER={exporter!r} is not supported (only otlp): traces are not exported"
    return None


def _parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """W3C trace-context `00-<trace id>-<parent id>-<flags>`; None if malformed."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2 or parts[0] == "ff":
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, flags


class OTLPSink:
    """A trace sink: each finished operation becomes one trace (or joins the client's)."""

    def __init__(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import _get_from_env_or_default
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        attrs: dict[str, Any] = {"service.version": ENGINE_VERSION}
        if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
                "OTEL_RESOURCE_ATTRIBUTES", ""):
            attrs["service.name"] = "berthd"
        self.resource = Resource.create(attrs)
        self.scope = InstrumentationScope("berth", ENGINE_VERSION)
        self.sampler = _get_from_env_or_default()
        self.processor: BatchSpanProcessor = BatchSpanProcessor(OTLPSpanExporter())
        self._rand = random.Random()

    def __call__(self, op: Operation) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            TraceFlags,
            set_span_in_context,
        )
        from opentelemetry.trace.status import Status, StatusCode

        remote = _parse_traceparent(op.remote_parent) if op.remote_parent else None
        spans = op.spans
        root = spans[0]
        getbits = self._rand.getrandbits
        trace_id = remote[0] if remote else getbits(128)
        parent_ctx = (SpanContext(remote[0], remote[1], is_remote=True, trace_flags=TraceFlags(remote[2]))
                      if remote else None)
        attrs = root_attributes(op)
        decision = self.sampler.should_sample(
            set_span_in_context(NonRecordingSpan(parent_ctx)) if parent_ctx else None,
            trace_id, root.name, SpanKind.SERVER, attrs)
        if not decision.decision.is_sampled():
            return
        flags = TraceFlags(TraceFlags.SAMPLED)
        ctxs: list[SpanContext] = []
        unset = Status(StatusCode.UNSET)
        on_end = self.processor.on_end
        for i, s in enumerate(spans):
            ctx = SpanContext(trace_id, getbits(64) or 1, is_remote=False, trace_flags=flags)
            ctxs.append(ctx)
            if i == 0:
                span_attrs = attrs
                kind = SpanKind.SERVER if s.kind == REQUEST else SpanKind.INTERNAL
                parent = parent_ctx
                err = s.error or (f"HTTP {op.status}" if op.status >= 500 else "")
            else:
                span_attrs = {"berth.kind": s.kind}
                if s.kind == PROCESS:
                    span_attrs["process.executable.name"] = s.name.split(" ", 1)[0]
                if s.attrs:
                    span_attrs.update(s.attrs)
                kind = SpanKind.CLIENT if s.kind == PROCESS else SpanKind.INTERNAL
                parent = ctxs[s.parent]
                err = s.error
            on_end(ReadableSpan(
                s.name, context=ctx, parent=parent, resource=self.resource, attributes=span_attrs,
                kind=kind, status=Status(StatusCode.ERROR, err) if err else unset,
                start_time=op.wall_ns(s.start), end_time=op.wall_ns(s.end or s.start),
                instrumentation_scope=self.scope))

    def shutdown(self) -> None:
        self.processor.shutdown()


def root_attributes(op: Operation) -> dict[str, Any]:
    """The request span's attributes (OTel HTTP semantic conventions, plus the API version
    and the containers it touched)."""
    attrs: dict[str, Any] = dict(op.columns[5][0] or {})
    if op.status:
        attrs["http.response.status_code"] = op.status
    if op.containers:
        attrs["container.id"] = op.containers[0]
        if len(op.containers) > 1:
            attrs["berth.containers"] = list(op.containers)
    return attrs
