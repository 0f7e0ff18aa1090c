"""API versions against a real berthd: the docker CLI negotiated (1.50 for CLI 28) and
pinned at 1.44 and 1.41, the docker SDK with its default and with version="auto",
raw requests for the headers, /version, and the endpoints Berth does not serve."""
from __future__ import annotations

import http.client
import json
import socket
import time
import uuid

import pytest


def uniq(prefix: str = "av") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class _Conn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.upath = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.upath)


def call(b, method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    c = _Conn(b.sock)
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    c.request(method, url, body=body, headers=hdrs)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


@pytest.mark.parametrize("api", [None, "1.44", "1.41"])
def test_cli_everyday_flows(berthd, api) -> None:
    b = berthd
    name, vol = uniq(), uniq("vol")
    v = b.docker("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}}",
                 api=api).stdout.decode().split()
    assert v[1:] == ["1.52", "1.12"]
    assert v[0] == (api or "1.50")
    b.docker("volume", "create", vol, api=api)
    cid = b.docker("create", "--name", name, "-v", f"{vol}:/data", "-p", "8080:80", "-e", "A=1",
                   "--label", "k=v", "busybox", "true", api=api).stdout.decode().strip()
    try:
        ins = json.loads(b.docker("inspect", name, api=api).stdout)[0]
        assert ins["Id"] == cid and ins["Config"]["Env"][0] == "A=1"
        ns = ins["NetworkSettings"]
        if api == "1.41":
            assert "IPAddress" in ns and "DNSNames" not in ns["Networks"]["bridge"]
            assert "KernelMemory" in ins["HostConfig"]
        else:
            assert "DNSNames" in ns["Networks"]["bridge"] and "KernelMemory" not in ins["HostConfig"]
        ps = b.docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}} {{.Ports}}",
                      api=api).stdout.decode()
        assert name in ps
        img = json.loads(b.docker("image", "inspect", "busybox", api=api).stdout)[0]
        assert ("VirtualSize" in img) == (api == "1.41")
        assert ("ContainerConfig" in img) == (api in ("1.41", "1.44"))  # removed in 1.45
        assert "busybox" in b.docker("images", api=api).stdout.decode()
        assert vol in b.docker("volume", "ls", "-q", api=api).stdout.decode()
        assert b.docker("info", "--format", "{{.ServerVersion}}", api=api).stdout.decode().strip()
        b.docker("system", "df", api=api)
        ev = b.docker("events", "--since", "0", "--until", str(int(time.time()) + 2), "--filter", f"container={cid}",
                      "--format", "{{.Action}}", api=api).stdout.decode().split()
        assert "create" in ev
    finally:
        b.docker("rm", "-f", name, api=api)
        b.docker("volume", "rm", vol, api=api)


def test_headers_version_and_bounds(berthd) -> None:
    for url in ("/_ping", "/v1.41/_ping", "/v1.44/containers/json", "/version"):
        status, headers, _ = call(berthd, "GET", url)
        assert status == 200 and headers["api-version"] == "1.52"
    _, headers, _ = call(berthd, "GET", "/v1.41/_ping")
    assert "swarm" not in headers  # 20.10's ping
    _, headers, _ = call(berthd, "GET", "/v1.42/_ping")
    assert headers["swarm"] == "inactive"
    status, _, body = call(berthd, "GET", "/version")
    ver = json.loads(body)
    assert (ver["ApiVersion"], ver["MinAPIVersion"]) == ("1.52", "1.12")
    status, _, body = call(berthd, "GET", "/v1.53/containers/json")
    assert status == 400
    assert json.loads(body)["message"] == "client version 1.53 is too new. Maximum supported API version is 1.52"
    status, _, body = call(berthd, "GET", "/v1.11/containers/json")
    assert status == 400 and body.startswith(b"client version 1.11 is too old. Minimum supported API version is 1.12")


NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
               "this node to swarm and try again.")


