"""The fast path (api/fastpath.py) against aiohttp's own answers, over real unix sockets.

One Daemon on a temporary data root, one application, two sites: FastUnixSite (as
berthd listens) and aiohttp's plain UnixSite. Every plain request must get the same
bytes from both (but the Date line), and connections mixing plain requests with bodies,
pipelining, chunked bodies and `Connection: close` must be answered in order.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from berth.__main__ import _routes, app_state
from berth.api import fastpath, server
from berth.config import DaemonConfig
from berth.daemon.daemon import Daemon

sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: make the helper importable
from imagetar import Entry, layer_tar


@pytest.fixture
def tmp(tmp_path: Any) -> str:
    return str(tmp_path)


class Response:
    def __init__(self, head: bytes, body: bytes) -> None:
        self.head, self.body = head, body
        lines = head.decode().split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ")[1])
        self.headers = [tuple(line.split(": ", 1)) for line in lines[1:]]

    def comparable(self) -> bytes:
        """The raw answer with its Date line (the only part that may differ) blanked."""
        lines = [b"Date: -" if line.startswith(b"Date: ") else line for line in self.head.split(b"\r\n")]
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
    resp = Response(head, b"")
    length = resp.header("Content-Length")
    if length is not None:
        resp.body = await reader.readexactly(int(length))
    elif resp.header("Transfer-Encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        resp.body = body
    return resp


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()


def post(path: str, body: bytes, ctype: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


Scenario = Callable[[str, str, web.AppRunner], Awaitable[Any]]


def run(tmp: str, scenario: Scenario) -> Any:
    """Start a daemon and both sites, run `scenario(fast_sock, aiohttp_sock, runner)`."""

    async def main() -> Any:
        cfg = DaemonConfig(data_root=os.path.join(tmp, "root"), exec_root=os.path.join(tmp, "exec"))
        d = Daemon(cfg)
        await d.restore()
        app = server.build_app(_routes(), app_state(d))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        fast_sock, aio_sock = os.path.join(tmp, "fast.sock"), os.path.join(tmp, "aio.sock")
        await fastpath.FastUnixSite(runner, fast_sock, app.router, app).start()
        await web.UnixSite(runner, aio_sock).start()
        try:
            return await scenario(fast_sock, aio_sock, runner)
        finally:
            await runner.cleanup()
            await d.shutdown()

    return asyncio.run(main())


async def exchange(sock: str, *requests: bytes, together: bool = False) -> list[Response]:
    """Send `requests` on one connection (one write if `together`), read their answers."""
    reader, writer = await asyncio.open_unix_connection(sock)
    out = []
    try:
        if together:
            writer.write(b"".join(requests))
            for _ in requests:
                out.append(await read_response(reader))
        else:
            for r in requests:
                writer.write(r)
                out.append(await read_response(reader))
    finally:
        writer.close()
    return out


def _image_tar() -> bytes:
    return layer_tar([Entry("bin/", kind="dir"), Entry("bin/true", data=b"#!/bin/sh\n", mode=0o755)])


async def _setup_container(sock: str) -> str:
    """An image imported and a container made from it, through aiohttp (bodies)."""
    [imp] = await exchange(sock, post("/v1.41/images/create?fromSrc=-&repo=tiny&tag=1", _image_tar(),
                                      "application/x-tar"))
    assert imp.status == 200, imp.body
    [made] = await exchange(sock, post("/v1.41/containers/create?name=fp1",
                                       b'{"Image":"tiny:1","Cmd":["/bin/true"],"Labels":{"a":"b"}}'))
    assert made.status == 201, made.body
    return json.loads(made.body)["Id"]


PLAIN = [
    "/_ping", "/v1.41/_ping", "/v1.24/_ping", "/version", "/v1.41/version",
    "/v1.41/containers/json?all=1", "/containers/json?all=1&size=1", "/v1.41/containers/json?limit=x",
    '/v1.41/containers/json?all=1&filters={"label":["a=b"]}', "/v1.41/containers/json?filters={bad",
    "/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D&x=a+b&y=%zz&&z",
    "/v1.41/containers/{id}/json", "/containers/{id}/json", "/v1.41/containers/fp1/json",
    "/v1.20/containers/{id}/json", "/v1.19/containers/fp1/json", "/v1.41/containers/{id}/json?size=1",
    "/v1.41/containers/nope/json", "/v1.22/containers/nope/json", "/v1.12/containers/nope/json",
    "/v1.41/images/json", "/v1.41/images/tiny:1/json", "/images/tiny:1/history", "/v1.41/images/nope/json",
    "/v1.41/volumes", "/v1.41/volumes/nope", "/v1.41/networks", "/v1.41/networks/nope",
]


def test_plain_answers_are_aiohttps_bytes(tmp: str) -> None:
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        cid = await _setup_container(aio)
        assert runner.server is not None
        for path in PLAIN:
            path = path.replace("{id}", cid)
            before = runner.server.requests_count
            [f] = await exchange(fast, get(path))
            assert runner.server.requests_count == before, f"{path} was not answered by the fast path"
            [a] = await exchange(aio, get(path))
            assert f.comparable() == a.comparable(), path
        # HEAD /_ping (the CLI's first request): headers only
        for path in ("/_ping", "/v1.41/_ping"):
            head = f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            before = runner.server.requests_count
            [f] = (await exchange(fast, head + get(path), together=True))[:1]
            assert runner.server.requests_count == before
            [a] = (await exchange(aio, head + get(path), together=True))[:1]
            assert f.comparable() == a.comparable() and f.body == b"", path
        # and with Connection: close: the same answer, then the connection ends
        reader, writer = await asyncio.open_unix_connection(fast)
        writer.write(get("/v1.41/containers/fp1/json", "Connection: close\r\n"))
        f = await read_response(reader)
        assert await reader.read() == b""
        writer.close()
        [a] = await exchange(aio, get("/v1.41/containers/fp1/json", "Connection: close\r\n"))
        assert f.comparable() == a.comparable()
        assert f.header("Connection") == "close"

    run(tmp, scenario)


def test_other_requests_are_aiohttps(tmp: str) -> None:
    """Not plain: the fast site passes them on, and the answer is aiohttp's."""
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        await _setup_container(aio)
        assert runner.server is not None
        for req in (get("/v1.99/_ping"), get("/v1.41//_ping"), get("/v1.41/nope"), get("/v1.41/containers/fp%31/json"),
                    b"HEAD /v1.41/containers/fp1/archive?path=/ HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"OPTIONS /v1.41/_ping HTTP/1.1\r\nHost: x\r\n\r\n",
                    post("/v1.41/containers/nope/start", b'{"Binds":null}'), post("/v1.41/containers/fp1/rename?name=", b"")):
            before = runner.server.requests_count
            [f] = await exchange(fast, req)
            assert runner.server.requests_count == before + 1, req
            [a] = await exchange(aio, req)
            assert f.comparable() == a.comparable(), req

    run(tmp, scenario)


