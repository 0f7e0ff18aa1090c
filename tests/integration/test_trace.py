"""Issue 15: the create path made visible. A berthd of its own with --metrics-addr and an
OTLP endpoint (the test's receiver): spans of a create and a start with dockerd's step
names, nesting and order; dockerd's metric names scraped by a real Prometheus; the
operations page loaded in a headless Chromium; no -e value anywhere.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from berthd_harness import Berthd, start_berthd, stop_berthd
from otlp_receiver import OTLPReceiver, ReceivedSpan

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root")

SECRET = "s3cr3t-" + uuid.uuid4().hex[:8]

# dockerd's create path (create-path-spec §2, §3, §4.7): the children of containerCreate
# and of daemon.create, in this order.
CREATE_SEQ = ["verifyContainerSettings", "verifyNetworkingConfig", "adaptContainerSettings", "create"]
DAEMON_CREATE_SEQ = ["GetImage", "mergeAndVerifyConfig", "mergeAndVerifyLogConfig", "newContainer",
                     "setSecurityOptions", "setRWLayer", "setHostConfig", "createContainerOSSpecificSettings",
                     "updateContainerNetworkSettings", "ToDisk", "Register"]
# containerStart (§10.2): networking, the bundle, the runtime; allocateNetwork runs beside the bundle.
# Berth mounts the rootfs in the bundle's thread hop, after initializeNetworking (dockerd's
# conditionalMountOnStart comes first).
START_SEQ = ["initializeNetworking", "Mount", "writeNetworkFiles", "createSpec", "StartLogger", "conmon (runc create)",
             "runc start", "ToDisk"]


def free_port(lo: int = 15600, hi: int = 15699) -> int:
    """A free loopback port of this test's range."""
    for port in range(lo, hi):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in range")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    r = OTLPReceiver(port=free_port(15600, 15620))
    yield r
    r.close()


@pytest.fixture(scope="module")
def traced(receiver: OTLPReceiver, busybox_tar: str) -> Iterator[tuple[Berthd, str]]:
    port = free_port(15620, 15650)
    addr = f"127.0.0.1:{port}"
    b = start_berthd(extra=["--metrics-addr", addr],
                     extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    try:
        b.docker("load", "-i", busybox_tar)
        yield b, addr
    finally:
        subprocess.run(["docker", "rm", "-f", *_names(b)], env=b.env(), capture_output=True)
        stop_berthd(b)


def _names(b: Berthd) -> list[str]:
    r = subprocess.run(["docker", "ps", "-aq"], env=b.env(), capture_output=True, text=True)
    return r.stdout.split() or ["none"]


@pytest.fixture(scope="module")
def run_one(traced: tuple[Berthd, str]) -> dict[str, str]:
    """One `docker create` + `docker start` of a real container with an -e secret, on the bridge."""
    b, _ = traced
    name = "tr-" + uuid.uuid4().hex[:8]
    cid = b.docker("create", "--name", name, "-e", f"TOKEN={SECRET}", "busybox", "sh", "-c",
                   "sleep 0.2").stdout.decode().strip()
    b.docker("start", name)
    b.docker("wait", name)
    return {"name": name, "id": cid}


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.parent_id == parent.span_id and s.trace_id == parent.trace_id),
                  key=lambda s: s.start)


def _request(spans: list[ReceivedSpan], name: str, cid: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name and s.attrs.get("container.id") == cid]
    assert len(found) == 1, [(s.name, s.attrs) for s in spans if not s.parent_id]
    return found[0]


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    assert [s.name for s in spans].count(name) == 1, [s.name for s in spans]
    return next(s for s in spans if s.name == name)


