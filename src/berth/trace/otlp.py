"""When finished operations are exported as OpenTelemetry spans over OTLP/HTTP (protobuf).

Configured as dockerd 25+ and every OTel SDK are: by the standard variables. Tracing is on
when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and neither
OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none); the exporter reads the endpoint,
headers, timeout and compression, the batch processor OTEL_BSP_*, the sampler
OTEL_TRACES_SAMPLER(_ARG), the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
A client's W3C `traceparent` header makes its span the request's parent.

The spans are made in the exporter child by berth.trace.otlp_sink, which alone imports the
OpenTelemetry SDK.
"""
from __future__ import annotations

import logging
import os

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
