"""top, changes (diff) and stats routes (moby api/server/router/container/
container_routes.go getContainersTop, getContainersChanges, getContainersStats)."""
from __future__ import annotations

from aiohttp import web

from ..backend import BACKEND
from ..httputils import bool_value, bool_value_or_default, json_body, stream_body


async def get_containers_top(request: web.Request) -> web.StreamResponse:
    body = await request.app[BACKEND].container_top(request.match_info["name"], request.query.get("ps_args", ""))
    return json_body(body)


async def get_containers_changes(request: web.Request) -> web.StreamResponse:
    return json_body(await request.app[BACKEND].container_changes(request.match_info["name"]))


async def get_containers_stats(request: web.Request) -> web.StreamResponse:
    stream = bool_value_or_default(request, "stream", True)
    one_shot = stream is False and bool_value(request, "one-shot")
    docs = await request.app[BACKEND].container_stats(request.match_info["name"], stream, one_shot)
    return await stream_body(request, docs, "application/json")


ROUTES = [
    ("GET", "/containers/{name:.*}/top", get_containers_top),
    ("GET", "/containers/{name:.*}/changes", get_containers_changes),
    ("GET", "/containers/{name:.*}/stats", get_containers_stats),
]
