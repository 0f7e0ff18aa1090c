"""The create path and what surrounds it, driven by the real docker CLI."""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest


def uniq(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def inspect(b, name: str) -> dict:
    return json.loads(b.docker("inspect", name).stdout)[0]


def test_create_inspect_rm(berthd):
    name = uniq("web")
    out = berthd.docker("create", "--name", name, "-e", "A=1", "-v", f"{name}-data:/data", "-v", "/srv:/srv:ro",
                        "--restart", "on-failure:3", "busybox", "sleep", "1d")
    cid = out.stdout.decode().strip()
    assert len(cid) == 64
    c = inspect(berthd, name)
    assert c["Id"] == cid
    assert c["Name"] == "/" + name
    assert c["Path"] == "sleep" and c["Args"] == ["1d"]
    assert c["State"]["Status"] == "created"
    assert c["Config"]["Env"][0] == "A=1"
    assert c["Config"]["Hostname"] == cid[:12]
    assert c["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert c["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert c["HostConfig"]["ShmSize"] == 67108864
    assert "/proc/kcore" in c["HostConfig"]["MaskedPaths"]
    mounts = {m["Destination"]: m for m in c["Mounts"]}
    assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == f"{name}-data"
    assert mounts["/data"]["Mode"] == "z" and mounts["/data"]["RW"] is True
    assert mounts["/srv"] == {"Type": "bind", "Source": "/srv", "Destination": "/srv", "Mode": "ro", "RW": False,
                              "Propagation": "rprivate"}
    assert list(c["NetworkSettings"]["Networks"]) == ["bridge"]
    assert list(c)[:5] == ["Id", "Created", "Path", "Args", "State"]
    ps = berthd.docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.decode()
    assert f"{cid} {name} Created" in ps
    vols = berthd.docker("volume", "ls", "-q").stdout.decode().split()
    assert f"{name}-data" in vols
    berthd.docker("rename", name, name + "2")
    assert inspect(berthd, name + "2")["Name"] == "/" + name + "2"
    berthd.docker("rm", name + "2")
    r = berthd.docker("inspect", name + "2", check=False)
    assert r.returncode != 0 and b"No such object" in r.stderr
    berthd.docker("volume", "rm", f"{name}-data")


def test_name_conflict_and_invalid(berthd):
    name = uniq()
    cid = berthd.docker("create", "--name", name, "busybox").stdout.decode().strip()
    r = berthd.docker("create", "--name", name, "busybox", check=False)
    assert r.returncode != 0
    assert (f'Conflict. The container name "/{name}" is already in use by container "{cid}". '
            "You have to remove (or rename) that container to be able to reuse that name.").encode() in r.stderr
    r = berthd.docker("create", "--name", "a", "busybox", check=False)
    assert b"Invalid container name (a), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" in r.stderr
    berthd.docker("rm", name)


def test_bad_settings_messages(berthd):
    cases = [
        (["--restart", "sometimes"], "invalid restart policy 'sometimes'"),
        (["-m", "1m"], "Minimum memory limit allowed is 6MB"),
        (["-w", "rel"], "the working directory 'rel' is invalid, it needs to be an absolute path"),
        (["--oom-score-adj", "2000"], "Invalid value 2000, range for oom score adj is [-1000, 1000]"),
        (["--cap-add", "FOO"], 'invalid CapAdd: unknown capability: "CAP_FOO"'),
        (["--log-opt", "bogus=1"], "unknown log opt 'bogus' for json-file log driver"),
    ]
    for flags, msg in cases:
        r = berthd.docker("create", *flags, "busybox", check=False)
        assert r.returncode != 0, flags
        assert msg.encode() in r.stderr, (flags, r.stderr)


def test_no_such_image(berthd):
    r = berthd.docker("create", "--pull", "never", "nosuchimage-xyz", check=False)
    assert r.returncode != 0
    assert b"No such image: nosuchimage-xyz:latest" in r.stderr


def test_random_names_and_prune(berthd):
    label = uniq("l")
    ids = [berthd.docker("create", "--label", f"t={label}", "busybox").stdout.decode().strip() for _ in range(3)]
    names = berthd.docker("ps", "-a", "--filter", f"label=t={label}", "--format", "{{.Names}}").stdout.decode().split()
    assert len(names) == 3 and all("_" in n for n in names)
    out = berthd.docker("container", "prune", "-f", "--filter", f"label=t={label}").stdout.decode()
    for cid in ids:
        assert cid in out
    assert berthd.docker("ps", "-aq", "--filter", f"label=t={label}").stdout.strip() == b""


def test_events_since_until(berthd):
    name = uniq()
    since = str(int(time.time()) - 1)
    cid = berthd.docker("create", "--name", name, "--label", "k=v", "busybox").stdout.decode().strip()
    berthd.docker("rm", name)
    until = str(int(time.time()) + 1)
    out = berthd.docker("events", "--since", since, "--until", until, "--filter", f"container={name}",
                        "--format", "{{json .}}").stdout.decode()
    evs = [json.loads(line) for line in out.splitlines()]
    assert [e["Action"] for e in evs] == ["create", "destroy"]
    assert evs[0]["id"] == cid and evs[0]["Actor"]["Attributes"] == {"image": "busybox", "k": "v", "name": name}


def test_concurrent_creates_one_name(berthd):
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(berthd.sock)

    name = uniq()
    results: list[int] = []

    def create():
        c = Conn("localhost")
        c.request("POST", f"/v1.41/containers/create?name={name}", body=b'{"Image":"busybox"}',
                  headers={"Content-Type": "application/json"})
        results.append(c.getresponse().status)
        c.close()

    threads = [threading.Thread(target=create) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [409] * 29
    berthd.docker("rm", name)


@pytest.mark.parametrize("api", [None, "1.41"])
def test_sdk_create_list_remove(berthd, api):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=berthd.host, version=api or "auto")
    name = uniq()
    c = client.containers.create("busybox", ["echo", "hi"], name=name, environment={"X": "1"}, labels={"a": "b"})
    assert c.name == name and c.status == "created"
    got = client.containers.list(all=True, filters={"name": name})
    assert [x.id for x in got] == [c.id]
    assert client.containers.get(name).attrs["Config"]["Labels"] == {"a": "b"}
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(name)
    client.close()
