"""docker-py against a real berthd, at its default API version (1.44 for docker 7.1) and
negotiated (`version="auto"`: Berth's 1.52): the everyday flows of create/run/exec/logs,
volumes and networks, stop and restart with a signal, and `df`."""
from __future__ import annotations

import uuid

import pytest

docker = pytest.importorskip("docker")

# A container that exits 42 on SIGINT (PID 1 ignores signals it has no handler for).
TRAP_INT = ["sh", "-c", 'trap "exit 42" INT; echo ready; while true; do sleep 0.1; done']


def uniq(prefix: str = "sdk") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=[None, "auto"], ids=["default", "auto"])
def client(berthd, request):
    kwargs = {"version": request.param} if request.param else {}
    c = docker.DockerClient(base_url=berthd.host, timeout=60, **kwargs)
    try:
        yield c
    finally:
        c.close()


def _api(client) -> str:
    return client.api.api_version


def test_sdk_version_negotiation(client) -> None:
    assert client.version()["ApiVersion"] == "1.52"
    assert _api(client) in ("1.44", "1.52")  # docker 7.1's default, or negotiated
    assert client.ping()


def test_sdk_run_exec_logs(client) -> None:
    name = uniq()
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], name=name, remove=False)
    try:
        assert out == b"out\n"  # stdout only, as the SDK asks
        ctr = client.containers.get(name)
        assert ctr.wait()["StatusCode"] == 0
        assert ctr.logs(stdout=True, stderr=True) == b"out\nerr\n"
        assert ctr.logs(stdout=False, stderr=True) == b"err\n"
    finally:
        client.containers.get(name).remove(force=True)
    ctr = client.containers.run("busybox", ["sleep", "60"], name=uniq(), detach=True)
    try:
        code, output = ctr.exec_run(["sh", "-c", "echo hi; echo oops >&2; exit 3"])
        assert (code, output) == (3, b"hi\noops\n")
        code, (o, e) = ctr.exec_run(["sh", "-c", "echo hi; echo oops >&2"], demux=True)
        assert (code, o, e) == (0, b"hi\n", b"oops\n")
        code, output = ctr.exec_run(["echo", "tty"], tty=True)
        assert (code, output) == (0, b"tty\r\n")
        ctr.reload()
        assert ctr.status == "running"
    finally:
        ctr.remove(force=True)


def test_sdk_stop_restart_signal(client) -> None:
    ctr = client.containers.run("busybox", TRAP_INT, name=uniq(), detach=True)
    try:
        for _ in range(100):
            if b"ready" in ctr.logs():
                break
        # docker-py has no `signal` argument: ask with the low-level API's post
        url = client.api._url("/containers/{0}/stop", ctr.id)
        client.api._raise_for_status(client.api._post(url, params={"signal": "SIGINT", "t": 30}))
        ctr.reload()
        # 1.44/1.52 honour the signal: the trap exits 42 at once (not a SIGKILL 137 after 30 s)
        assert ctr.attrs["State"]["ExitCode"] == 42
        ctr.start()
        url = client.api._url("/containers/{0}/restart", ctr.id)
        with pytest.raises(docker.errors.APIError) as exc:
            client.api._raise_for_status(client.api._post(url, params={"signal": "NOPE"}))
        assert exc.value.explanation == f"Cannot restart container {ctr.id}: Invalid signal: NOPE"
        ctr.restart(timeout=1)
        ctr.reload()
        assert ctr.status == "running"
    finally:
        ctr.remove(force=True)


def test_sdk_volumes(client) -> None:
    named = client.volumes.create(uniq("vol"), labels={"k": "v"})
    ctr = client.containers.create("busybox", "true", volumes=["/anon", f"{named.name}:/n"])
    try:
        anon = next(m["Name"] for m in ctr.attrs["Mounts"] if m["Destination"] == "/anon")
        labels = client.volumes.get(anon).attrs["Labels"]
        # both the SDK's default 1.44 and 1.52 see dockerd 23+'s anonymous label
        assert labels == {"com.docker.volume.anonymous": ""}
        assert client.volumes.get(named.name).attrs["Labels"] == {"k": "v"}
        assert {named.name, anon} <= {v.name for v in client.volumes.list()}
    finally:
        ctr.remove()
    # 1.42+: prune takes anonymous volumes only, unless all=true
    pruned = client.volumes.prune()["VolumesDeleted"] or []
    assert anon in pruned and named.name not in pruned
    assert named.name in (client.volumes.prune(filters={"all": "true"})["VolumesDeleted"] or [])


def test_sdk_networks(client) -> None:
    net = client.networks.create(uniq("net"))
    ctr = client.containers.run("busybox", ["sleep", "60"], name=uniq(), detach=True)
    try:
        net.connect(ctr, aliases=["web"])
        ctr.reload()
        ep = ctr.attrs["NetworkSettings"]["Networks"][net.name]
        assert "web" in ep["Aliases"] and ctr.id[:12] not in ep["Aliases"]  # 1.45: no short ID
        assert ctr.name in ep["DNSNames"]  # 1.44
        assert [c.id for c in client.networks.get(net.id).containers] == [ctr.id]
        net.disconnect(ctr)
        ctr.reload()
        assert net.name not in ctr.attrs["NetworkSettings"]["Networks"]
    finally:
        ctr.remove(force=True)
        net.remove()


def test_sdk_df(client) -> None:
    df = client.df()
    assert "BuilderSize" not in df and isinstance(df["Images"], list)
    if _api(client) == "1.52":
        assert df["ImagesDiskUsage"]["TotalCount"] >= 1 and "Items" not in df["ImagesDiskUsage"]
    else:
        assert "ImagesDiskUsage" not in df