def test_one_connection_mixes_plain_and_passed_requests(tmp: str) -> None:
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        await _setup_container(aio)
        body = b'{"Image":"tiny:1","Cmd":["/bin/true"]}'
        ping, made, shown, listed, removed, gone = await exchange(
            fast, get("/v1.41/_ping"), post("/v1.41/containers/create?name=fp2", body),
            get("/v1.41/containers/fp2/json"), get("/v1.41/containers/json?all=1"),
            b"DELETE /v1.41/containers/fp2 HTTP/1.1\r\nHost: x\r\n\r\n", get("/v1.41/containers/fp2/json"))
        assert (ping.status, ping.body) == (200, b"OK")
        assert made.status == 201
        cid = json.loads(made.body)["Id"]
        assert shown.status == 200 and json.loads(shown.body)["Id"] == cid
        assert cid in [c["Id"] for c in json.loads(listed.body)]
        assert removed.status == 204
        assert gone.status == 404 and json.loads(gone.body) == {"message": "No such container: fp2"}

    run(tmp, scenario)


def test_plain_answers_go_on_after_aiohttp_answered_on_the_connection(tmp: str) -> None:
    """Once aiohttp's answer to a passed request is written (its task has ended), the next
    plain requests on the same connection are the fast path's again."""
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        await _setup_container(aio)
        assert runner.server is not None
        before = runner.server.requests_count
        # a start with a body (a pre-1.24 HostConfig) is aiohttp's
        refused, shown, ping, listed = await exchange(
            fast, post("/v1.41/containers/fp1/start", b'{"Binds":null}'), get("/v1.41/containers/fp1/json"),
            get("/v1.41/_ping"), get("/v1.41/containers/json?all=1"))
        assert refused.status == 400 and shown.status == 200 and ping.body == b"OK" and listed.status == 200
        assert runner.server.requests_count == before + 1, "a plain request after the start went to aiohttp"

    run(tmp, scenario)


def test_pipelined_requests_are_answered_in_order(tmp: str) -> None:
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        await _setup_container(aio)
        body = b'{"Image":"tiny:1","Cmd":["/bin/true"]}'
        answers = await exchange(
            fast, get("/v1.41/containers/fp1/json"), post("/v1.41/containers/create?name=fp3", body),
            get("/v1.41/containers/fp3/json"), get("/v1.41/_ping"), together=True)
        assert [a.status for a in answers] == [200, 201, 200, 200]
        assert json.loads(answers[2].body)["Name"] == "/fp3"

    run(tmp, scenario)


