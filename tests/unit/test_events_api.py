"""GET /events over a real unix socket (moby system_routes.go getEvents)."""
from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from berth.api.router import events as events_router
from berth.api.router.events import EVENTS, ROUTES
from berth.api.server import build_app
from berth.events import Events
from berth.types import gojson

CID = "c" * 64


@asynccontextmanager
async def _serve(ev: Events) -> AsyncIterator[aiohttp.ClientSession]:
    """The app on a temporary unix socket with production settings, and a client for it."""
    tmp = tempfile.mkdtemp(prefix="berth-evtest-")
    sock = os.path.join(tmp, "api.sock")
    runner = web.AppRunner(build_app(ROUTES, {EVENTS: ev}))
    await runner.setup()
    site = web.UnixSite(runner, sock)
    await site.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as client:
            yield client
    finally:
        await runner.cleanup()
        if os.path.exists(sock):
            os.unlink(sock)
        os.rmdir(tmp)


def _run(test: Callable[[aiohttp.ClientSession, Events], Awaitable[Any]]) -> None:
    async def main() -> None:
        ev = Events()
        ev.bind_loop()
        async with _serve(ev) as client:
            await asyncio.wait_for(test(client, ev), 20)

    asyncio.run(main())


async def _error(client: aiohttp.ClientSession, query: str) -> tuple[int, Any]:
    async with client.get("http://berth/v1.41/events?" + query) as resp:
        return resp.status, await resp.json()


def test_parameter_errors() -> None:
    async def test(client: aiohttp.ClientSession, ev: Events) -> None:
        assert await _error(client, "since=10&until=5") == (
            400, {"message": "`since` time (10) cannot be after `until` time (5)"})
        assert await _error(client, "since=1.5x") == (
            500, {"message": 'strconv.ParseInt: parsing "5x": invalid syntax'})
        assert await _error(client, "until=abc") == (
            500, {"message": 'strconv.ParseInt: parsing "abc": invalid syntax'})
        assert await _error(client, "filters=xx") == (
            500, {"message": "invalid character 'x' looking for beginning of value"})
        assert ev.subscribers_count() == 0

    _run(test)


def test_past_window_replays_buffered_events_and_ends() -> None:
    async def test(client: aiohttp.ClientSession, ev: Events) -> None:
        vol = ev.log_volume_event("v1", "create", {"driver": "local"})
        ctr = ev.log_container_event(CID, "/web", "busybox", {"a<b": "&"}, "create")
        ev.log_container_event(CID, "/web", "busybox", None, "start")
        now = time.time_ns()
        until = f"{now // 10**9}.{now % 10**9:09d}"  # after the events, before the request
        async with client.get(f"http://berth/v1.41/events?since=0&until={until}"
                              '&filters={"event":{"create":true}}') as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            body = await resp.read()  # ends by itself: `until` is in the past
        assert body == gojson.encode_stream(vol) + gojson.encode_stream(ctr)
        assert b'"a\\u003cb":"\\u0026"' in body  # HTML-escaped, as Go's stream encoder
        # A plain request starts with live events only; until=0 means "no upper bound".
        async with client.get("http://berth/events?since=0&until=0") as resp:
            assert len((await resp.read()).splitlines()) == 3

    _run(test)


def test_live_stream_flushes_each_filtered_event() -> None:
    async def test(client: aiohttp.ClientSession, ev: Events) -> None:
        ev.log_container_event(CID, "/old", "busybox", None, "create")  # buffered: not replayed
        filters = json.dumps({"container": {"web": True}})
        async with client.get("http://berth/v1.41/events", params={"filters": filters}) as resp:
            # Headers arrive before any event exists.
            assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
            for _ in range(50):
                if ev.subscribers_count() == 1:
                    break
                await asyncio.sleep(0.01)
            ev.log_container_event("d" * 64, "/other", "busybox", None, "start")
            first = ev.log_container_event(CID, "/web", "busybox", None, "start")
            line = await asyncio.wait_for(resp.content.readline(), 5)
            assert line == gojson.encode_stream(first)
            # From a worker thread too, each event on its own, while the stream stays open.
            second = await asyncio.to_thread(ev.log_container_event, CID, "/web", "busybox", None, "die",
                                             {"exitCode": "0"})
            line = await asyncio.wait_for(resp.content.readline(), 5)
            assert json.loads(line)["Actor"]["Attributes"] == {"exitCode": "0", "image": "busybox", "name": "web"}
            assert line == gojson.encode_stream(second)

    _run(test)


def test_stream_stops_at_until() -> None:
    async def test(client: aiohttp.ClientSession, ev: Events) -> None:
        until = time.time() + 0.6
        started = time.monotonic()
        async with client.get(f"http://berth/v1.41/events?until={until:.9f}") as resp:
            await asyncio.sleep(0.1)
            live = ev.log_volume_event("v2", "create", {})
            body = await resp.read()
        assert body == gojson.encode_stream(live)
        assert 0.4 < time.monotonic() - started < 3
        assert ev.subscribers_count() == 0

    _run(test)


def test_client_disconnect_unsubscribes(monkeypatch: Any) -> None:
    monkeypatch.setattr(events_router, "_DISCONNECT_POLL", 0.05)

    async def test(client: aiohttp.ClientSession, ev: Events) -> None:
        resp = await client.get("http://berth/v1.41/events")
        for _ in range(100):
            if ev.subscribers_count() == 1:
                break
            await asyncio.sleep(0.01)
        assert ev.subscribers_count() == 1
        resp.close()  # drop the connection
        for _ in range(100):
            if ev.subscribers_count() == 0:
                break
            await asyncio.sleep(0.02)
        assert ev.subscribers_count() == 0

    _run(test)
