#!/usr/bin/env python3
"""What tracing and metrics cost (issue 15): three berthd side by side, asked in turn.

    sudo python3 bench/trace_cost.py [--base main] [--n 300] [--runs 60] [--block 20]
    sudo python3 bench/trace_cost.py --toggle [--rounds 100] [--block 20] [--port 15690] [--creates-only]
    sudo python3 bench/trace_cost.py --instructions [--n 100] [--on metrics]
    python3 bench/trace_cost.py --inproc

- `base`: this repository's `--base` revision (default `main`), exported with `git archive`;
  `--base stripped`: this checkout with every @traced / @touches decorator giving back the
  bare function (no instrumentation at all, everything else the same);
- `off`:  this checkout, no --metrics-addr and no OTEL_* endpoint (every hook a flag test);
- `on`:   this checkout with `--metrics-addr 127.0.0.1:15690` and OTLP/HTTP export to a
  receiver the bench runs (the tests' receiver), i.e. spans, metrics and the page ring.

Each operation is asked of base, off, on, base, off, on, ... on one keep-alive connection
per daemon, so machine noise hits the three alike: `create` (POST /containers/create of
busybox `true`) and `run` (create + start + wait + delete, `--network none`, the
run-to-exit of bench/engine_bench.py), in rounds of `--block` creates (runs: a fifth of
that) per daemon. Prints p50/p95 per daemon and the ratios on/off and off/base of the p50s,
the CPU per operation of each daemon's cgroup over the whole run, and the paired per-round
CPU differences (median and quartiles: robust to the other processes of a shared machine).
Everything made is removed; the daemons are stopped by pid.

--toggle: one daemon with both on (bench/trace_toggle.py), tracing switched off and on by
SIGUSR1 after every block: on against off in one process and heap, paired by round. Also
the CPU of the daemon's event-loop thread alone (where the recording and the sinks run;
far less noisy than the I/O pool's disk work) and the cyclic GC's collections and time
per operation in each state.

--instructions: the same daemon under valgrind's callgrind, instructions counted per
create on and off: noise-free (two runs agree to about a percent), so a change to the
recorder can be judged in one run of about two minutes, where times on a shared 2-core
machine need many rounds; what the counts do not show is the cost of cold caches.
`--keep-profiles DIR` keeps each block's profile: `callgrind_annotate` on an on and an off
block shows which C functions the difference is in (the bytecode's own share included).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "src"))

from engine_bench import Client, pct, timed


def start(name: str, src: str, tmp: str, extra: list[str], env_extra: dict[str, str],
          program: list[str] | None = None, timeout: float = 30) -> tuple[subprocess.Popen[bytes], str]:
    d = os.path.join(tmp, name)
    os.makedirs(d)
    sock = os.path.join(d, "berth.sock")
    env = dict(os.environ, PYTHONPATH=src, **env_extra)
    for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        if k not in env_extra:
            env.pop(k, None)
    log_path = os.path.join(d, "berthd.log")
    with open(log_path, "ab") as log:
        p = subprocess.Popen([*(program or [sys.executable, "-m", "berth"]), "-H", f"unix://{sock}",
                              "--data-root", f"{d}/root", "--exec-root", f"{d}/exec", "--pidfile", f"{d}/exec/berthd.pid",
                              "--config-file", f"{d}/daemon.json", *extra],
                             stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=d)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            with open(log_path) as f:
                raise SystemExit(f"{name}: berthd exited: {f.read()[-2000:]}")
        try:
            if Client(sock).call("GET", "/_ping")[0] == 200:
                return p, sock
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{name}: berthd did not answer")


class Collector:
    """The OTLP receiver (tests/otlp_receiver.py) in a process of its own, counting spans:
    decoding them in a thread of this process would hold the GIL the client's timed
    requests need (the 5 ms switch interval) and put the collector's work in the figures."""

    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "otlp_receiver.py"), str(port)],
                                     stdout=subprocess.PIPE, start_new_session=True)
        assert self.proc.stdout is not None
        if not self.proc.stdout.readline():
            raise SystemExit("the OTLP receiver did not start")

    def count(self) -> int:
        from otlp_receiver import span_count

        return span_count(self.endpoint)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


# What the benches create: busybox `true`, without a network (the run-to-exit of engine_bench.py).
BODY = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}


