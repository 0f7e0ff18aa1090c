"""Attach, attach over a websocket, and resize (moby api/server/router/container/
container_routes.go postContainersAttach, wsContainersAttach, postContainersResize)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSMsgType, web

from ... import errdefs
from ...types.backend import ContainerAttachConfig
from .. import httpstatus, versions
from ..backend import BACKEND
from ..hijack import HijackedConn, HijackedResponse, upgrade_requested
from ..httputils import bool_value, version_at_least, version_from_request

log = logging.getLogger("berth.api")


def atoi(request: web.Request, key: str) -> int:
    """strconv.Atoi of a form value; its error is a 400 here (errdefs.InvalidParameter)."""
    raw = request.query.get(key, "")
    try:
        if raw.strip() != raw or not raw.lstrip("+-").isdigit():
            raise ValueError
        return int(raw)
    except ValueError:
        raise errdefs.InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None


async def post_containers_attach(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    upgrade = upgrade_requested(request)
    version = version_from_request(request)
    conn = HijackedConn(request)

    async def get_streams(multiplexed: bool) -> HijackedConn:
        # 1.42+: `multiplexed-stream` on an upgraded, multiplexed attach (api/versions.py).
        conn.write_head(upgrade, versions.hijack_content_type(version, multiplexed, upgrade))
        return conn

    cfg = ContainerAttachConfig(
        get_streams=get_streams, use_stdin=bool_value(request, "stdin"), use_stdout=bool_value(request, "stdout"),
        use_stderr=bool_value(request, "stderr"), logs=bool_value(request, "logs"),
        stream=bool_value(request, "stream"), detach_keys=request.query.get("detachKeys", ""), mux_streams=True)
    try:
        await request.app[BACKEND].container_attach(name, cfg)
    except errdefs.DockerError as err:
        log.error("Handler for %s %s returned error: %s", request.method, request.path, err)
        conn.write_error(httpstatus.from_error(err), str(err))
    except Exception as err:  # an untyped error is a 500, as in dockerd
        log.exception("attach to %s failed", name)
        conn.write_error(500, str(err))
    finally:
        conn.close()
    return HijackedResponse()


class _WSStreams:
    """A websocket as attach streams (golang.org/x/net/websocket: one frame per write;
    binary frames from API 1.28, text before)."""

    def __init__(self, ws: web.WebSocketResponse, binary: bool) -> None:
        self._ws = ws
        self._binary = binary
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.gone = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type == WSMsgType.BINARY:
                    self._queue.put_nowait(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    self._queue.put_nowait(msg.data.encode())
        finally:
            self._queue.put_nowait(b"")
            self.gone.set()

    async def read(self) -> bytes:
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        if self._ws.closed:
            raise ConnectionResetError("websocket closed")
        if self._binary:
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data.decode("utf-8", "replace"))

    async def close(self) -> None:
        self._reader.cancel()
        await self._ws.close()


async def ws_containers_attach(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    version = version_from_request(request)
    use_stdin = use_stdout = use_stderr = True
    if version_at_least(version, "1.42"):
        use_stdin, use_stdout, use_stderr = (bool_value(request, k) for k in ("stdin", "stdout", "stderr"))
    state: dict[str, Any] = {}

    async def get_streams(multiplexed: bool) -> _WSStreams:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        state["streams"] = s = _WSStreams(ws, binary=version_at_least(version, "1.28"))
        return s

    cfg = ContainerAttachConfig(
        get_streams=get_streams, use_stdin=use_stdin, use_stdout=use_stdout, use_stderr=use_stderr,
        logs=bool_value(request, "logs"), stream=bool_value(request, "stream"),
        detach_keys=request.query.get("detachKeys", ""), mux_streams=False)
    try:
        await request.app[BACKEND].container_attach(name, cfg)
    except errdefs.DockerError:
        if "streams" not in state:
            raise  # before the handshake: an ordinary error answer
        log.exception("Error attaching websocket")
    s = state.get("streams")
    if s is None:
        return web.Response(status=200)
    await s.close()
    return s._ws


async def post_containers_resize(request: web.Request) -> web.StreamResponse:
    height = atoi(request, "h")
    width = atoi(request, "w")
    await request.app[BACKEND].container_resize(request.match_info["name"], height, width)
    return web.Response(status=200)


ROUTES = [
    ("POST", "/containers/{name:.*}/attach", post_containers_attach),
    ("GET", "/containers/{name:.*}/attach/ws", ws_containers_attach),
    ("POST", "/containers/{name:.*}/resize", post_containers_resize),
]