def test_create_and_start_spans(traced: tuple[Berthd, str], receiver: OTLPReceiver, run_one: dict[str, str]) -> None:
    cid = run_one["id"]
    spans = receiver.wait_for(lambda ss: any(s.name == "POST /containers/{name}/start"
                                             and s.attrs.get("container.id") == cid for s in ss)
                              and any(s.name == "ToDisk" for s in ss))
    time.sleep(0.5)  # the rest of the batch
    spans = receiver.snapshot()

    # The request span: method, route template, status, API version; one trace per request.
    req = _request(spans, "POST /containers/create", cid)
    assert req.parent_id == "" and req.kind == 2  # SERVER
    assert req.attrs["http.request.method"] == "POST"
    assert req.attrs["http.route"] == "/containers/create"
    assert req.attrs["http.response.status_code"] == 201
    assert re.fullmatch(r"1\.\d+", req.attrs["docker.api.version"])
    assert req.resource.get("service.name") == "berthd"

    top = _children(spans, req)
    assert [s.name for s in top] == ["containerCreate"]
    cc = _children(spans, top[0])
    # GetImage first: containerCreate looks the image up for its platform, as dockerd does.
    assert [s.name for s in cc] == ["GetImage", *CREATE_SEQ]
    dc = _children(spans, cc[-1])
    assert [s.name for s in dc] == DAEMON_CREATE_SEQ
    for parent, kids in ((top[0], cc), (cc[-1], dc)):
        for k in kids:  # nested in time too
            assert parent.start <= k.start <= k.end <= parent.end, (parent.name, k.name)

    start_req = _request(spans, "POST /containers/{name}/start", cid)
    assert start_req.attrs["http.route"] == "/containers/{name}/start"
    assert start_req.attrs["http.response.status_code"] == 204
    cs = _one(_children(spans, start_req), "ContainerStart")
    inner = _one(_children(spans, cs), "containerStart")
    names = [s.name for s in _children(spans, inner)]
    assert [n for n in names if n in START_SEQ] == START_SEQ, names
    assert "allocateNetwork" in names
    alloc = next(s for s in _children(spans, inner) if s.name == "allocateNetwork")
    # netavark is a program of its own, under the step that ran it; on a bridge this daemon
    # has set up already, a container publishing no port gets its veth from Berth's own step
    # (when that step finds it cannot, netavark does it all after it: both spans, in order)
    nv = [s.name for s in _children(spans, alloc) if s.name in ("netavark setup", "netlink veth")]
    assert nv in (["netavark setup"], ["netlink veth"], ["netlink veth", "netavark setup"]), nv
    if nv[-1] == "netavark setup":
        setup = next(s for s in _children(spans, alloc) if s.name == "netavark setup")
        assert setup.kind == 3  # CLIENT
        assert setup.attrs["process.executable.name"] == "netavark"
    runc = next(s for s in _children(spans, inner) if s.name == "runc start")
    assert runc.attrs["berth.kind"] == "process"

    # No -e value, in any span of any request.
    for s in spans:
        assert SECRET not in repr(s), s


def test_traceparent_joins_the_client_trace(traced: tuple[Berthd, str], receiver: OTLPReceiver) -> None:
    b, _ = traced
    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    s = socket.socket(socket.AF_UNIX)
    s.connect(b.sock)
    s.sendall(f"POST /v1.41/containers/nope-{parent}/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
              f"traceparent: 00-{trace_id}-{parent}-01\r\nConnection: close\r\n\r\n".encode())
    assert b" 404 " in s.recv(200)
    s.close()
    spans = receiver.wait_for(lambda ss: any(x.trace_id == trace_id for x in ss))
    req = next(x for x in spans if x.trace_id == trace_id and x.name == "POST /containers/{name}/stop")
    assert req.parent_id == parent
    assert req.attrs["http.response.status_code"] == 404
    assert req.attrs["docker.api.version"] == "1.41"