def test_chunked_body_gives_the_connection_to_aiohttp(tmp: str) -> None:
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        await _setup_container(aio)
        body = b'{"Image":"tiny:1","Cmd":["/bin/true"]}'
        chunked = (b"POST /v1.41/containers/create?name=fp4 HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        made, shown, ping = await exchange(fast, chunked, get("/v1.41/containers/fp4/json"), get("/_ping"))
        assert made.status == 201
        assert json.loads(shown.body)["Name"] == "/fp4"
        assert ping.body == b"OK"

    run(tmp, scenario)


def test_body_in_pieces_and_http10(tmp: str) -> None:
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        await _setup_container(aio)
        body = b'{"Image":"tiny:1","Cmd":["/bin/true"]}'
        req = post("/v1.41/containers/create?name=fp5", body)
        reader, writer = await asyncio.open_unix_connection(fast)
        for i in range(0, len(req), 7):  # head and body arrive a few bytes at a time
            writer.write(req[i:i + 7])
            await writer.drain()
            await asyncio.sleep(0.001)
        assert (await read_response(reader)).status == 201
        writer.write(get("/v1.41/containers/fp5/json"))
        assert json.loads((await read_response(reader)).body)["Name"] == "/fp5"
        writer.close()
        reader, writer = await asyncio.open_unix_connection(fast)
        writer.write(b"GET /_ping HTTP/1.0\r\n\r\n")
        resp = await read_response(reader)
        assert resp.status_line == "HTTP/1.0 200 OK" and resp.body == b"OK"
        writer.close()

    run(tmp, scenario)


@pytest.mark.parametrize("head,plain,length", [
    (b"GET /_ping HTTP/1.1\r\nHost: x", True, 0),
    (b"GET /_ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0", True, 0),
    (b"GET /_ping HTTP/1.1\r\nContent-Length: 3", False, 3),
    (b"POST /x HTTP/1.1\r\nContent-Length: 12", True, 12),  # plain if its handler reads a body
    (b"POST /x HTTP/1.1\r\nContent-Length: 65537", False, 65537),
    (b"DELETE /x HTTP/1.1\r\nContent-Length: 2", False, 2),
    (b"POST /x HTTP/1.1\r\nContent-Length: -1", False, None),
    (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", False, None),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked", False, None),
    (b"POST /x/attach HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp", False, None),
    (b"GET /_ping HTTP/1.0", False, 0),
    (b"GET /_ping HTTP/1.1\r\nExpect: 100-continue", False, 0),
])
def test_parse_head(head: bytes, plain: bool, length: int | None) -> None:
    h = fastpath.parse_head(head)
    assert h is not None
    assert (h.plain, h.body_length) == (plain, length)


@pytest.mark.parametrize("head", [
    b"GET /_ping", b"GET  /_ping HTTP/1.1", b"GET /_ping HTTP/2", b"G3T /_ping HTTP/1.1",
    b"GET /_ping HTTP/1.1\r\n folded: x", b"GET /_ping HTTP/1.1\r\nno colon", b"GET /_ping HTTP/1.1\r\nBad Name: x",
])
def test_parse_head_refuses_what_aiohttp_should_judge(head: bytes) -> None:
    assert fastpath.parse_head(head) is None


def test_many_pipelined_plain_requests(tmp: str) -> None:
    """Answered one after the other from the buffer, not by recursion."""
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        answers = await exchange(fast, *([get("/v1.41/_ping")] * 3000), together=True)
        assert [a.body for a in answers] == [b"OK"] * 3000

    run(tmp, scenario)


def _bodiless(method: str, path: str) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def test_bodiless_posts_and_deletes_are_plain(tmp: str) -> None:
    """`POST .../start` and `DELETE /containers/{id}` without a body (two of the four
    requests of every `docker run --rm`) are answered by the fast path with aiohttp's
    bytes: errors in both formats, 204 without a Content-Length, the removal done."""
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        await _setup_container(aio)
        for name in ("fp2", "fp3"):
            [made] = await exchange(aio, post(f"/v1.41/containers/create?name={name}",
                                              b'{"Image":"tiny:1","Cmd":["/bin/true"]}'))
            assert made.status == 201, made.body
        assert runner.server is not None
        for req in (_bodiless("POST", "/v1.41/containers/nope/start"), _bodiless("POST", "/containers/nope/start"),
                    _bodiless("POST", "/v1.12/containers/nope/start"),
                    _bodiless("DELETE", "/v1.41/containers/nope"), _bodiless("DELETE", "/v1.12/containers/nope?force=1")):
            before = runner.server.requests_count
            [f] = await exchange(fast, req)
            assert runner.server.requests_count == before, f"{req!r} was not answered by the fast path"
            [a] = await exchange(aio, req)
            assert f.comparable() == a.comparable(), req
        before = runner.server.requests_count
        [f] = await exchange(fast, _bodiless("DELETE", "/v1.41/containers/fp2"))
        assert runner.server.requests_count == before
        [a] = await exchange(aio, _bodiless("DELETE", "/v1.41/containers/fp3"))
        assert f.status == 204 and f.comparable() == a.comparable() and f.header("Content-Length") is None
        [gone] = await exchange(fast, get("/v1.41/containers/fp2/json"))
        assert gone.status == 404
        # with a body, a start is aiohttp's (the pre-1.24 HostConfig body is judged there)
        before = runner.server.requests_count
        [f] = await exchange(fast, post("/v1.41/containers/nope/start", b'{"Binds":null}'))
        assert runner.server.requests_count == before + 1 and f.status == 400

    run(tmp, scenario)


def test_create_with_a_body_is_plain(tmp: str) -> None:
    """`POST /containers/create` with a JSON body of known length (the first request of
    every run) is answered by the fast path, body buffered whole even when it comes in
    pieces, with aiohttp's bytes for the answers and the errors it can give."""
    async def scenario(fast: str, aio: str, runner: web.AppRunner) -> None:
        await _setup_container(aio)
        assert runner.server is not None
        cases = [
            (post("/v1.41/containers/create?name=dup", b'{"Image":"tiny:1","Cmd":["/bin/true"]}'), 201),
            (post("/v1.41/containers/create?name=dup", b'{"Image":"tiny:1","Cmd":["/bin/true"]}'), 409),  # the name is taken now
            (post("/v1.41/containers/create", b"{bad"), 500),
            (post("/v1.41/containers/create", b'{"Image":"tiny:1","Cmd":["/bin/true"]}', "text/plain"), 400),
            (post("/v1.12/containers/create", b'{"Image":"nope:1","Cmd":["/bin/true"]}'), 404),
            (post("/v1.41/containers/create?name=x/y", b'{"Image":"tiny:1","Cmd":["/bin/true"]}'), 400),
        ]
        for req, status in cases:
            for sock in (fast, aio):
                if req.startswith(b"POST /v1.41/containers/create?name=dup") and status == 201 and sock == aio:
                    req = req.replace(b"name=dup", b"name=dup2")
                before = runner.server.requests_count
                [r] = await exchange(sock, req)
                assert r.status == status, (req, r.body)
                if sock == fast:
                    assert runner.server.requests_count == before, f"{req!r} was not answered by the fast path"
                    f = r
                else:
                    a = r
            if status != 201:
                assert f.comparable() == a.comparable(), req
            else:
                assert f.headers == a.headers or [h for h in f.headers if h[0] != "Date"] == [
                    h for h in a.headers if h[0] != "Date"], req
                assert set(json.loads(f.body)) == set(json.loads(a.body)) == {"Id", "Warnings"}
        # the body in pieces, then a plain GET on the same connection
        req = post("/v1.41/containers/create?name=pieces", b'{"Image":"tiny:1","Cmd":["/bin/true"]}')
        reader, writer = await asyncio.open_unix_connection(fast)
        before = runner.server.requests_count
        for i in range(0, len(req), 7):
            writer.write(req[i:i + 7])
            await writer.drain()
            await asyncio.sleep(0.001)
        made = await read_response(reader)
        writer.write(get("/v1.41/containers/pieces/json"))
        got = await read_response(reader)
        writer.close()
        assert made.status == 201 and got.status == 200 and runner.server.requests_count == before
        assert json.loads(got.body)["Id"] == json.loads(made.body)["Id"]
        # a body over the fast path's limit is aiohttp's
        big = json.dumps({"Image": "tiny:1", "Cmd": ["/bin/true"], "Labels": {"x": "y" * 70000}}).encode()
        before = runner.server.requests_count
        [r] = await exchange(fast, post("/v1.41/containers/create", big))
        assert r.status == 201 and runner.server.requests_count == before + 1

    run(tmp, scenario)


def test_an_eagerly_started_answer_keeps_one_context_of_its_own() -> None:
    """A context variable set before the answer's first wait is reset after it without
    error (the trace's current step), and the connection's context never sees it."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("step", default="none")
    seen: list[str] = []

    async def answer() -> None:
        token = var.set("create")
        await asyncio.sleep(0)  # the first real wait: the rest runs in a task
        seen.append(var.get())
        var.reset(token)  # ValueError if the task's context were another
        seen.append(var.get())

    async def main() -> None:
        task = fastpath.start_eagerly(answer())
        assert task is not None
        seen.append(var.get())  # the connection's context, between the two parts
        await task

    asyncio.run(main())
    assert seen == ["none", "create", "none"]
