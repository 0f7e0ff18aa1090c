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

import bisect
import collections
import operator
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .core import PROCESS, REQUEST, Operation, speedups

# Go's prometheus.DefBuckets (go-metrics timers use them).
GO_DEF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Steps take from tens of microseconds to seconds.
STEP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                2.5, 5, 10)

disable_created_metrics()  # Go's client has no `_created` series
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, … as Go's


class ActionHistograms(Collector):
    """dockerd's action timers (seconds, Go's default buckets), as prometheus_client's
    Histogram with an `action` label writes them (the same text), without its lock per
    observation: observations are queued (`queue_action`) and counted by `drain`."""

    def __init__(self, name: str, doc: str) -> None:
        self.name, self.doc = name, doc
        self.les = [*(floatToGoString(b) for b in GO_DEF_BUCKETS), "+Inf"]
        self.series: dict[str, list[Any]] = {}  # action → [bucket counts, sum of seconds]
        REGISTRY.register(self)

    def observe(self, action: str, seconds: float) -> None:
        h = self.series.get(action)
        if h is None:
            h = self.series[action] = [[0] * len(self.les), 0.0]
        h[0][bisect.bisect_left(GO_DEF_BUCKETS, seconds)] += 1
        h[1] += seconds

    def describe(self) -> Iterable[Any]:
        return [HistogramMetricFamily(self.name, self.doc, labels=["action"])]

    def collect(self) -> Iterable[Any]:
        drain()
        fam = HistogramMetricFamily(self.name, self.doc, labels=["action"])
        for action, (counts, total) in list(self.series.items()):
            acc, buckets = 0, []
            for le, c in zip(self.les, counts, strict=True):
                acc += c
                buckets.append((le, acc))
            fam.add_metric([action], buckets, total)
        yield fam


container_actions = ActionHistograms(
    "engine_daemon_container_actions_seconds", "The number of seconds it takes to process each container action")
for _a in ("start", "changes", "commit", "create", "delete"):
    container_actions.observe(_a, 0)
network_actions = ActionHistograms(
    "engine_daemon_network_actions_seconds", "The number of seconds it takes to process each network action")
image_actions = ActionHistograms(
    "engine_daemon_image_actions_seconds", "The number of seconds it takes to process each image action")
_ACTIONS = {"container": container_actions, "network": network_actions, "image": image_actions}


class SpanHistograms(Collector):
    """Histograms of span durations by label values, kept as plain lists (only `drain`
    writes them) and turned into a metric family at scrape time."""

    def __init__(self, name: str, doc: str, labels: list[str]) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.bounds = tuple(round(b * 1e9) for b in STEP_BUCKETS)  # integer nanoseconds, as spans measure
        self.series: dict[tuple[str, ...], list[Any]] = {}  # labels → [bucket counts, sum ns, count]
        REGISTRY.register(self)

    def series_of(self, key: tuple[str, ...]) -> list[Any]:
        """The [bucket counts, sum ns, count] of `key`, made at its first use."""
        h = self.series.get(key)
        if h is None:
            h = self.series[key] = [[0] * (len(self.bounds) + 1), 0, 0]
        return h

    def describe(self) -> Iterable[Any]:
        return [HistogramMetricFamily(self.name, self.doc, labels=self.labels)]

    def collect(self) -> Iterable[Any]:
        drain()
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


# dockerd's actions, (kind, action, nanoseconds), wait here (from any thread) and go into
# the histograms in batches: with the next batch of operations, and before each scrape.
_actions: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=50_000)
# The core's action sink: a step's wrapper queues its action with no Python call.
queue_action = _actions.append

_drain_lock = threading.Lock()


def observe_operations(ops: list[Operation]) -> None:
    """The metrics' trace sink: a batch of finished operations into the histograms."""
    with _drain_lock:
        _drain_actions()
        _observe(ops)


def drain() -> None:
    """Every queued action into the histograms (from any thread)."""
    with _drain_lock:
        _drain_actions()


def _drain_actions() -> None:
    while True:
        try:
            kind, action, ns = _actions.popleft()
        except IndexError:
            return
        _ACTIONS[kind].observe(action, ns / 1e9)


# The series of each span of an operation, by its span names: found once per sequence
# (a create is mostly the same seventeen steps); dropped whole when it grows past
# _SEQUENCES (routes and their error paths make a few hundred at most).
_by_names: dict[tuple[str, ...], list[list[Any]]] = {}
_SEQUENCES = 4096
_sub = operator.sub


def _observe(ops: list[Operation]) -> None:
    """The spans of finished operations into the step/process/request histograms. The
    operations are grouped by their spans' names and each group counted at once
    (`count_spans`: C when built). A name decides its kind (dockerd's step names,
    programs, and a request's name is its method and route): a group's kinds and the
    request's labels are its first operation's."""
    groups: dict[tuple[str, ...], list[Any]] = {}
    for op in ops:
        columns = op.columns
        rows = groups.get(columns[0])
        if rows is None:
            groups[columns[0]] = [columns]
        else:
            rows.append(columns)
    bounds = step_seconds.bounds
    for names, rows in groups.items():
        series = _by_names.get(names)
        if series is None:
            if len(_by_names) >= _SEQUENCES:
                _by_names.clear()
            series = _by_names[names] = _series_of_spans(rows[0])
        count_spans(rows, series, bounds)


def _series_of_spans(columns: Any) -> list[list[Any]]:
    """The histogram series of each span of an operation's columns."""
    series = []
    for name, kind, a in zip(columns[0], columns[4], columns[5], strict=True):
        if kind == REQUEST:
            a = a or {}
            series.append(request_seconds.series_of((a.get("http.request.method", ""), a.get("http.route", ""))))
        else:
            series.append((process_seconds if kind == PROCESS else step_seconds).series_of((name,)))
    return series


def _count_spans(rows: list[Any], series: list[list[Any]], bounds: tuple[int, ...]) -> None:
    """count_spans in Python: rows are operations' columns with the same span names
    (starts column 2, ends column 3), series[i] the [bucket counts, sum ns, count] of span
    i; a span still open when its operation ended is left out. Each span's durations are
    sorted and each bucket is a bisection."""
    if not rows:
        return
    durations = zip(*(map(_sub, columns[3], columns[2]) for columns in rows), strict=True)
    for h, values in zip(series, durations, strict=True):
        counts = h[0]
        vals = sorted(values)
        lo = below = bisect.bisect_left(vals, 0)
        for j, bound in enumerate(bounds):  # bucket j: bounds[j-1] < ns <= bounds[j]
            upto = bisect.bisect_right(vals, bound, below)
            counts[j] += upto - below
            below = upto
        counts[-1] += len(vals) - below
        h[1] += sum(vals[lo:]) if lo else sum(vals)
        h[2] += len(vals) - lo


count_spans: Callable[[list[Any], list[list[Any]], tuple[int, ...]], None] = (
    speedups.count_spans if speedups is not None else _count_spans)


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