# dockerd 20.10.24's own series (read from a reference dockerd --experimental --metrics-addr).
DOCKERD_METRICS = {
    "engine_daemon_container_actions_seconds_bucket": {"action", "le"},
    "engine_daemon_container_actions_seconds_count": {"action"},
    "engine_daemon_container_states_containers": {"state"},
    "engine_daemon_engine_info": {"architecture", "commit", "daemon_id", "graphdriver", "kernel", "os",
                                  "os_type", "os_version", "version"},
    "engine_daemon_engine_cpus_cpus": set(),
    "engine_daemon_engine_memory_bytes": set(),
    "engine_daemon_events_total": set(),
    "engine_daemon_events_subscribers_total": set(),
    "engine_daemon_health_checks_total": set(),
    "engine_daemon_health_checks_failed_total": set(),
    "engine_daemon_network_actions_seconds_count": {"action"},
    "process_resident_memory_bytes": set(),
    "process_cpu_seconds_total": set(),
}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def test_metrics_text(traced: tuple[Berthd, str], run_one: dict[str, str]) -> None:
    b, addr = traced
    b.docker("history", "busybox")
    text = _get(f"http://{addr}/metrics").decode()
    series: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        assert m, line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        series.setdefault(m.group(1), []).append(labels)
    for name, labels in DOCKERD_METRICS.items():
        assert name in series, name
        assert set(series[name][0]) == labels, (name, series[name][0])
    actions = {s["action"] for s in series["engine_daemon_container_actions_seconds_count"]}
    assert actions == {"start", "changes", "commit", "create", "delete"}
    assert {s["state"] for s in series["engine_daemon_container_states_containers"]} == {"paused", "running",
                                                                                           "stopped"}
    assert "allocate" in {s["action"] for s in series["engine_daemon_network_actions_seconds_count"]}
    assert "history" in {s["action"] for s in series["engine_daemon_image_actions_seconds_count"]}
    steps = {s["step"] for s in series["berth_step_seconds_count"]}
    assert set(DAEMON_CREATE_SEQ) <= steps and {"containerStart", "createSpec"} <= steps
    programs = {s["program"] for s in series["berth_process_seconds_count"]}
    assert {"runc start", "conmon (runc create)"} <= programs
    # the bridge endpoint: netavark's, or Berth's own on a bridge set up already (no -p)
    assert "netavark setup" in programs or "netlink veth" in steps
    assert "# TYPE engine_daemon_container_actions_seconds histogram" in text
    assert "_created" not in text
    assert SECRET not in text


def test_prometheus_scrapes_berthd(traced: tuple[Berthd, str], run_one: dict[str, str],
                                   tmp_path: os.PathLike[str]) -> None:
    """Debian's prometheus on loopback scrapes --metrics-addr; its HTTP API answers with
    dockerd's metric names and Berth's step histograms."""
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.skip("prometheus is not installed (scripts/install-deps with BERTH_TEST_DEPS=1)")
    _, addr = traced
    port = free_port(15650, 15680)
    cfg = os.path.join(tmp_path, "p.yml")
    with open(cfg, "w") as f:
        f.write(f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                f"scrape_configs:\n  - job_name: berthd\n    static_configs:\n      - targets: ['{addr}']\n")
    log_path = os.path.join(tmp_path, "prometheus.log")
    with open(log_path, "wb") as log:
        p = subprocess.Popen([prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path}/data",
                              f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def query(q: str) -> list[dict[str, object]]:
            body = _get(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q}))
            return json.loads(body)["data"]["result"]

        deadline = time.time() + 60
        result: list[dict[str, object]] = []
        while time.time() < deadline:
            assert p.poll() is None, Path(log_path).read_text()
            try:
                result = query('engine_daemon_container_actions_seconds_count{job="berthd"}')
                if result:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert {r["metric"]["action"] for r in result} == {"start", "changes", "commit", "create", "delete"}  # type: ignore[index]
        create = next(r for r in result if r["metric"]["action"] == "create")  # type: ignore[index]
        assert float(create["value"][1]) >= 2  # type: ignore[index]  # Update(0) + our create
        up = query('up{job="berthd"}')
        assert up and up[0]["value"][1] == "1"  # type: ignore[index]
        info = query("engine_daemon_engine_info")
        assert info[0]["metric"]["os_type"] == "linux" and info[0]["metric"]["version"]  # type: ignore[index]
        states = query("sum(engine_daemon_container_states_containers)")
        assert float(states[0]["value"][1]) >= 1  # type: ignore[index]
        steps = query('berth_step_seconds_count{step="setRWLayer"}')
        assert steps and float(steps[0]["value"][1]) >= 1  # type: ignore[index]
        p50 = query('histogram_quantile(0.5, berth_step_seconds_bucket{step="ToDisk"})')
        assert p50 and 0 < float(p50[0]["value"][1]) < 10  # type: ignore[index]  # the step's p50 in seconds
    finally:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _listening_inodes() -> set[str]:
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":  # LISTEN
                    out.add(cols[9])
    return out


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def test_nothing_listens_without_metrics_addr(berthd: Berthd, traced: tuple[Berthd, str]) -> None:
    assert not _socket_inodes(berthd.proc.pid) & _listening_inodes()
    b, _ = traced  # the check sees a listener when there is one
    assert _socket_inodes(b.proc.pid) & _listening_inodes()