@pytest.mark.parametrize("version", ["1.41", "1.44", "1.52"])
def test_unserved_endpoints(berthd, version) -> None:
    cases = [
        ("GET", "/swarm", None, 503, NOT_MANAGER),
        ("POST", "/swarm/leave", None, 503, "This node is not part of a swarm"),
        ("POST", "/swarm/init", None, 400, "got EOF while reading request body"),
        ("POST", "/swarm/init", b"{}", 400, 'invalid ListenAddr "": invalid empty address'),
        ("POST", "/swarm/update", b"{}", 400,
         "invalid swarm version '': strconv.ParseUint: parsing \"\": invalid syntax"),
        ("POST", "/swarm/update?version=1", b"{}", 503, NOT_MANAGER),
        ("GET", "/services", None, 503, NOT_MANAGER),
        ("POST", "/services/create", b"{}", 503, NOT_MANAGER),
        ("GET", "/nodes", None, 503, NOT_MANAGER),
        ("GET", "/tasks/x", None, 503, NOT_MANAGER),
        ("POST", "/secrets/x/update", b"{}", 400, "invalid secret version"),
        ("GET", "/configs", None, 503, NOT_MANAGER),
        ("GET", "/plugins/x/json", None, 404, 'plugin "x" not found'),
        ("POST", "/plugins/x/set", None, 400, "got EOF while reading request body"),
        ("POST", "/plugins/pull", None, 500, "failed to parse privileges: EOF"),
        ("POST", "/build/cancel", None, 500, "build ID not provided"),
        ("POST", "/session", None, 400, "no upgrade proto in request"),
        ("POST", "/grpc", None, 500, "no upgrade proto in request"),
    ]
    for method, path, body, status, message in cases:
        got, _, data = call(berthd, method, f"/v{version}{path}", body)
        assert (got, json.loads(data)["message"]) == (status, message), (method, path)
    got, _, data = call(berthd, "GET", f"/v{version}/plugins")
    assert (got, data) == (200, b"[]\n")
    got, _, data = call(berthd, "POST", f"/v{version}/build/prune")
    assert json.loads(data) == {"CachesDeleted": None, "SpaceReclaimed": 0}
    # the stream check of service logs: untyped (500) in 20.10, a 400 in dockerd 29
    got, _, _ = call(berthd, "GET", f"/v{version}/services/x/logs")
    assert got == (500 if version == "1.41" else 400)


def test_create_mac_address_per_endpoint(berthd) -> None:
    b = berthd
    name = uniq()
    body = {"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": "02:42:ac:11:00:42"}}}}
    status, _, data = call(b, "POST", f"/v1.44/containers/create?name={name}", json.dumps(body).encode())
    assert status == 201, data
    try:
        ins = json.loads(call(b, "GET", f"/v1.44/containers/{name}/json")[2])
        assert ins["Config"]["MacAddress"] == "02:42:ac:11:00:42"
        ins52 = json.loads(call(b, "GET", f"/v1.52/containers/{name}/json")[2])
        assert "MacAddress" not in ins52["Config"] and "IPAddress" not in ins52["NetworkSettings"]
    finally:
        call(b, "DELETE", f"/v1.44/containers/{name}?force=1")
    # 1.43: an endpoint MAC address is ignored, as the old API did
    status, _, data = call(b, "POST", f"/v1.43/containers/create?name={name}", json.dumps(body).encode())
    assert status == 201
    try:
        ins = json.loads(call(b, "GET", f"/v1.43/containers/{name}/json")[2])
        assert not ins["Config"].get("MacAddress")
    finally:
        call(b, "DELETE", f"/v1.43/containers/{name}?force=1")


@pytest.mark.parametrize("version", [None, "auto", "1.44"])
def test_docker_sdk(berthd, version) -> None:
    docker = pytest.importorskip("docker")
    kwargs = {"version": version} if version else {}
    client = docker.DockerClient(base_url=berthd.host, **kwargs)
    try:
        assert client.version()["ApiVersion"] == "1.52"
        name = uniq()
        ctr = client.containers.create("busybox", "true", name=name, labels={"k": "v"})
        try:
            assert client.containers.get(name).id == ctr.id
            assert any(c.id == ctr.id for c in client.containers.list(all=True))
            assert client.images.get("busybox").tags == ["busybox:latest"]
            vol = client.volumes.create(uniq("vol"))
            assert vol.name in [v.name for v in client.volumes.list()]
            vol.remove()
            assert client.info()["ServerVersion"]
            assert client.ping()
        finally:
            ctr.remove(force=True)
    finally:
        client.close()


