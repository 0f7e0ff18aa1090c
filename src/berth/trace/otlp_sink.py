"""The OTLP exporter child's sink: finished operations as OpenTelemetry spans, made after the
fact from the recorder's timings (ReadableSpan straight to the SDK's batch processor), and
exported over OTLP/HTTP (protobuf). When tracing is on and how it is configured: berth.trace.otlp.

Only the exporter child (berth.trace.exporter) imports this module: the OpenTelemetry SDK and
its OTLP exporter take about 0.1 s to import, which the daemon never pays.
"""
from __future__ import annotations

import os
import random
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import _get_from_env_or_default
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, set_span_in_context
from opentelemetry.trace.status import Status, StatusCode

from .. import ENGINE_VERSION
from .core import PROCESS, REQUEST, Operation
from .otlp import _parse_traceparent


class _Resource(Resource):
    """The resource with its hash made once: the SDK's encoder groups every span by its
    resource, and Resource's own hash is a JSON dump of its attributes (a seventh of
    this process's CPU per span)."""

    _hash = 0

    @classmethod
    def of(cls, res: Resource) -> _Resource:
        made = cls(res.attributes, res.schema_url)
        made._hash = Resource.__hash__(made)
        return made

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return Resource.__eq__(self, other)


class OTLPSink:
    """A trace sink: each finished operation becomes one trace (or joins the client's)."""

    def __init__(self) -> None:
        attrs: dict[str, Any] = {"service.version": ENGINE_VERSION}
        if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
                "OTEL_RESOURCE_ATTRIBUTES", ""):
            attrs["service.name"] = "berthd"
        self.resource = _Resource.of(Resource.create(attrs))
        self.scope = InstrumentationScope("berth", ENGINE_VERSION)
        self.sampler = _get_from_env_or_default()
        self.processor: BatchSpanProcessor = BatchSpanProcessor(OTLPSpanExporter())
        self._rand = random.Random()

    def __call__(self, op: Operation) -> None:
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
