"""berth.trace: the recorder (off is a no-op, nesting across tasks and threads, an
operation's late children dropped), OTLP configuration, the page and the metrics sinks."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
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
    core.state.action_sink = lambda kind, action, secs: seen.append((kind, action))

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
    metrics.observe_action("network", "connect", 0.01)
    metrics.observe_action("image", "history", 0.01)
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
