"""A small OTLP/HTTP trace receiver for the tests: POST /v1/traces, protobuf
(opentelemetry-proto's ExportTraceServiceRequest), gzip or not; keeps every span.

`python3 tests/otlp_receiver.py PORT` runs one in a process of its own that only counts
the spans (GET /count): the benches' collector, kept out of the client's process and GIL
(a collector is not Berth's cost, and one decoding spans in the client's process delays
the requests the client times)."""
from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    start: int
    end: int
    kind: int
    attrs: dict[str, Any]
    status_code: int
    resource: dict[str, Any] = field(default_factory=dict)


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


class OTLPReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, keep: bool = True) -> None:
        self.spans: list[ReceivedSpan] = []
        self.count = 0  # spans received (kept or not)
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                    ExportTraceServiceRequest,
                    ExportTraceServiceResponse,
                )

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                if not keep:
                    n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
                    with receiver._lock:
                        receiver.count += n
                        receiver.requests += 1
                    self._answer(ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")
                    return
                got = []
                for rs in req.resource_spans:
                    res = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        for s in ss.spans:
                            got.append(ReceivedSpan(
                                s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                                s.start_time_unix_nano, s.end_time_unix_nano, s.kind,
                                {kv.key: _value(kv.value) for kv in s.attributes}, s.status.code, res))
                with receiver._lock:
                    receiver.spans.extend(got)
                    receiver.count += len(got)
                    receiver.requests += 1
                self._answer(ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

            def do_GET(self) -> None:  # http.server's name
                if self.path != "/count":
                    self.send_response(404)
                    self.end_headers()
                    return
                with receiver._lock:
                    self._answer(str(receiver.count).encode(), "text/plain")

            def _answer(self, out: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, pred: Any, timeout: float = 20) -> list[ReceivedSpan]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            spans = self.snapshot()
            if pred(spans):
                return spans
            time.sleep(0.1)
        raise AssertionError(f"spans not received in {timeout}s: {[s.name for s in self.snapshot()]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def span_count(endpoint: str) -> int:
    """The spans a receiver at `endpoint` got so far (its GET /count)."""
    import urllib.request

    with urllib.request.urlopen(endpoint + "/count", timeout=10) as r:
        return int(r.read())


if __name__ == "__main__":
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    receiver = OTLPReceiver(port=int(sys.argv[1]), keep=False)
    print(receiver.endpoint, flush=True)
    receiver.thread.join()