TRAP_INT = ["sh", "-c", 'trap "exit 42" INT; echo ready; while true; do sleep 0.1; done']


@pytest.mark.parametrize("api", ["1.41", "1.42"])
def test_cli_stop_signal(berthd, api) -> None:
    """`docker stop -s SIGINT`: the CLI sends `signal` from 1.42; 1.41 ignores it (SIGTERM,
    which PID 1 ignores, then SIGKILL after -t)."""
    b, name = berthd, uniq()
    b.docker("run", "-d", "--name", name, "busybox", *TRAP_INT, api=api)
    try:
        for _ in range(100):
            if b"ready" in b.docker("logs", name).stdout:
                break
            time.sleep(0.1)
        b.docker("stop", "-s", "SIGINT", "-t", "1", name, api=api)
        code = b.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.decode().strip()
        assert code == ("137" if api == "1.41" else "42")
        b.docker("start", name)
        bad = b.docker("stop", "-s", "NOPE", name, api=api, check=False)
        if api == "1.41":  # the 1.41 CLI side refuses nothing; the daemon ignores `signal`
            assert bad.returncode == 0
        else:
            assert bad.stderr.decode().strip() == (
                f"Error response from daemon: cannot stop container: {name}: Invalid signal: NOPE")
    finally:
        b.docker("rm", "-f", name)


def test_volume_prune_anonymous_and_label(berthd) -> None:
    b, named = berthd, uniq("vol")
    b.docker("volume", "create", named)
    cid = b.docker("create", "-v", "/anon", "-v", f"{named}:/n", "busybox").stdout.decode().strip()
    mounts = json.loads(b.docker("inspect", cid).stdout)[0]["Mounts"]
    anon = next(m["Name"] for m in mounts if m["Destination"] == "/anon")
    b.docker("rm", cid)
    try:
        # 1.41 (20.10): no label; 1.42+: dockerd 23+'s anonymous label
        _, _, body = call(b, "GET", f"/v1.41/volumes/{anon}")
        assert json.loads(body)["Labels"] is None
        _, _, body = call(b, "GET", f"/v1.42/volumes/{anon}")
        assert json.loads(body)["Labels"] == {"com.docker.volume.anonymous": ""}
        status, _, body = call(b, "POST", "/v1.42/volumes/prune")
        deleted = json.loads(body)["VolumesDeleted"]
        assert status == 200 and anon in deleted and named not in deleted
        status, _, body = call(b, "POST", "/v1.42/volumes/prune?filters=%7B%22all%22%3A%5B%22maybe%22%5D%7D")
        assert (status, json.loads(body)["message"]) == (
            400, "invalid filter 'all': strconv.ParseBool: parsing \"maybe\": invalid syntax")
        status, _, body = call(b, "POST", "/v1.41/volumes/prune?filters=%7B%22all%22%3A%5B%221%22%5D%7D")
        assert status == 400  # 1.41: `all` is no filter of 20.10's
    finally:
        b.docker("volume", "rm", "-f", named)


def test_system_df_versions(berthd) -> None:
    _, _, body = call(berthd, "GET", "/v1.51/system/df?verbose=1")
    assert "ImagesDiskUsage" not in json.loads(body) and "Images" in json.loads(body)
    _, _, body = call(berthd, "GET", "/v1.52/system/df")
    d = json.loads(body)
    assert "Images" in d and d["ImagesDiskUsage"]["TotalCount"] >= 1 and d["BuildCacheDiskUsage"] == {}
    _, _, body = call(berthd, "GET", "/v1.52/system/df?verbose=1&type=image")
    d = json.loads(body)
    assert list(d) == ["ImagesDiskUsage"] and d["ImagesDiskUsage"]["Items"][0]["RepoTags"] == ["busybox:latest"]
    status, _, body = call(berthd, "GET", "/v1.52/system/df?type=bogus")
    assert (status, json.loads(body)["message"]) == (400, "unknown object type: bogus")
