"""POST /images/prune (`docker image prune`) against a real berthd, with the answers the
reference dockerd 20.10.24 gave for the same commands. Every image a test makes carries a
label of its own and prunes filter on it, so the session daemon's other images stay."""
from __future__ import annotations

import json
import time
import urllib.parse
import uuid

import pytest


def _commit(berthd, tag: str, label: str) -> str:  # type: ignore[no-untyped-def]
    """An image one layer above busybox, labelled, from a throwaway container."""
    name = "pr-" + uuid.uuid4().hex[:8]
    berthd.docker("run", "--name", name, "busybox", "sh", "-c", f"echo {uuid.uuid4().hex} > /f")
    try:
        return berthd.docker("commit", "-c", f"LABEL bprune={label}", name, tag).stdout.decode().strip()
    finally:
        berthd.docker("rm", name)


def _prune(berthd, *args: str) -> str:  # type: ignore[no-untyped-def]
    return berthd.docker("image", "prune", "-f", *args).stdout.decode()


def test_dangling_then_all_unused(berthd) -> None:  # type: ignore[no-untyped-def]
    label = uuid.uuid4().hex[:10]
    repo = "prune-" + label
    old = _commit(berthd, f"{repo}:1", label)
    new = _commit(berthd, f"{repo}:1", label)  # the tag moves: `old` is dangling now
    kept = _commit(berthd, f"{repo}:2", label)
    user = "pru-" + uuid.uuid4().hex[:8]
    used = _commit(berthd, f"{repo}:3", label)
    berthd.docker("create", "--name", user, f"{repo}:3")
    try:
        out = _prune(berthd, "--filter", "label=bprune=nomatch")
        assert out == "Total reclaimed space: 0B\n"
        out = _prune(berthd, "--filter", f"label=bprune={label}")
        assert out.startswith(f"Deleted Images:\ndeleted: {old}\n"), out
        assert out.endswith("\nTotal reclaimed space: 33B\n"), out  # the one removed layer: /f, 33 bytes
        ids = berthd.docker("images", "-q", "--no-trunc", repo).stdout.decode().split()
        assert old not in ids and {new, kept, used} <= set(ids)
        # -a: every unused image goes; the one a container uses stays, silently
        out = _prune(berthd, "-a", "--filter", f"label=bprune={label}")
        assert f"untagged: {repo}:1\n" in out and f"untagged: {repo}:2\n" in out and f"{repo}:3" not in out, out
        assert berthd.docker("images", "-q", "--no-trunc", repo).stdout.decode().split() == [used]
        time.sleep(1.1)  # the CLI's `--until 0s` is now in whole seconds: let this second end
        events = berthd.docker("events", "--since", "60s", "--until", "0s", "--filter", "event=prune",
                               "--format", "{{.Type}} {{json .Actor.Attributes}}").stdout.decode()
        assert 'image {"reclaimed":"0"}\n' in events and 'image {"reclaimed":"33"}\n' in events, events
    finally:
        berthd.docker("rm", "-f", user, check=False)
        berthd.docker("rmi", "-f", f"{repo}:3", check=False)


@pytest.mark.parametrize("filters,status,message", [
    ({"foo": {"a": True}}, 400, "Invalid filter 'foo'"),
    ({"dangling": {"maybe": True}}, 400, "Invalid filter 'dangling=[maybe]'"),
    ({"until": {"xx": True}}, 500, 'failed to parse value as time or duration: "xx"'),
    ({"until": {"1h": True, "2h": True}}, 500, "more than one until filter specified"),
])
def test_bad_filters(berthd, filters, status, message) -> None:  # type: ignore[no-untyped-def]
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(berthd.host[len("unix://"):])

    c = Conn("localhost")
    c.request("POST", "/v1.41/images/prune?filters=" + urllib.parse.quote(json.dumps(filters)))
    r = c.getresponse()
    assert (r.status, json.loads(r.read())) == (status, {"message": message})
    c.close()


def test_nothing_to_prune_answer(berthd) -> None:  # type: ignore[no-untyped-def]
    import docker

    c = docker.APIClient(base_url=berthd.host, version="1.41")
    try:
        assert c.prune_images(filters={"label": "bprune=" + uuid.uuid4().hex}) == {"ImagesDeleted": None,
                                                                                   "SpaceReclaimed": 0}
    finally:
        c.close()
