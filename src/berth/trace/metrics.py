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

from .core import PROCESS, REQUEST, Operation

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
    observation: observations are queued (`observe_action`) and counted by `drain`."""

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
        self.bounds = [round(b * 1e9) for b in STEP_BUCKETS]  # integer nanoseconds, as spans measure
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


def observe_action(kind: str, action: str, seconds: float) -> None:
    """A finished dockerd action (the core's action sink; any thread): queued, counted
    by the next drain."""
    _actions.append((kind, action, seconds))


# dockerd's actions (from any thread) wait here and go into the histograms in batches:
# with the next batch of operations, and before each scrape.
_actions: collections.deque[tuple[str, str, float]] = collections.deque(maxlen=50_000)
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
            kind, action, seconds = _actions.popleft()
        except IndexError:
            return
        _ACTIONS[kind].observe(action, seconds)


# The series of a span's name, by kind: found once per name.
_by_step: dict[str, list[Any]] = {}
_by_program: dict[str, list[Any]] = {}
_by_request: dict[str, list[Any]] = {}
_sub = operator.sub


def _observe(ops: list[Operation]) -> None:
    """The spans of finished operations into the step/process/request histograms. The
    operations are grouped by their spans' names (a create is mostly the same eighteen
    steps), and each step's durations counted at once: sorted, each bucket a bisection.
    A name decides its kind (dockerd's step names, programs, and a request's name is its
    method and route): a group's kinds and the request's labels are its first operation's."""
    groups: dict[tuple[str, ...], tuple[Operation, list[tuple[int, ...]]]] = {}
    for op in ops:
        names, _parents, starts, ends, _kinds, _attrs, _errors, _indices = op.columns
        durations = tuple(map(_sub, ends, starts))  # negative: still open when its operation ended
        group = groups.get(names)
        if group is None:
            groups[names] = (op, [durations])
        else:
            group[1].append(durations)
    bounds = step_seconds.bounds
    for names, (first, rows) in groups.items():
        kinds, attrs = first.columns[4], first.columns[5]
        for i, values in enumerate(zip(*rows, strict=True)):
            name, kind = names[i], kinds[i]
            if kind == REQUEST:
                h = _by_request.get(name)
                if h is None:
                    a = attrs[i] or {}
                    h = _by_request[name] = request_seconds.series_of(
                        (a.get("http.request.method", ""), a.get("http.route", "")))
            else:
                by = _by_program if kind == PROCESS else _by_step
                h = by.get(name)
                if h is None:
                    h = by[name] = (process_seconds if kind == PROCESS else step_seconds).series_of((name,))
            counts = h[0]
            if len(values) < 8:
                for ns in values:
                    if ns >= 0:
                        counts[bisect.bisect_left(bounds, ns)] += 1
                        h[1] += ns
                        h[2] += 1
                continue
            vals = sorted(values)
            lo = below = bisect.bisect_left(vals, 0)
            for j, bound in enumerate(bounds):  # bucket j: bounds[j-1] < ns <= bounds[j]
                upto = bisect.bisect_right(vals, bound, below)
                counts[j] += upto - below
                below = upto
            counts[-1] += len(vals) - below
            h[1] += sum(vals[lo:]) if lo else sum(vals)
            h[2] += len(vals) - lo


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