def creator(sock: str, tar: str, made: list[str]) -> tuple[Client, Any]:
    """The busybox image loaded into the daemon at `sock`; a client, and a function making
    one container of `true` with `--network none` (its ID into `made`)."""
    subprocess.run(["docker", "-H", f"unix://{sock}", "load", "-i", tar], check=True, capture_output=True)
    c = Client(sock)

    def create() -> None:
        st, out = c.call("POST", "/containers/create", BODY)
        assert st == 201, out
        made.append(json.loads(out)["Id"])

    return c, create


# Containers the toggle bench lets pile up before removing them between two rounds: a
# daemon holding tens of thousands makes each full GC longer, noise that lands in either state.
KEEP_AT_MOST = 400


def remove_made(c: Client, made: list[str]) -> None:
    for cid in made:
        st, out = c.call("DELETE", f"/containers/{cid}?force=1&v=1")
        assert st == 204, out
    made.clear()
    time.sleep(0.05)


def stop(procs: list[subprocess.Popen[bytes]], made: dict[str, list[str]], timeout: float = 30) -> None:
    """Remove what the bench made (`made`: socket → container IDs), then stop the daemons by
    pid: SIGTERM to all, then wait for each (killed after `timeout`)."""
    for sock, ids in made.items():
        for cid in ids:
            try:
                Client(sock).call("DELETE", f"/containers/{cid}?force=1&v=1")
            except Exception:
                pass
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def remove_tree(tmp: str) -> None:
    """The bench's directory, after what is still mounted under it."""
    subprocess.run(["sh", "-c", f"grep ' {tmp}' /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r umount -l"])
    shutil.rmtree(tmp, ignore_errors=True)


def _task_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far, in ns, from the scheduler (schedstat: exact,
    not the sampled clock ticks of /proc/PID/stat). Threads that ended are lost, so the
    daemon's I/O pool is warmed up first."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def _loop_ms(pid: int) -> float:
    """CPU time of `pid`'s main thread (the daemon's event loop) so far, in ms (schedstat)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


CPUACCT = "/sys/fs/cgroup/cpuacct"


class CpuGroup:
    """A cgroup v1 cpuacct group per daemon (when the host has one): the exact CPU time of
    the daemon, every thread it had and the helpers it runs (conmon, runc, netavark), with
    the exporter child moved out to a group of its own."""

    def __init__(self, name: str) -> None:
        self.path = os.path.join(CPUACCT, f"berth-trace-cost-{os.getpid()}-{name}")
        os.makedirs(self.path, exist_ok=True)

    def add(self, pid: int) -> None:
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def ms(self) -> float:
        with open(os.path.join(self.path, "cpuacct.usage")) as f:
            return int(f.read()) / 1e6

    def remove(self) -> None:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                left = f.read().split()
            with open(os.path.join(CPUACCT, "cgroup.procs"), "w") as f:
                for pid in left:
                    try:
                        f.write(pid)
                        f.flush()
                    except OSError:
                        pass
            os.rmdir(self.path)
        except OSError:
            pass


def _cpu_ms(pid: int, exporter: bool = False) -> float:
    """CPU ms of `pid`'s threads, or (`exporter`) of its OTLP exporter child (schedstat)."""
    if not exporter:
        return _task_ns(pid) / 1e6
    total = 0
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(c) for c in f.read().split()]
    except OSError:
        kids = []
    for k in kids:
        try:
            with open(f"/proc/{k}/cmdline", "rb") as f:
                if b"berth.trace.exporter" in f.read():
                    total += _task_ns(k)
        except OSError:
            continue
    return total / 1e6


