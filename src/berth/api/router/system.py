"""System routes (moby/api/server/router/system/system_routes.go)."""
from __future__ import annotations

from aiohttp import web

from ... import errdefs
from ..backend import BACKEND
from ..httputils import MIN_VERSION, json_body


async def ping(request: web.Request) -> web.StreamResponse:
    headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}
    if request.method == "HEAD":
        return web.Response(status=200, headers=headers, content_type="text/plain", charset="utf-8")
    return web.Response(status=200, text="OK", headers=headers, content_type="text/plain", charset="utf-8")


async def get_version(request: web.Request) -> web.StreamResponse:
    from ..server import MAX_VERSION

    return json_body(await request.app[BACKEND].system_version(MAX_VERSION, MIN_VERSION))


async def get_info(request: web.Request) -> web.StreamResponse:
    return json_body(await request.app[BACKEND].system_info())


async def get_disk_usage(request: web.Request) -> web.StreamResponse:
    return json_body(await request.app[BACKEND].system_disk_usage())


async def not_a_swarm(request: web.Request) -> web.StreamResponse:
    """Swarm endpoints on a daemon that is not a swarm node."""
    raise errdefs.Unavailable(
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
    )


async def swarm_leave(request: web.Request) -> web.StreamResponse:
    raise errdefs.Unavailable("This node is not part of a swarm")


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", get_version),
    ("GET", "/info", get_info),
    ("GET", "/system/df", get_disk_usage),
    ("POST", "/swarm/leave", swarm_leave),
]