def _chromium(args: list[str], profile: str) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("chromium")
    assert exe is not None
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args],
        capture_output=True, timeout=120)


def _sections(dom: str) -> list[tuple[str, str]]:
    """(operation name, its HTML) of each drawn operation, newest first."""
    parts = dom.split('<section class="op"')[1:]
    out = []
    for p in parts:
        m = re.search(r'data-name="([^"]*)"', p)
        assert m
        out.append((m.group(1).replace("&amp;", "&"), p.split("</section>")[0]))
    return out


def _steps(section: str) -> list[str]:
    return [s.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
            for s in re.findall(r'<g class="[^"]*" data-step="([^"]*)"', section)]


def test_page_in_chromium(traced: tuple[Berthd, str], run_one: dict[str, str], tmp_path: os.PathLike[str]) -> None:
    """The operations page, as a person sees it: headless Chromium loads it after a
    create and a start; each is drawn with dockerd's steps in the seed's order."""
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (scripts/install-deps with BERTH_TEST_DEPS=1)")
    _, addr = traced
    cid = run_one["id"]
    url = f"http://{addr}/"
    r = _chromium(["--dump-dom", url], tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    dom = r.stdout.decode()
    assert "berthd: the last" in dom, r.stderr.decode()[-2000:]
    ops = [(name, html) for name, html in _sections(dom) if f'href="/containers/{cid}"' in html]
    names = [n for n, _ in ops]
    assert "POST /containers/create" in names and "POST /containers/{name}/start" in names, names

    create = _steps(dict(ops)["POST /containers/create"])
    assert create[:3] == ["POST /containers/create", "containerCreate", "GetImage"]
    seq = CREATE_SEQ + DAEMON_CREATE_SEQ
    assert [s for s in create[2:] if s in seq] == ["GetImage", *seq[:3], "create", *DAEMON_CREATE_SEQ]
    start = _steps(dict(ops)["POST /containers/{name}/start"])
    assert [s for s in start if s in START_SEQ] == START_SEQ, start
    assert "netavark setup" in start or "netlink veth" in start  # the bridge endpoint's maker
    # the slowest step is marked, and said in words
    assert dom.count("◀ slowest") >= 2 and 'class="slow"' in dom
    # p50 / p90 per step over the ring
    table = dom.split('<table id="steps">')[1].split("</table>")[0]
    for step in ("setRWLayer", "ToDisk", "createSpec", "runc start"):
        assert f"<td>{step}</td>" in table
    assert SECRET not in dom

    # request → container → every request that touched it
    ctr_page = _get(f"http://{addr}/containers/{cid}").decode()
    assert {"POST /containers/create", "POST /containers/{name}/start"} <= {n for n, _ in _sections(ctr_page)}

    shot = os.path.join(tmp_path, "operations.png")
    r = _chromium([f"--screenshot={shot}", "--window-size=1400,2400", "--hide-scrollbars", url],
                  tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    assert os.path.getsize(shot) > 10_000, r.stderr.decode()[-2000:]
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot kept at {shot}")


def test_exec_stop_delete_spans(traced: tuple[Berthd, str], receiver: OTLPReceiver) -> None:
    b, _ = traced
    name = "tr-" + uuid.uuid4().hex[:8]
    cid = b.docker("run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "60").stdout.decode().strip()
    try:
        b.docker("exec", "-e", f"X={SECRET}", name, "true")
        b.docker("stop", "-t", "1", name)
    finally:
        b.docker("rm", "-f", name)
    spans = receiver.wait_for(lambda ss: any(s.name == "DELETE /containers/{name}"
                                             and s.attrs.get("container.id") == cid for s in ss))
    time.sleep(0.3)
    spans = receiver.snapshot()

    def tree(req_name: str) -> list[str]:
        req = _request(spans, req_name, cid)
        names: list[str] = []

        def walk(s: ReceivedSpan) -> None:
            for c in _children(spans, s):
                names.append(c.name)
                walk(c)
        walk(req)
        return names

    exec_start = tree("POST /exec/{name}/start")
    assert exec_start[0] == "ContainerExecStart" and "conmon (runc exec)" in exec_start, exec_start
    stop = tree("POST /containers/{name}/stop")
    assert stop[:2] == ["ContainerStop", "containerStop"] and "runc kill" in stop, stop
    rm = tree("DELETE /containers/{name}")
    assert rm[:2] == ["ContainerRm", "cleanupContainer"], rm
    assert "POST /containers/{name}/exec" in {s.name for s in spans if s.attrs.get("container.id") == cid}
    for s in spans:
        assert SECRET not in repr(s), s


def _sample(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    assert m, (name, labels)
    return float(m.group(1))


def test_metrics_follow_the_daemon(traced: tuple[Berthd, str]) -> None:
    """States, event subscribers and health checks are read from the daemon at scrape time."""
    b, addr = traced
    name = "tr-" + uuid.uuid4().hex[:8]
    before = _get(f"http://{addr}/metrics").decode()
    events = socket.socket(socket.AF_UNIX)
    try:
        events.connect(b.sock)
        events.sendall(b"GET /v1.41/events HTTP/1.1\r\nHost: x\r\n\r\n")
        b.docker("run", "-d", "--network", "none", "--name", name, "--health-cmd", "true",
                 "--health-interval", "1s", "busybox", "sleep", "60")
        deadline = time.time() + 30
        while True:
            text = _get(f"http://{addr}/metrics").decode()
            if _sample(text, "engine_daemon_health_checks_total") >= 1 or time.time() > deadline:
                break
            time.sleep(0.3)
        assert _sample(text, "engine_daemon_health_checks_total") >= 1
        assert _sample(text, "engine_daemon_health_checks_failed_total") == 0
        assert _sample(text, "engine_daemon_events_subscribers_total") >= 1
        assert _sample(text, "engine_daemon_events_total") >= _sample(before, "engine_daemon_events_total") + 2
        assert _sample(text, "engine_daemon_container_states_containers", '{state="running"}') >= 1
        b.docker("pause", name)
        text = _get(f"http://{addr}/metrics").decode()
        assert _sample(text, "engine_daemon_container_states_containers", '{state="paused"}') >= 1
        b.docker("unpause", name)
    finally:
        events.close()
        b.docker("rm", "-f", name, check=False)
    deadline = time.time() + 10
    while _sample(_get(f"http://{addr}/metrics").decode(), "engine_daemon_events_subscribers_total") and \
            time.time() < deadline:
        time.sleep(0.2)
    assert _sample(_get(f"http://{addr}/metrics").decode(), "engine_daemon_events_subscribers_total") == 0


def _tree(spans: list[ReceivedSpan], root: ReceivedSpan) -> list[tuple[int, str]]:
    """(depth, name) of every span under `root`, depth first, children by start."""
    out: list[tuple[int, str]] = []

    def walk(s: ReceivedSpan, depth: int) -> None:
        for c in _children(spans, s):
            out.append((depth, c.name))
            walk(c, depth + 1)
    walk(root, 1)
    return out


def test_pull_push_spans_and_no_credentials(traced: tuple[Berthd, str], receiver: OTLPReceiver) -> None:
    """A push and a pull against a real registry with token auth: dockerd's steps
    (distribution/push_v2.go, pull_v2.go, layer_store.go) as spans, the image actions'
    metrics, and no password, auth header or bearer token in spans, metrics or page."""
    from registry_helpers import file_layer, start_registry

    b, addr = traced
    password = "pw-" + uuid.uuid4().hex
    reg = start_registry("token", {"u": password})
    ref = f"{reg.host}/tr/img:1"
    try:
        b.docker("login", reg.host, "-u", "u", "--password-stdin", input=password.encode() + b"\n")
        b.docker("import", "-", ref, input=file_layer({"unique": uuid.uuid4().bytes}))
        assert b": Pushed" in b.docker("push", ref).stdout
        b.docker("rmi", ref)  # its one layer goes: the pull downloads and registers it again
        assert b"Downloaded newer image" in b.docker("pull", ref).stdout
        b.docker("rmi", ref)
    finally:
        b.docker("logout", reg.host, check=False)
        reg.close()
    spans = receiver.wait_for(lambda ss: any(s.name == "PullImage" for s in ss)
                              and any(s.name == "Register" and s.trace_id == next(
                                  p.trace_id for p in ss if p.name == "PullImage") for s in ss))
    time.sleep(0.5)
    spans = receiver.snapshot()

    push_req = next(s for s in spans if s.name == "POST /images/{name}/push")
    push = _tree(spans, push_req)
    assert push[:5] == [(1, "PushImage"), (2, "Push"), (3, "pushV2Repository"), (4, "pushV2Tag"), (5, "Upload")], push
    assert (6, "uploadUsingSession") in push and push[-1] == (5, "manifestFromBuilder"), push

    pull_trace = next(s.trace_id for s in spans if s.name == "PullImage")
    pull_req = next(s for s in spans if s.trace_id == pull_trace and not s.parent_id)
    assert pull_req.name == "POST /images/create" and pull_req.attrs["http.response.status_code"] == 200
    pull = _tree(spans, pull_req)
    assert pull[:5] == [(1, "PullImage"), (2, "Pull"), (3, "pullV2Repository"), (4, "pullV2Tag"),
                        (5, "manifests.Get")], pull
    layers = pull[pull.index((5, "pullSchema2Layers")) + 1:]
    assert {(6, "pullSchema2Config"), (6, "Download")} <= set(layers), pull
    # the layer: downloaded, untarred, then chained (or unpacked on its parent: vfs)
    order = [n for _, n in layers if n in ("Download", "applyTar", "Register")]
    assert order in (["Download", "applyTar", "Register"], ["Download", "Register"]), pull
    pull_op = next(s for s in spans if s.name == "pullSchema2Layers" and s.trace_id == pull_req.trace_id)
    for s in spans:
        if s.trace_id == pull_req.trace_id and s.name in ("Download", "Register"):
            assert pull_op.start <= s.start <= s.end <= pull_op.end, s.name

    text = _get(f"http://{addr}/metrics").decode()
    assert _sample(text, "engine_daemon_image_actions_seconds_count", '{action="pull"}') >= 1
    assert _sample(text, "engine_daemon_image_actions_seconds_count", '{action="push"}') >= 1
    assert _sample(text, "berth_step_seconds_count", '{step="Download"}') >= 1

    page = _get(f"http://{addr}/").decode()
    assert "POST /images/{name}/push" in page and "pullSchema2Layers" in page
    op_pages = [_get(f"http://{addr}/op/{i}").decode() for i in sorted(set(re.findall(r'href="/op/(\d+)"', page)))]
    # Credentials: the password, the X-Registry-Auth header (base64 JSON: "eyJ"), a
    # bearer token (a JWT: "eyJ") or an Authorization value, nowhere.
    for where, blob in (("spans", repr(spans)), ("metrics", text), ("page", page + "".join(op_pages))):
        for bad in (password, "eyJ", "Bearer ", "Basic ", "X-Registry-Auth", "identitytoken"):
            assert bad not in blob, (where, bad)