def inproc(rounds: int = 5, n: int = 2000) -> None:
    """What the daemon's own process does per create when on (no daemon needed): a
    create-shaped operation (the request, containerCreate, create and 18 more steps)
    recorded, packed for the exporter, put into the step histograms; and what a
    decorated step costs when off. Best of `rounds`, in microseconds."""
    import asyncio

    import msgspec

    from berth import trace
    from berth.trace import core, exporter, metrics

    names = ["GetImage", "verifyContainerSettings", "verifyNetworkingConfig", "adaptContainerSettings",
             "GetImage", "mergeAndVerifyConfig", "mergeAndVerifyLogConfig", "newContainer", "setSecurityOptions",
             "setRWLayer", "setHostConfig", "createContainerOSSpecificSettings",
             "updateContainerNetworkSettings", "ToDisk", "Register"]

    @trace.traced("leaf")
    def leaf() -> None:
        pass

    def make() -> core.Operation:
        op = trace.begin_request("POST", "/containers/create", "1.41")
        with trace.step("containerCreate"), trace.step("create"):
            for name in names:
                with trace.step(name):
                    pass
        trace.end_operation(op, 201)
        return op

    def best(fn: object, count: int) -> float:
        out = []
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(count):
                fn()  # type: ignore[operator]
            out.append((time.perf_counter() - t) / count * 1e6)
        return min(out)

    def bare() -> None:
        pass

    core.state.on = False
    off = best(leaf, n * 20) - best(bare, n * 20)

    @trace.traced("aleaf")
    async def aleaf() -> None:
        pass

    async def abare() -> None:
        pass

    async def async_cost() -> float:
        res = []
        for f in (aleaf, abare):
            out = []
            for _ in range(rounds):
                t = time.perf_counter()
                for _ in range(n * 10):
                    await f()
                out.append((time.perf_counter() - t) / (n * 10) * 1e6)
            res.append(min(out))
        return res[0] - res[1]

    aoff = asyncio.run(async_cost())
    got: list[core.Operation] = []
    core.state.on, core.state.sinks = True, [got.extend]
    record = best(make, n)  # no loop: each flushed (frozen) at its end
    got.clear()
    ops = [make() for _ in range(n)]
    enc = msgspec.msgpack.Encoder()
    it = iter(ops * rounds)
    pack = best(lambda: enc.encode([exporter.pack(next(it))]), n)
    batches = iter([ops[i:i + 20] for i in range(0, n, 20)] * rounds)  # drained in batches, as the daemon does
    hist = best(lambda: metrics._observe(next(batches)), n // 20) / 20
    core.state.on = False
    print(f"in-process, per create-shaped operation of {len(ops[0].spans)} spans (best of {rounds}):")
    print(f"  on:  record {record:.1f} us + pack for the exporter {pack:.1f} us + step histograms {hist:.1f} us"
          f" = {record + pack + hist:.1f} us")
    print(f"  off: {off * 1000:.0f} ns per decorated sync step, {aoff * 1000:.0f} ns per async one")
    on_us, off_us = asyncio.run(_create_shaped(rounds, n))
    print(f"  a create as the daemon runs it (async layers, a resume, a thread hop's context, every sink"
          f" and the drains): on {on_us:.1f} us, off {off_us:.1f} us, on-off {on_us - off_us:.1f} us")
    on_us, off_us = asyncio.run(_create_shaped(rounds, n, cold=True))
    print(f"  the same, each with the CPU's caches emptied before it (medians): on {on_us:.1f} us,"
          f" off {off_us:.1f} us, on-off {on_us - off_us:.1f} us")


async def _create_shaped(rounds: int, n: int, cold: bool = False) -> tuple[float, float]:
    """Microseconds per create-shaped request with everything on and with it off, best
    of `rounds` interleaved: the daemon's decorators as the create path has them (the
    request's operation, containerCreate timed as dockerd's action, two async steps, a
    resume of the task, the I/O pool hop's context, steps inside it), the real sinks
    (exporter packing, metrics drain, the page's ring), nothing else of a create."""
    import asyncio

    import msgspec

    from berth import trace
    from berth.trace import core, exporter, metrics, page

    def leaf(name: str) -> object:
        return trace.traced(name)(lambda *a: None)

    get_image = leaf("GetImage")
    checks = [leaf(x) for x in ("verifyContainerSettings", "verifyNetworkingConfig", "adaptContainerSettings")]
    merges = [leaf(x) for x in ("mergeAndVerifyConfig", "mergeAndVerifyLogConfig", "newContainer",
                                "setSecurityOptions")]
    on_disk_steps = [leaf(x) for x in ("setHostConfig", "createContainerOSSpecificSettings",
                                       "updateContainerNetworkSettings", "ToDisk")]
    register = leaf("Register")

    def on_disk() -> None:
        with trace.step("setRWLayer"):
            pass
        for f in on_disk_steps:
            f()  # type: ignore[operator]

    @trace.traced("create")
    async def create() -> None:
        get_image()  # type: ignore[operator]
        for f in merges:
            f()  # type: ignore[operator]
        trace.in_context(on_disk)()
        await asyncio.sleep(0)  # the task waits for the I/O pool: one resume through every layer
        register()  # type: ignore[operator]

    @trace.traced("containerCreate", action="create")
    async def container_create() -> None:
        get_image()  # type: ignore[operator]
        for f in checks:
            f()  # type: ignore[operator]
        await create()

    async def handler() -> None:  # api/server.py's middleware: a traced call when on
        if core.state.on:
            op = trace.begin_request("POST", "/containers/create", "1.41", "")
            try:
                await container_create()
            finally:
                trace.end_operation(op, 201, "")
        else:
            await container_create()

    enc = msgspec.msgpack.Encoder()
    sinks = [lambda ops: enc.encode([exporter.pack(op) for op in ops]), metrics.observe_operations]
    ring = page.Ring()
    if cold:
        # Each request with the CPU's caches emptied before it (8 MB copied), as in the
        # daemon, where the request's own work (aiohttp, msgspec, the daemon's code, the
        # I/O pool's thread) leaves the recorder cold: medians of single requests, on and
        # off in turn, the flushes' batches included (every FLUSH_AT: what they cost per request).
        src, dst = bytearray(8 << 20), bytearray(8 << 20)
        times: dict[bool, list[float]] = {True: [], False: []}
        answered: dict[bool, list[float]] = {True: [], False: []}
        for i in range(n * 2):
            on = i % 2 == 0
            core.state.on, core.state.sinks = on, sinks
            core.state.action_sink = metrics.queue_action if on else None
            core.state.keeper = ring.add if on else None
            dst[:] = src
            t = time.perf_counter()
            await handler()
            t1 = time.perf_counter()
            await asyncio.sleep(0)  # what waits for the loop after the answer
            times[on].append((time.perf_counter() - t) * 1e6)
            answered[on].append((t1 - t) * 1e6)
        trace.flush()
        core.state.on, core.state.sinks, core.state.action_sink, core.state.keeper = False, [], None, None
        print(f"  (cold, up to the answer: on {statistics.median(answered[True]):.1f} us,"
              f" off {statistics.median(answered[False]):.1f} us)")
        return statistics.median(times[True]), statistics.median(times[False])
    best = {True: 1e9, False: 1e9}
    for _ in range(rounds * 2):
        for on in (True, False):
            core.state.on, core.state.sinks = on, sinks
            core.state.action_sink = metrics.queue_action if on else None
            core.state.keeper = ring.add if on else None
            t = time.perf_counter()
            for _ in range(n):
                await handler()
            trace.flush()  # the rest of the batch (the recorder flushes every 0.25 s or 256 operations)
            best[on] = min(best[on], (time.perf_counter() - t) / n * 1e6)
    core.state.on, core.state.sinks, core.state.action_sink, core.state.keeper = False, [], None, None
    return best[True], best[False]


def toggled(a: argparse.Namespace) -> None:
    """One traced daemon (bench/trace_toggle.py), tracing switched on and off every block:
    on and off in the same process and heap, asked in turn; CPU per operation of its cgroup."""
    from berth.tools import busybox

    tmp = tempfile.mkdtemp(prefix="berth-trace-toggle-")
    gc_file = os.path.join(tmp, "gc.json")

    def gc_totals() -> dict[str, list[list[float]]]:
        """The daemon's GC collections and seconds so far, by state and generation."""
        try:
            os.unlink(gc_file)
        except FileNotFoundError:
            pass
        os.kill(proc.pid, signal.SIGUSR2)
        for _ in range(200):
            try:
                with open(gc_file) as f:
                    return json.load(f)  # type: ignore[no-any-return]
            except FileNotFoundError:
                time.sleep(0.01)
        return {"on": [[0, 0.0]] * 3, "off": [[0, 0.0]] * 3}
    receiver = Collector(a.port + 1)
    tar = os.path.join(tmp, "busybox.tar")
    with open(tar, "wb") as f:
        f.write(busybox.save_tar("busybox:latest"))
    otlp_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint} if a.on in ("both", "otlp") else {}
    proc, sock = start("toggle", os.path.join(ROOT, "src"), tmp,
                       ["--metrics-addr", f"127.0.0.1:{a.port}"] if a.on in ("both", "metrics") else [],
                       {**otlp_env, "TRACE_TOGGLE_GC": gc_file},
                       program=[sys.executable, os.path.join(HERE, "trace_toggle.py")])
    group = CpuGroup("toggle") if os.path.isdir(CPUACCT) else None
    groups = [group] if group is not None else []
    made: list[str] = []
    try:
        if group is not None:
            group.add(proc.pid)
        c, create = creator(sock, tar, made)

        def run() -> None:
            c.run_to_exit(BODY)

        for _ in range(50):
            create()
        for _ in range(5):
            run()
        if group is not None:  # the exporter child apart
            kids = subprocess.run(["sh", "-c", f"cat /proc/{proc.pid}/task/*/children"], capture_output=True,
                                  text=True).stdout.split()
            for k in kids:
                with open(f"/proc/{k}/cmdline", "rb") as f:
                    if b"berth.trace.exporter" in f.read():
                        groups.append(CpuGroup("toggle-exporter"))
                        groups[-1].add(int(k))

        def ms() -> float:
            return group.ms() if group is not None else _cpu_ms(proc.pid)

        load0 = os.getloadavg()
        on = True
        for op, rounds, block, fn in (("create", a.rounds, a.block, create),
                                      ("run", a.rounds // 2, max(1, a.block // 5), run))[:1 if a.creates_only else 2]:
            cpu: dict[bool, list[float]] = {True: [], False: []}
            gc0 = gc_totals()
            exp0 = groups[1].ms() if len(groups) > 1 else 0.0
            lat: dict[bool, list[float]] = {True: [], False: []}
            block_p50: dict[bool, list[float]] = {True: [], False: []}
            loop_cpu: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(rounds * 2):
                c0, l0 = ms(), _loop_ms(proc.pid)
                times = [timed(fn) for _ in range(block)]
                lat[on] += times
                block_p50[on].append(statistics.median(times))
                os.kill(proc.pid, signal.SIGUSR1)
                time.sleep(0.02)
                cpu[on].append((ms() - c0) / block)
                loop_cpu[on].append((_loop_ms(proc.pid) - l0) / block)
                on = not on
                if on and len(made) >= KEEP_AT_MOST:  # a round done: its containers go, between the blocks
                    remove_made(c, made)
            gc1 = gc_totals()
            time.sleep(0.3)  # the exporter child's last batch
            exp_ms = (groups[1].ms() - exp0) if len(groups) > 1 else 0.0
            pairs = list(zip(cpu[True], cpu[False], strict=False))
            d = sorted(x - y for x, y in pairs)
            p50 = {k: statistics.median(v) for k, v in lat.items()}
            med = statistics.median(d)
            print(f"{op:<7} p50 on {p50[True]:.2f} ms, off {p50[False]:.2f} ms (on/off {p50[True] / p50[False]:.3f});"
                  f" CPU per op on {statistics.median(cpu[True]):.3f} ms, off {statistics.median(cpu[False]):.3f} ms"
                  f" (medians; means {statistics.mean(cpu[True]):.3f}, {statistics.mean(cpu[False]):.3f})")
            print(f"        on-off paired: median {med:+.3f} ms [quartiles {pct(d, .25):+.3f} .. {pct(d, .75):+.3f}],"
                  f" mean {statistics.mean(d):+.3f} ms over {len(d)} rounds of {block}"
                  f" = {med / p50[False] * 100:+.2f}% of off's p50 (mean: {statistics.mean(d) / p50[False] * 100:+.2f}%)")
            # each off block against the mean of the on blocks either side: a drift (the
            # containers made meanwhile, the machine) cancels out
            on50, off50 = block_p50[True], block_p50[False]
            ratios = sorted((on50[i] + on50[i + 1]) / 2 / off50[i] for i in range(min(len(off50), len(on50) - 1)))
            print(f"        p50 on/off by block (each off block's p50 against the on blocks either side): median"
                  f" {statistics.median(ratios):.3f} [quartiles {pct(ratios, .25):.3f} .. {pct(ratios, .75):.3f}]")
            dl = sorted(x - y for x, y in zip(loop_cpu[True], loop_cpu[False], strict=False))
            print(f"        the event loop's thread alone: CPU per op off {statistics.median(loop_cpu[False]):.3f} ms,"
                  f" on-off paired median {statistics.median(dl):+.3f} ms [quartiles {pct(dl, .25):+.3f} .."
                  f" {pct(dl, .75):+.3f}], mean {statistics.mean(dl):+.3f} ms")
            n_ops = rounds * block
            if len(groups) > 1:
                print(f"        the exporter child (its own cgroup, not in the figures above): CPU per on op"
                      f" {exp_ms / n_ops:.3f} ms")
            print("        cyclic GC per op (collections gen0/1/2; thread CPU): " + "; ".join(
                f"{side} " + "/".join(f"{(gc1[side][g][0] - gc0[side][g][0]) / n_ops:.3f}" for g in range(3))
                + f" {sum(gc1[side][g][1] - gc0[side][g][1] for g in range(3)) / n_ops * 1000:.3f} ms"
                for side in ("on", "off")))
        load1 = os.getloadavg()
        print(f"load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end ({os.cpu_count()} CPUs);"
              f" spans received so far: {receiver.count()}")
    finally:
        stop([proc], {sock: made})
        receiver.close()
        for g in groups:
            g.remove()
        remove_tree(tmp)


def instructions(a: argparse.Namespace) -> None:
    """The instructions (and simulated cache misses) the daemon's process runs per create,
    on and off: one daemon with tracing switched by SIGUSR1 (bench/trace_toggle.py) under
    valgrind's callgrind, counting only while a block of creates runs (callgrind_control),
    on, off, on, off. Unlike time, the same on any machine and at any load, to within a
    percent: what a change to the recorder saves shows in one run. Tracing's batch (the
    flush) is in its block: the flush delay is made long and turning off flushes. Only the
    daemon's own process is counted (not conmon, runc, the exporter child)."""
    from berth.tools import busybox

    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    tmp = tempfile.mkdtemp(prefix="berth-trace-instr-")
    tar = os.path.join(tmp, "busybox.tar")
    with open(tar, "wb") as f:
        f.write(busybox.save_tar("busybox:latest"))
    out = os.path.join(tmp, "callgrind.out")
    proc, sock = start("instr", os.path.join(ROOT, "src"), tmp,
                       ["--metrics-addr", f"127.0.0.1:{a.port}"] if a.on in ("both", "metrics") else [],
                       {"TRACE_TOGGLE_FLUSH_DELAY": "600", **({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{a.port + 1}"}
                                                              if a.on in ("both", "otlp") else {})},
                       program=["valgrind", "--tool=callgrind", "--cache-sim=yes", "--instr-atstart=no",
                                f"--callgrind-out-file={out}", sys.executable, os.path.join(HERE, "trace_toggle.py")],
                       timeout=600)
    receiver = Collector(a.port + 1) if a.on in ("both", "otlp") else None
    made: list[str] = []
    try:
        _, create = creator(sock, tar, made)

        def control(*args: str) -> None:
            subprocess.run(["callgrind_control", *args, str(proc.pid)], check=True, capture_output=True)

        for _ in range(30):
            create()
        blocks = ("on", "off", "on", "off")
        for i, state in enumerate(blocks):
            time.sleep(0.5)
            control("-z")
            control("-i", "on")
            for _ in range(a.n):
                create()
            if state == "on":  # turning off flushes the block's batch: counted with it
                os.kill(proc.pid, signal.SIGUSR1)
                time.sleep(1.5)
            control("-i", "off")
            control("-d", f"block{i}")
            if state == "off":
                os.kill(proc.pid, signal.SIGUSR1)
                time.sleep(0.5)
        counts: dict[str, list[dict[str, int]]] = {"on": [], "off": []}
        for i, state in enumerate(blocks):
            (path,) = [p for p in os.listdir(tmp) if p.startswith("callgrind.out") and p.endswith(f".{i + 1}")]
            events: list[str] = []
            totals: list[int] = []
            with open(os.path.join(tmp, path)) as f:
                for line in f:
                    if line.startswith("events:"):
                        events = line.split()[1:]
                    elif line.startswith("totals:"):
                        totals = [int(x) for x in line.split()[1:]]
            counts[state].append(dict(zip(events, totals, strict=True)))
        for ev, what in (("Ir", "instructions"), ("I1mr", "L1 instruction misses"), ("D1mr", "L1 data read misses")):
            on = statistics.mean(x[ev] for x in counts["on"]) / a.n
            off = statistics.mean(x[ev] for x in counts["off"]) / a.n
            print(f"{what:<24} per create: on {on:,.0f}, off {off:,.0f}, on-off {on - off:+,.0f} ({(on - off) / off * 100:+.1f}%)"
                  f"  [blocks: on {', '.join(f'{x[ev] / a.n:,.0f}' for x in counts['on'])};"
                  f" off {', '.join(f'{x[ev] / a.n:,.0f}' for x in counts['off'])}]")
        print(f"(berthd's own process under callgrind, {a.n} creates per block, `{a.on}` on; simulated caches)")
        if a.keep_profiles:  # for callgrind_annotate: which functions the difference is in
            os.makedirs(a.keep_profiles, exist_ok=True)
            for i, state in enumerate(blocks):
                (path,) = [p for p in os.listdir(tmp) if p.startswith("callgrind.out") and p.endswith(f".{i + 1}")]
                shutil.copy(os.path.join(tmp, path), os.path.join(a.keep_profiles, f"block{i}-{state}.callgrind"))
    finally:
        stop([proc], {sock: made}, timeout=120)
        if receiver is not None:
            receiver.close()
        remove_tree(tmp)


def strip(core_py: str) -> None:
    """`--base stripped`: @traced and @touches give back the function itself, untouched."""
    with open(core_py) as f:
        text = f.read()
    for old, new in (("    def deco(fn: F) -> F:\n", "    def deco(fn: F) -> F:\n        return fn\n"),
                     ("def _touching(fn: F, container_of: Callable[[Any], Any] | None) -> F:\n",
                      "def _touching(fn: F, container_of: Callable[[Any], Any] | None) -> F:\n    return fn\n")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    with open(core_py, "w") as f:
        f.write(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="main",
                    help="a revision, or `stripped`: this checkout with @traced/@touches taken out")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--block", type=int, default=20, help="creates per daemon per round (runs: a fifth)")
    ap.add_argument("--on", default="both", choices=["both", "metrics", "otlp"],
                    help="what `on` turns on: --metrics-addr, OTLP export, or both")
    ap.add_argument("--inproc", action="store_true", help="only the in-process costs (no daemon, no root)")
    ap.add_argument("--toggle", action="store_true",
                    help="one traced daemon, tracing switched on/off every block (bench/trace_toggle.py)")
    ap.add_argument("--rounds", type=int, default=100, help="--toggle: on/off pairs of create blocks (runs: half)")
    ap.add_argument("--creates-only", action="store_true", help="--toggle: no run-to-exit blocks")
    ap.add_argument("--keep-profiles", metavar="DIR", default="",
                    help="with --instructions: keep each block's callgrind profile in DIR")
    ap.add_argument("--instructions", action="store_true",
                    help="instructions per create on and off, under valgrind's callgrind (--n creates per block)")
    ap.add_argument("--port", type=int, default=15690,
                    help="loopback port of `on`'s --metrics-addr; the OTLP receiver takes the next one")
    a = ap.parse_args()
    if a.inproc:
        inproc()
        return
    if a.toggle:
        toggled(a)
        return
    if a.instructions:
        instructions(a)
        return

    from berth.tools import busybox

    tmp = tempfile.mkdtemp(prefix="berth-trace-cost-")
    base_src = os.path.join(tmp, "base-src")
    os.makedirs(base_src)
    if a.base == "stripped":  # this checkout with every decorator taken out: no instrumentation at all
        subprocess.run(f"git -C {ROOT} archive HEAD src | tar -x -C {base_src}", shell=True, check=True)
        strip(os.path.join(base_src, "src", "berth", "trace", "core.py"))
    else:
        subprocess.run(f"git -C {ROOT} archive {a.base} src | tar -x -C {base_src}", shell=True, check=True)
    receiver = Collector(a.port + 1)
    tar = os.path.join(tmp, "busybox.tar")
    with open(tar, "wb") as f:
        f.write(busybox.save_tar("busybox:latest"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    groups: dict[str, CpuGroup] = {}
    socks: dict[str, str] = {}
    made: dict[str, list[str]] = {}
    try:
        for name, src, extra, env in (
                ("base", os.path.join(base_src, "src"), [], {}),
                ("off", os.path.join(ROOT, "src"), [], {}),
                ("on", os.path.join(ROOT, "src"),
                 ["--metrics-addr", f"127.0.0.1:{a.port}"] if a.on in ("both", "metrics") else [],
                 {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint} if a.on in ("both", "otlp") else {})):
            procs[name], socks[name] = start(name, src, tmp, extra, env)
            if os.path.isdir(CPUACCT):
                groups[name] = CpuGroup(name)
                groups[name].add(procs[name].pid)
            subprocess.run(["docker", "-H", f"unix://{socks[name]}", "load", "-i", tar], check=True,
                           capture_output=True)
            made[name] = []
        clients = {n: Client(s) for n, s in socks.items()}

        def create(side: str) -> None:
            st, out = clients[side].call("POST", "/containers/create", BODY)
            assert st == 201, out
            made[side].append(json.loads(out)["Id"])

        def run(side: str) -> None:
            clients[side].run_to_exit(BODY)

        for side in clients:  # warm up: first imports, caches, the first full GC of a grown heap
            for _ in range(50):
                create(side)
            for _ in range(5):
                run(side)
        exp = subprocess.run(["sh", "-c", f"cat /proc/{procs['on'].pid}/task/*/children"], capture_output=True,
                             text=True).stdout.split()
        for k in exp:  # the exporter's CPU is counted apart
            try:
                with open(f"/proc/{k}/cmdline", "rb") as f:
                    if b"berth.trace.exporter" in f.read() and os.path.isdir(CPUACCT):
                        groups["exporter"] = CpuGroup("exporter")
                        groups["exporter"].add(int(k))
            except OSError:
                pass
        results: dict[str, dict[str, list[float]]] = {"create": {s: [] for s in clients},
                                                       "run": {s: [] for s in clients}}
        cpu: dict[str, dict[str, float]] = {"create": {}, "run": {}}
        # CPU per operation of each block of `block` operations, per side, round by round
        blocks: dict[str, dict[str, list[float]]] = {"create": {s: [] for s in clients},
                                                      "run": {s: [] for s in clients}}
        sides = list(clients)

        def usage() -> dict[str, float]:
            if groups:
                return {k: g.ms() for k, g in groups.items()}
            out = {s: _cpu_ms(procs[s].pid) for s in sides}
            out["exporter"] = _cpu_ms(procs["on"].pid, exporter=True)
            return out

        def side_ms(side: str) -> float:
            return groups[side].ms() if groups else _cpu_ms(procs[side].pid)

        load0 = os.getloadavg()
        for op, count, block, fn in (("create", a.n, a.block, create), ("run", a.runs, max(1, a.block // 5), run)):
            before = usage()
            for r in range(0, count, block):
                k = min(block, count - r)
                rnd = r // block
                for side in sides[rnd % 3:] + sides[:rnd % 3]:  # each daemon first in turn
                    c0 = side_ms(side)
                    for _ in range(k):
                        results[op][side].append(timed(lambda fn=fn, side=side: fn(side)))
                    blocks[op][side].append((side_ms(side) - c0) / k)
            time.sleep(1.5)  # the metrics' batch and the exporter's queue are done
            after = usage()
            for s in [*sides, "exporter"]:
                cpu[op][s] = (after.get(s, 0) - before.get(s, 0)) / count
        load1 = os.getloadavg()
        print(f"{'op':<8}" + "".join(f"{s + ' p50':>11}{s + ' p95':>11}" for s in clients)
              + f"{'on/off':>9}{'off/base':>10}")
        for op, r in results.items():
            p50 = {s: statistics.median(v) for s, v in r.items()}
            print(f"{op:<8}" + "".join(f"{p50[s]:>11.2f}{pct(r[s], .95):>11.2f}" for s in clients)
                  + f"{p50['on'] / p50['off']:>9.3f}{p50['off'] / p50['base']:>10.3f}")
        print("CPU ms per operation: " + ("each daemon's cgroup (the daemon, conmon, runc, netavark; not the "
                                          "containers)" if groups else "each daemon's threads (schedstat)")
              + ", and `on`'s OTLP exporter:")
        for op, c in cpu.items():
            print(f"{op:<8}" + "".join(f"{s + ' ' + format(c[s], '.3f'):>16}" for s in [*sides, "exporter"])
                  + f"   on-off {c['on'] - c['off']:+.3f} ms, off-base {c['off'] - c['base']:+.3f} ms")
        print("CPU ms per operation, paired by round (the blocks of each round run back to back): median"
              " [quartiles] of the differences, and on-off as a share of off's p50 latency:")
        for op, bl in blocks.items():
            p50_off = statistics.median(results[op]["off"])
            for x, y in (("on", "off"), ("off", "base")):
                d = sorted(p - q for p, q in zip(bl[x], bl[y], strict=True))
                med = statistics.median(d)
                print(f"{op:<8}{x}-{y}: {med:+.3f} ms [{pct(d, .25):+.3f} .. {pct(d, .75):+.3f}] over {len(d)} rounds"
                      f" = {med / p50_off * 100:+.1f}% of off's p50 {p50_off:.2f} ms")
        print(f"load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end ({os.cpu_count()} CPUs)")
        print(f"(n={a.n} creates, {a.runs} runs per daemon; spans received: {receiver.count()})")
    finally:
        stop(list(procs.values()), {socks[side]: ids for side, ids in made.items() if side in socks})
        receiver.close()
        for g in groups.values():
            g.remove()
        remove_tree(tmp)


if __name__ == "__main__":
    main()
