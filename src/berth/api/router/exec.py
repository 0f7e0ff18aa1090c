"""Exec routes (moby api/server/router/container/exec.go): create, start (hijacked unless
detached), inspect, resize."""
from __future__ import annotations

import logging

from aiohttp import web

from ... import ENGINE_VERSION, errdefs
from ...types.exec import ExecConfig, ExecStartCheck
from .. import versions
from ..backend import BACKEND
from ..hijack import HijackedConn, HijackedResponse, upgrade_requested
from ..httputils import DEFAULT_VERSION, check_for_json, json_body, read_json, version_from_request, version_less_than
from .attach import atoi

log = logging.getLogger("berth.api")


async def post_container_exec_create(request: web.Request) -> web.StreamResponse:
    check_for_json(request)
    config = await read_json(request, ExecConfig, "types.ExecConfig")
    assert isinstance(config, ExecConfig)
    version = version_from_request(request)
    config.ConsoleSize = versions.exec_console_size(version, config.ConsoleSize) or None
    if not config.Cmd:
        raise errdefs.InvalidParameter("No exec command specified")
    name = request.match_info["name"]
    try:
        id_ = await request.app[BACKEND].container_exec_create(name, config)
    except errdefs.DockerError as err:
        log.error("Error setting up exec command in container %s: %s", name, err)
        raise
    return json_body({"Id": id_}, status=201)


def _hijack_headers() -> str:
    """The headers the version middleware had set before the hijack (WriteSubset, sorted)."""
    return (f"Api-Version: {DEFAULT_VERSION}\r\nDocker-Experimental: false\r\nOstype: linux\r\n"
            f"Server: Docker/{ENGINE_VERSION} (linux)\r\n")


async def post_container_exec_start(request: web.Request) -> web.StreamResponse:
    version = version_from_request(request)
    if not version_less_than(version, "1.22"):
        check_for_json(request)
    check = await read_json(request, ExecStartCheck, "types.ExecStartCheck")
    assert isinstance(check, ExecStartCheck)
    name = request.match_info["name"]
    backend = request.app[BACKEND]
    await backend.exec_exists(name)
    console = versions.exec_console_size(version, check.ConsoleSize, bool(check.Tty)) or None
    if check.Detach:
        await backend.container_exec_start(name, None, False, console)
        return web.Response(status=200)
    upgrade = upgrade_requested(request)
    multiplexed = not check.Tty
    conn = HijackedConn(request)
    # dockerd writes the head before it starts the process; 1.42+: `multiplexed-stream`
    # on an upgraded, non-TTY exec (api/versions.py hijack_content_type).
    conn.write_head(upgrade, versions.hijack_content_type(version, multiplexed, upgrade), _hijack_headers())

    async def get_streams() -> HijackedConn:
        return conn

    try:
        await backend.container_exec_start(name, get_streams, multiplexed, console)
    except errdefs.DockerError as err:
        log.error("Error running exec %s in container: %s", name, err)
        msg = (str(err) + "\r\n").encode()
        try:
            await conn.write(bytes((1, 0, 0, 0)) + len(msg).to_bytes(4, "big") + msg if multiplexed else msg)
        except ConnectionError:
            pass
    finally:
        conn.close()
    return HijackedResponse()


async def get_exec_by_id(request: web.Request) -> web.StreamResponse:
    result = await request.app[BACKEND].container_exec_inspect(request.match_info["id"])
    return json_body(result)


async def post_container_exec_resize(request: web.Request) -> web.StreamResponse:
    height = atoi(request, "h")
    width = atoi(request, "w")
    await request.app[BACKEND].container_exec_resize(request.match_info["name"], height, width)
    return web.Response(status=200)


ROUTES = [
    ("POST", "/containers/{name:.*}/exec", post_container_exec_create),
    ("POST", "/exec/{name:.*}/start", post_container_exec_start),
    ("GET", "/exec/{id:.*}/json", get_exec_by_id),
    ("POST", "/exec/{name:.*}/resize", post_container_exec_resize),
]
