"""berth.trace: the recorder (off is a no-op, nesting across tasks and threads, an
operation's late children dropped), OTLP configuration, the page and the metrics sinks."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import os
from typing import Any

import pytest

from berth import trace
from berth.trace import core, otlp, page


@pytest.fixture
def recorder() -> list[core.Operation]:
    got: list[core.Operation] = []
    core.state.on, core.state.sinks = True, [got.extend]
    yield got
    core.flush()
    core.state.on, core.state.sinks, core.state.action_sink, core.state.keeper = False, [], None, None


@trace.traced("outer")
async def _outer(pool: concurrent.futures.Executor) -> None:
    await _inner()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(pool, trace.in_context(_in_thread))
    with trace.process("runc start"):
        pass


@trace.traced("inner")
async def _inner() -> None:
    with trace.step("leaf"):
        await asyncio.sleep(0)


@trace.traced("threaded")
def _in_thread() -> int:
    return 1


def test_off_is_a_passthrough() -> None:
    assert not core.state.on
    assert trace.step("x") is trace.step("y")  # the shared no-op
    assert _in_thread() == 1
    assert trace.begin_request("GET", "/x", "") is None
    assert trace.in_context(_in_thread) is _in_thread


def test_nesting_threads_and_order(recorder: list[core.Operation]) -> None:
    async def main() -> None:
        op = trace.begin_request("POST", "/containers/create", "1.41")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            await _outer(pool)
        trace.touch("abc")
        trace.end_operation(op, 201)
        assert trace.current_operation() is None

    asyncio.run(main())
    core.flush()  # ended in the loop: its batch was due in a quarter of a second
    (op,) = recorder
    names = [(s.name, op.spans[s.parent].name if s.parent >= 0 else None, s.kind) for s in op.spans]
    assert names == [("POST /containers/create", None, "request"), ("outer", "POST /containers/create", "step"),
                     ("inner", "outer", "step"), ("leaf", "inner", "step"), ("threaded", "outer", "step"),
                     ("runc start", "outer", "process")]
    assert all(s.end >= s.start for s in op.spans)
    assert op.status == 201 and op.containers == ["abc"]
    assert op.spans[0].attrs == {"http.request.method": "POST", "http.route": "/containers/create",
                                 "docker.api.version": "1.41"}


def test_a_task_that_outlives_its_request_adds_nothing(recorder: list[core.Operation]) -> None:
    async def main() -> None:
        op = trace.begin_request("POST", "/containers/{name}/start", "")
        gate = asyncio.Event()

        async def monitor() -> None:  # like a container's exit monitor
            await gate.wait()
            with trace.step("ToDisk"):
                pass
            trace.touch("late")

        t = asyncio.ensure_future(monitor())
        trace.end_operation(op, 204)
        gate.set()
        await t

    asyncio.run(main())
    core.flush()
    assert [s.name for s in recorder[0].spans] == ["POST /containers/{name}/start"]
    assert recorder[0].containers == []


def test_errors_are_marked_and_actions_timed(recorder: list[core.Operation]) -> None:
    seen: list[tuple[str, str]] = []
    core.state.action_sink = lambda timed: seen.append(timed[:2])

    @trace.traced("containerCreate", action="create")
    def bad() -> None:
        raise ValueError("no")

    @trace.traced("containerStart", action="start")
    def good() -> None:
        pass

    op = trace.begin_request("POST", "/x", "")
    with pytest.raises(ValueError):
        bad()
    good()
    trace.end_operation(op, 500)
    assert recorder[0].spans[1].error == "ValueError"
    assert seen == [("container", "start")]  # dockerd counts a successful action only


def test_otlp_configuration() -> None:
    assert not otlp.configured({})
    assert otlp.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert otlp.configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert not otlp.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_SDK_DISABLED": "true"})
    assert not otlp.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_TRACES_EXPORTER": "none"})
    assert otlp.check_protocol({}) is None
    assert "grpc" in (otlp.check_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) or "")
    assert otlp._parse_traceparent("00-" + "a" * 32 + "-" + "b" * 16 + "-01") == (int("a" * 32, 16),
                                                                                 int("b" * 16, 16), 1)
    assert otlp._parse_traceparent("00-" + "0" * 32 + "-" + "b" * 16 + "-01") is None
    assert otlp._parse_traceparent("garbage") is None


def _op(recorder: list[core.Operation], route: str = "/containers/create") -> core.Operation:
    op = trace.begin_request("POST", route, "1.41")
    with trace.step("fast"):
        pass
    with trace.step("<slow&>"), trace.process("runc start"):
        sum(range(20000))
    trace.touch("f" * 64)
    trace.end_operation(op, 201)
    trace.flush()
    return recorder[-1]


def test_page_renders_escaped_with_slowest_and_links(recorder: list[core.Operation]) -> None:
    ring = page.Ring(3)
    for _ in range(5):
        ring.add(_op(recorder))
    assert len(ring.snapshot()) == 3
    op = ring.snapshot()[-1]
    assert page.slowest_leaf(op) == 3  # runc start: the leaf the time went to
    html = page.render_index(ring)
    assert "<slow&>" not in html and "&lt;slow&amp;&gt;" in html
    assert 'href="/containers/' + "f" * 64 + '"' in html
    assert f'href="/op/{op.id}"' in html and "◀ slowest" in html
    assert page.render_container("f" * 12, ring).count('class="op"') == 3
    # plain reads stay out of the ring
    get = trace.begin_request("GET", "/containers/{name}/json", "")
    trace.end_operation(get, 200)
    ring.add(recorder[-1])
    assert ring.snapshot()[-1] is op


def test_percentiles() -> None:
    assert page.percentile([], 50) == 0
    vals = list(range(1, 101))
    assert page.percentile(vals, 50) == 50 and page.percentile(vals, 90) == 90
    assert page.percentile([7], 90) == 7


def test_metrics_sink(recorder: list[core.Operation]) -> None:
    from prometheus_client import generate_latest

    from berth.trace import metrics

    metrics.observe_operations([_op(recorder)])
    metrics.queue_action(("network", "connect", 10_000_000))
    metrics.queue_action(("image", "history", 10_000_000))
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'berth_step_seconds_count{step="fast"}' in text
    assert 'berth_process_seconds_count{program="runc start"}' in text
    assert 'berth_api_request_seconds_count{method="POST",route="/containers/create"}' in text
    assert 'engine_daemon_network_actions_seconds_count{action="connect"} 1.0' in text
    assert 'engine_daemon_image_actions_seconds_count{action="history"} 1.0' in text
    assert 'engine_daemon_container_actions_seconds_count{action="commit"} 1.0' in text  # dockerd's Update(0)
    assert "_created" not in text


def test_metrics_addr_parsing_and_the_non_loopback_warning(caplog: pytest.LogCaptureFixture) -> None:
    from berth.trace import server

    assert server.parse_addr("127.0.0.1:9323") == ("127.0.0.1", 9323)
    assert server.parse_addr("[::1]:9323") == ("::1", 9323)
    assert server.parse_addr(":9323") == ("", 9323)
    for bad in ("127.0.0.1", "x:0", "x:99999", "x:y"):
        with pytest.raises(ValueError):
            server.parse_addr(bad)
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1") and server.is_loopback("localhost")
    assert not server.is_loopback("") and not server.is_loopback("10.0.0.1")

    async def main() -> None:
        runner = await server.start("0.0.0.0:15698")
        await runner.cleanup()
        runner = await server.start("127.0.0.1:15698")
        await runner.cleanup()

    with caplog.at_level(logging.INFO, logger="berth.trace"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "0.0.0.0:15698" in warnings[0].getMessage()
    assert "not a loopback address" in warnings[0].getMessage()


def test_exporter_frames_round_trip(recorder: list[core.Operation]) -> None:
    import msgspec

    from berth.trace import exporter

    op = _op(recorder)
    op.remote_parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    data = msgspec.msgpack.encode([exporter.pack(op)])
    (back,) = [exporter.unpack(r) for r in msgspec.msgpack.decode(data)]
    assert [(s.name, s.parent, s.start, s.end, s.kind, s.attrs, s.error) for s in back.spans] == [
        (s.name, s.parent, s.start, s.end, s.kind, s.attrs, s.error) for s in op.spans]
    assert (back.wall, back.mono, back.status, back.remote_parent, back.containers) == (
        op.wall, op.mono, op.status, op.remote_parent, op.containers)
    assert back.wall_ns(back.spans[1].start) == op.wall_ns(op.spans[1].start)


def test_metrics_addr_flag_and_daemon_json(tmp_path: Any) -> None:
    import os

    from berth.__main__ import load_config, parse_args

    cfg_file = os.path.join(tmp_path, "daemon.json")
    assert load_config(parse_args(["--config-file", cfg_file])).metrics_addr == ""
    assert load_config(parse_args(["--config-file", cfg_file, "--metrics-addr", "127.0.0.1:9323"])
                       ).metrics_addr == "127.0.0.1:9323"
    with open(cfg_file, "w") as f:
        f.write('{"metrics-addr": "127.0.0.1:9324"}')
    assert load_config(parse_args(["--config-file", cfg_file])).metrics_addr == "127.0.0.1:9324"
    with pytest.raises(SystemExit) as e:  # given both ways: refused, as dockerd refuses it
        load_config(parse_args(["--config-file", cfg_file, "--metrics-addr", "127.0.0.1:9323"]))
    assert "metrics-addr" in str(e.value)


def test_exporter_pipe_survives_its_child(recorder: list[core.Operation], caplog: pytest.LogCaptureFixture) -> None:
    """The exporter child gone: one warning, the daemon goes on, nothing blocks."""
    import os

    from berth.trace import exporter

    async def main() -> None:
        pipe = exporter.ExporterPipe.__new__(exporter.ExporterPipe)
        r, w = os.pipe()
        os.close(r)  # the child is gone
        os.set_blocking(w, False)

        class _Proc:
            def poll(self) -> None:
                return None

        pipe.proc, pipe.fd, pipe.buf = _Proc(), w, bytearray()  # type: ignore[assignment]
        pipe.dropped, pipe.dead, pipe._loop, pipe._writer = 0, False, None, False
        pipe._enc = __import__("msgspec").msgpack.Encoder()
        for _ in range(3):
            pipe([_op(recorder)])
            await asyncio.sleep(0.01)
        assert pipe.dead and not pipe.buf
        os.close(w)

    with caplog.at_level(logging.WARNING, logger="berth.trace"):
        asyncio.run(main())
    assert len([r for r in caplog.records if "exporter process gone" in r.getMessage()]) == 1


def test_spans_appended_out_of_order_are_put_back_in_order(recorder: list[core.Operation]) -> None:
    """Leaf steps are appended at their end, the others at their start, and two threads of
    one operation can append in any order; what a step appends after the operation's end
    is left out. The spans are in the order they started, parents as positions."""
    op = trace.begin_request("POST", "/containers/{name}/start", "")
    assert op is not None
    with trace.step("containerStart"):
        parent = op.live[1]
        t = parent[core._START]
        a = ["allocateNetwork", parent[core._INDEX], t + 10, 0, core.STEP, None, "", next(op.seq)]
        op.live.append(a)
        leaf = ("netlink veth", a[core._INDEX], t + 13, t + 14, core.PROCESS, None, "", core._LEAF)
        b = ("createSpec", parent[core._INDEX], t + 11, t + 21, core.STEP, None, "", core._LEAF)
        op.live.append(b)  # another thread's leaf, started after a, ended before a's child
        op.live.append(leaf)
        a[core._END] = t + 20
    trace.end_operation(op, 204)
    op.live.append(("setupIpcDirs", 0, op.mono + 1, op.mono + 2, core.STEP, None, "", core._LEAF))  # after the end
    spans = recorder[-1].spans
    assert [(s.name, spans[s.parent].name if s.parent >= 0 else None) for s in spans] == [
        ("POST /containers/{name}/start", None), ("containerStart", "POST /containers/{name}/start"),
        ("allocateNetwork", "containerStart"), ("createSpec", "containerStart"), ("netlink veth", "allocateNetwork")]


def test_ops_ended_in_the_loop_reach_the_sinks_in_one_batch() -> None:
    batches: list[list[core.Operation]] = []
    core.state.on, core.state.sinks = True, [batches.append]
    try:
        async def main() -> None:
            for _ in range(3):
                trace.end_operation(trace.begin_request("POST", "/x", ""), 200)
            assert batches == []  # queued
            await asyncio.sleep(core.FLUSH_DELAY + 0.1)
            assert [len(b) for b in batches] == [3]
            for _ in range(core.FLUSH_AT):
                trace.end_operation(trace.begin_request("POST", "/x", ""), 200)
            assert [len(b) for b in batches] == [3]  # not inside the callback that ended them
            await asyncio.sleep(0)
            assert [len(b) for b in batches] == [3, core.FLUSH_AT]  # a full batch right after it

        asyncio.run(main())
        core.flush()
    finally:
        core.state.on, core.state.sinks = False, []
    assert core._flusher[0] is None and not core._finished


def test_step_histograms_of_a_batch_are_those_of_each_operation(recorder: list[core.Operation]) -> None:
    """A batch is counted at once (sorted, a bisection per bucket): the same buckets, sum and
    count as one operation at a time, still-open spans left out."""
    import random

    from berth.trace import metrics

    rnd = random.Random(15)

    def op(i: int) -> core.Operation:
        o = core.Operation.__new__(core.Operation)
        durations = [rnd.choice([0, 100_000, 250_000, 10**9, 10**10, 10**11]) + rnd.randint(-1, 1)
                     for _ in range(3)]
        ends = [100 + max(d, 0) for d in durations]
        if i % 5 == 0:
            ends[2] = 0  # still open when the operation ended
        o.columns = (("POST /batch", "batchStep", "batch prog"), (-1, 0, 1), (100, 100, 100), tuple(ends),
                     (core.REQUEST, core.STEP, core.PROCESS),
                     ({"http.request.method": "POST", "http.route": "/batch"}, None, None), ("", "", ""), (0, 1, 2))
        return o

    ops = [op(i) for i in range(200)]
    metrics.observe_operations(ops)
    batch = [[*h[0]] + h[1:] for h in (metrics.request_seconds.series[("POST", "/batch")],
                                       metrics.step_seconds.series[("batchStep",)],
                                       metrics.process_seconds.series[("batch prog",)])]
    for o in ops:
        metrics.observe_operations([o])
    both = [[*h[0]] + h[1:] for h in (metrics.request_seconds.series[("POST", "/batch")],
                                      metrics.step_seconds.series[("batchStep",)],
                                      metrics.process_seconds.series[("batch prog",)])]
    assert both == [[2 * v for v in b] for b in batch]
    assert batch[2][-1] == 160  # the open ones left out


def _compiler_and_headers() -> bool:
    import shutil
    import sysconfig

    return bool(shutil.which("cc")) and os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))


def test_the_c_step_wrapper_is_built_where_it_can_be() -> None:
    """scripts/install-deps builds src/berth/trace/_speedups.c when a compiler and Python's
    headers are there; the Python wrapper stands in only where they are not."""
    if not _compiler_and_headers() or os.environ.get("BERTH_NO_EXTENSIONS"):
        pytest.skip("no compiler or headers here: the Python wrapper is the one")
    from berth.trace import _speedups

    assert core._CStep is _speedups.Step


def _steps_of_both_wrappers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The same steps decorated by the C wrapper and by the Python one."""
    if core._CStep is None:
        pytest.skip("the C step wrapper is not built here")
    made = []
    for c_step in (core._CStep, None):
        monkeypatch.setattr(core, "_CStep", c_step)

        @trace.traced("leafStep", leaf=True)
        def leaf(a: int, b: int = 2, *rest: int, k: int = 3, **more: int) -> tuple[Any, ...]:
            """The leaf's own doc."""
            return a, b, rest, k, more

        @trace.traced("failingLeaf", leaf=True)
        def failing_leaf() -> None:
            raise KeyError("x")

        @trace.traced("netlink veth", kind=trace.PROCESS, leaf=True)
        def program() -> int:
            return 7

        @trace.traced("parentStep")
        def parent(fail: bool) -> int:
            leaf(1)
            program()
            with trace.step("block"):
                pass
            if fail:
                failing_leaf()
            return 5

        class Store:
            @trace.traced("Register", leaf=True)
            def register(self, x: int) -> tuple[Store, int]:
                return self, x

        @trace.traced("containerCreate", action="create", count_errors=True)
        async def timed_parent(fail: bool) -> int:  # the Python wrapper's, in both
            await asyncio.sleep(0)
            leaf(1)
            if fail:
                raise OSError("no")
            return 6

        made.append((leaf, failing_leaf, parent, Store, timed_parent))
    assert type(made[0][0]) is not type(made[1][0])  # C, then Python
    return made


