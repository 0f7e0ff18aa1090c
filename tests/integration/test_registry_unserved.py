"""Registry operations Berth has no client for (push, search, login): dockerd's own checks
first, with its statuses and messages (as the reference dockerd 20.10.24 gave them), then a
clear "not supported" where dockerd would contact the registry."""
from __future__ import annotations

import http.client
import json
import socket

import pytest


def _call(berthd, method: str, url: str, headers: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
          body: bytes | None = None) -> tuple[int, bytes]:
    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(berthd.host[len("unix://"):])

    c = Conn("localhost")
    try:
        c.request(method, "/v1.41" + url, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


AUTH = {"X-Registry-Auth": "e30="}  # base64url of {}


@pytest.mark.parametrize("url,headers,status,message", [
    ("/images/busybox/push?tag=latest", {}, 400, "Bad parameters and missing X-Registry-Auth: EOF"),
    ("/images/BAD/push?tag=latest", AUTH, 500, "invalid reference format: repository name must be lowercase"),
    ("/images/busybox/push?tag=bad:tag", AUTH, 500, "invalid tag format"),
])
def test_push_checks(berthd, url, headers, status, message) -> None:  # type: ignore[no-untyped-def]
    got_status, body = _call(berthd, "POST", url, headers)
    assert (got_status, json.loads(body)) == (status, {"message": message})


def test_push_stream(berthd) -> None:  # type: ignore[no-untyped-def]
    status, body = _call(berthd, "POST", "/images/localhost:5999%2Fnosuch/push?tag=latest", AUTH)
    assert status == 200
    assert [json.loads(line) for line in body.splitlines()] == [
        {"status": "The push refers to repository [localhost:5999/nosuch]"},
        {"errorDetail": {"message": "An image does not exist locally with the tag: localhost:5999/nosuch"},
         "error": "An image does not exist locally with the tag: localhost:5999/nosuch"}]
    r = berthd.docker("push", "busybox", check=False)
    assert r.returncode == 1
    assert r.stdout.decode().endswith("The push refers to repository [docker.io/library/busybox]\n")
    assert r.stderr.decode().strip() == "pushing images is not supported"


def test_search_and_login(berthd) -> None:  # type: ignore[no-untyped-def]
    assert _call(berthd, "GET", "/images/search?term=busybox") == (
        501, b'{"message":"searching registries is not supported"}\n')
    assert _call(berthd, "POST", "/auth") == (500, b'{"message":"EOF"}\n')
    r = berthd.docker("login", "-u", "a", "--password-stdin", "localhost:5999", input=b"b\n", check=False)
    assert r.returncode == 1 and "logging in to registries is not supported" in r.stderr.decode()
