"""Prometheus metrics: dockerd 20.10's names and labels, then Berth's per-step histograms.

dockerd (daemon/metrics.go, daemon/events/metrics.go, go-metrics): namespace `engine`,
subsystem `daemon`; timers are histograms in seconds with Go's default buckets; the five
container actions start at one observation of 0 (dockerd's init does `Update(0)`). Read
against a dockerd 20.10.24 run with `--experimental --metrics-addr`.

What the daemon owns (container states, engine info, event and health counts) comes
from callbacks it registers (`berth.daemon.metrics`), read at scrape time, so the daemon
pays nothing between scrapes. Imported only when --metrics-addr is given.
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .core import PROCESS, REQUEST, Operation

# Go's prometheus.DefBuckets (go-metrics timers use them).
GO_DEF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Steps take from tens of microseconds to seconds.
STEP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                2.5, 5, 10)

disable_created_metrics()  # Go's client has no `_created` series
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, … as Go's

container_actions = Histogram(
    "engine_daemon_container_actions_seconds", "The number of seconds it takes to process each container action",
    ["action"], buckets=GO_DEF_BUCKETS, registry=REGISTRY)
for _a in ("start", "changes", "commit", "create", "delete"):
    container_actions.labels(_a).observe(0)
network_actions = Histogram(
    "engine_daemon_network_actions_seconds", "The number of seconds it takes to process each network action",
    ["action"], buckets=GO_DEF_BUCKETS, registry=REGISTRY)
image_actions = Histogram(
    "engine_daemon_image_actions_seconds", "The number of seconds it takes to process each image action",
    ["action"], buckets=GO_DEF_BUCKETS, registry=REGISTRY)
_ACTIONS = {"container": container_actions, "network": network_actions, "image": image_actions}



class SpanHistograms(Collector):
    """Histograms of span durations by label values, kept as plain lists (only the
    loop's drain writes them) and turned into a metric family at scrape time: an
    observation is a bisect and three additions, about a quarter of prometheus_client's
    locked Histogram.observe — a create has twenty spans."""

    def __init__(self, name: str, doc: str, labels: list[str]) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.bounds = [round(b * 1e9) for b in STEP_BUCKETS]  # integer nanoseconds, as spans measure
        self.series: dict[tuple[str, ...], list[Any]] = {}  # labels → [bucket counts, sum ns, count]
        REGISTRY.register(self)

    def observe(self, key: tuple[str, ...], ns: int) -> None:
        h = self.series.get(key)
        if h is None:
            h = self.series[key] = [[0] * (len(self.bounds) + 1), 0, 0]
        h[0][bisect.bisect_left(self.bounds, ns)] += 1
        h[1] += ns
        h[2] += 1

    def series_of(self, key: tuple[str, ...]) -> list[Any]:
        """The [bucket counts, sum ns, count] of `key`, made at its first use."""
        h = self.series.get(key)
        if h is None:
            h = self.series[key] = [[0] * (len(self.bounds) + 1), 0, 0]
        return h

    def collect(self) -> Iterable[Any]:
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        for key, (counts, total, _n) in list(self.series.items()):
            acc, buckets = 0, []
            for bound, c in zip([*(str(b) for b in STEP_BUCKETS), "+Inf"], counts, strict=True):
                acc += c
                buckets.append((bound, acc))
            fam.add_metric(list(key), buckets, total / 1e9)
        yield fam


step_seconds = SpanHistograms("berth_step_seconds",
                              "Seconds each step of the daemon (dockerd's function names) takes", ["step"])
process_seconds = SpanHistograms("berth_process_seconds",
                                 "Seconds each helper program run (runc/crun, conmon, netavark) takes", ["program"])
request_seconds = SpanHistograms("berth_api_request_seconds",
                                 "Seconds each Engine API request takes, by route template", ["method", "route"])

_children: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def _child(hist: Any, *labels: str) -> Any:
    key = (hist, *labels)
    c = _children.get(key)
    if c is None:
        with _lock:
            c = _children[key] = hist.labels(*labels)
    return c


def observe_action(kind: str, action: str, seconds: float) -> None:
    """A finished dockerd action (the core's action sink)."""
    _child(_ACTIONS[kind], action).observe(seconds)


# Finished operations wait here and go into the histograms in batches, off the request's
# path: every DRAIN_INTERVAL seconds and before each scrape.
_pending: collections.deque[Operation] = collections.deque(maxlen=50_000)
DRAIN_INTERVAL = 1.0
_drainer: asyncio.TimerHandle | None = None


def observe_operation(op: Operation) -> None:
    """The metrics' trace sink: queue the operation (a deque append), drained in batches."""
    global _drainer
    _pending.append(op)
    if _drainer is None:
        try:
            _drainer = asyncio.get_running_loop().call_later(DRAIN_INTERVAL, _drain_soon)
        except RuntimeError:  # no loop (a thread, a unit test): at once
            drain()


def _drain_soon() -> None:
    global _drainer
    _drainer = None
    drain()


def drain() -> None:
    """Every queued operation into the histograms."""
    while True:
        try:
            op = _pending.popleft()
        except IndexError:
            return
        _observe(op)


_by_step: dict[str, list[Any]] = {}  # a step's name → its series in step_seconds
_by_program: dict[str, list[Any]] = {}


def _observe(op: Operation) -> None:
    """Every span of a finished operation into the step/process/request histograms."""
    bounds, bisect_left = step_seconds.bounds, bisect.bisect_left
    names, _parents, starts, ends, kinds, attrs, _errors = op.columns
    for i, end in enumerate(ends):
        if not end:  # still open when its operation ended (a thread's step): no duration
            continue
        ns = end - starts[i]
        kind, name = kinds[i], names[i]
        if kind == REQUEST:
            a = attrs[i] or {}
            request_seconds.observe((a.get("http.request.method", ""), a.get("http.route", "")), ns)
            continue
        by = _by_program if kind == PROCESS else _by_step
        h = by.get(name)
        if h is None:
            h = by[name] = (process_seconds if kind == PROCESS else step_seconds).series_of((name,))
        h[0][bisect_left(bounds, ns)] += 1
        h[1] += ns
        h[2] += 1


class _Callback(Collector):
    """Metric families computed at scrape time by `fn`."""

    def __init__(self, fn: Callable[[], Iterable[Any]]) -> None:
        self.fn = fn

    def collect(self) -> Iterable[Any]:
        return self.fn()


def register_callback(fn: Callable[[], Iterable[Any]]) -> None:
    REGISTRY.register(_Callback(fn))


def gauge(name: str, doc: str, value: float | None = None, labels: list[str] | None = None,
          samples: Iterable[tuple[list[str], float]] = ()) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, value=value, labels=labels)
    for lv, v in samples:
        g.add_metric(lv, v)
    return g


def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class ScrapeCounter:
    """promhttp_metric_handler_requests_total / _in_flight, as Go's promhttp handler keeps them."""

    def __init__(self) -> None:
        self.codes = {"200": 0, "500": 0, "503": 0}
        self.in_flight = 0

    def collect(self) -> Iterable[Any]:
        yield gauge("promhttp_metric_handler_requests_in_flight", "Current number of scrapes being served.",
                    self.in_flight)
        c = CounterMetricFamily("promhttp_metric_handler_requests_total",
                                "Total number of scrapes by HTTP status code.", labels=["code"])
        for code, n in self.codes.items():
            c.add_metric([code], n)
        yield c


SCRAPES = ScrapeCounter()
register_callback(SCRAPES.collect)