def test_the_c_and_python_step_wrappers_record_the_same(recorder: list[core.Operation],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    both = _steps_of_both_wrappers(monkeypatch)
    seen, actions = [], []
    core.state.action_sink = actions.append
    for leaf, failing_leaf, parent, store_type, timed_parent in both:
        assert leaf.__name__ == "leaf" and leaf.__doc__ == "The leaf's own doc." and leaf.__wrapped__ is not None
        assert str(inspect.signature(leaf)) == "(a: 'int', b: 'int' = 2, *rest: 'int', k: 'int' = 3, **more: 'int') -> 'tuple[Any, ...]'"
        assert leaf(1) == (1, 2, (), 3, {})  # off: passed through
        op = trace.begin_request("POST", "/containers/create", "1.41")
        assert op is not None
        assert leaf(1, 4, 5, 6, k=7, z=8) == (1, 4, (5, 6), 7, {"z": 8})
        assert parent(False) == 5
        with pytest.raises(KeyError):
            parent(True)
        with pytest.raises(KeyError):
            failing_leaf()
        store = store_type()
        assert store.register(9) == (store, 9)  # a method, bound as a function is
        assert store_type.register(store, 10) == (store, 10)

        async def in_a_task(timed_parent: Any, op: core.Operation) -> None:
            assert await timed_parent(False) == 6
            with pytest.raises(OSError):
                await timed_parent(True)
            assert trace.current_operation() is op

        asyncio.run(in_a_task(timed_parent, op))  # a copy of this context: its cursor too
        assert trace.current_operation() is op  # the context's span is the root again
        trace.end_operation(op, 201)
        leaf(2)  # after the end: nothing recorded
        core.flush()
        spans = recorder[-1].spans
        seen.append([(s.name, spans[s.parent].name if s.parent >= 0 else None, s.kind, s.attrs, s.error)
                     for s in spans])
        assert all(0 < s.start <= s.end for s in spans[1:])
    assert seen[0] == seen[1]
    assert seen[0][1:] == [
        ("leafStep", "POST /containers/create", "step", None, ""),
        ("parentStep", "POST /containers/create", "step", None, ""),
        ("leafStep", "parentStep", "step", None, ""),
        ("netlink veth", "parentStep", "process", None, ""),
        ("block", "parentStep", "step", None, ""),
        ("parentStep", "POST /containers/create", "step", None, "KeyError"),
        ("leafStep", "parentStep", "step", None, ""),
        ("netlink veth", "parentStep", "process", None, ""),
        ("block", "parentStep", "step", None, ""),
        ("failingLeaf", "parentStep", "step", None, "KeyError"),
        ("failingLeaf", "POST /containers/create", "step", None, "KeyError"),
        ("Register", "POST /containers/create", "step", None, ""),
        ("Register", "POST /containers/create", "step", None, ""),
        ("containerCreate", "POST /containers/create", "step", None, ""),
        ("leafStep", "containerCreate", "step", None, ""),
        ("containerCreate", "POST /containers/create", "step", None, "OSError"),
        ("leafStep", "containerCreate", "step", None, ""),
    ]
    assert [a[:2] for a in actions] == [("container", "create")] * 4  # twice each, errors counted
    assert all(isinstance(a[2], int) and a[2] > 0 for a in actions)


def test_the_c_step_wrapper_times_with_perf_counter(recorder: list[core.Operation],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Its clock is the one the Python side reads (a span it times nests in one timed in
    Python, in a thread of the I/O pool too)."""
    leaf = _steps_of_both_wrappers(monkeypatch)[0][0]

    def in_thread() -> None:
        with trace.step("outerInThread"):
            leaf(1)

    op = trace.begin_request("POST", "/x", "")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(contextvars.copy_context().run, in_thread).result()
    trace.end_operation(op, 200)
    core.flush()
    outer, inner = recorder[-1].spans[1:]
    assert (outer.name, inner.name, recorder[-1].spans[inner.parent].name) == ("outerInThread", "leafStep", "outerInThread")
    assert outer.start <= inner.start <= inner.end <= outer.end


def test_the_c_and_python_span_counts_agree() -> None:
    """metrics.count_spans (C when built) counts as metrics._count_spans: the same buckets
    (a duration on a bound goes to that bound's bucket), sums and counts, open spans left
    out, a series that two spans share (GetImage twice) counted for both."""
    import random

    from berth.trace import metrics

    if metrics.count_spans is metrics._count_spans:
        pytest.skip("the C counter is not built here")
    rnd = random.Random(16)
    bounds = tuple(round(b * 1e9) for b in metrics.STEP_BUCKETS)
    rows = []
    for _ in range(300):
        starts = tuple(rnd.randrange(10**12) for _ in range(5))
        ends = tuple(s + rnd.choice([*bounds, 0, 1, -5, 10**12, rnd.randrange(10**10)]) for s in starts)
        rows.append(((), (), starts, ends, (), (), (), ()))
    results = []
    for count in (metrics.count_spans, metrics._count_spans):
        hs = [[[0] * (len(bounds) + 1), 7, 1] for _ in range(4)]
        count(rows, [hs[0], hs[1], hs[2], hs[1], hs[3]], bounds)
        count([], hs[:0], bounds)
        results.append(hs)
    assert results[0] == results[1]
    assert results[0][1][2] > 300  # two spans' worth
    many = [[[0] * (len(bounds) + 1), 0, 0] for _ in range(2)]
    wide = ((), (), tuple(range(600)), tuple(range(1, 601)), (), (), (), ())  # a pull of many layers
    metrics.count_spans([wide], [many[i % 2] for i in range(600)], bounds)
    assert [h[1:] for h in many] == [[300, 300], [300, 300]]
    with pytest.raises(ValueError):
        metrics.count_spans(rows, [[[0] * (len(bounds) + 1), 0, 0]], bounds)  # five spans, one series


def test_the_c_freeze_is_zip_longest_and_untracks_names_and_times() -> None:
    import gc
    import itertools

    if core._c_freeze is None:
        pytest.skip("the C freeze is not built here")
    spans: list[Any] = [["POST /x", -1, 10, 20, core.REQUEST, {"a": 1}, "", 0],
                        ("leafStep", 0, 11, 12), ("failed", 0, 12, 13, core.STEP, None, "KeyError", core._LEAF),
                        ["parent", 0, 13, 0, core.STEP, None, "", 1]]
    columns = core._c_freeze(spans, 8)
    assert columns == tuple(itertools.zip_longest(*spans))
    tracked = [gc.is_tracked(c) for c in columns]
    assert tracked == [False, False, False, False, False, True, False, False]  # attrs hold a dict
    assert core._c_freeze([], 8) == ((),) * 8
    with pytest.raises(ValueError):
        core._c_freeze([(1,) * 9], 8)
