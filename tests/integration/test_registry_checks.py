"""Registry operations (push, search, login): dockerd's own checks before any registry is
contacted, with its statuses and messages (as the reference dockerd 20.10.24 gave them).
The flows against real registries are in test_registry.py."""
from __future__ import annotations

import json

import pytest
from registry_helpers import call


def _call(berthd, method: str, url: str, headers: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
          body: bytes | None = None) -> tuple[int, bytes]:
    return call(berthd.sock, method, url, headers, body)


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


def test_search_and_login(berthd) -> None:  # type: ignore[no-untyped-def]
    assert _call(berthd, "POST", "/auth") == (500, b'{"message":"EOF"}\n')
    body = b'{"username":"a","password":"b","serveraddress":"127.0.0.1:15198"}'
    assert _call(berthd, "POST", "/auth", body=body) == (
        500, b'{"message":"Get \\"http://127.0.0.1:15198/v2/\\": dial tcp 127.0.0.1:15198: connect: '
             b'connection refused"}\n')
    status, body = _call(berthd, "GET", "/images/search?term=a://b")
    assert status == 500
