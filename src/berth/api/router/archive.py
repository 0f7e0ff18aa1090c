"""docker cp and export routes (moby api/server/router/container/copy.go
headContainersArchive, getContainersArchive, putContainersArchive;
container_routes.go getContainersExport)."""
from __future__ import annotations

import base64
from collections.abc import AsyncIterator

from aiohttp import web

from ... import errdefs
from ...types import gojson
from ..backend import BACKEND
from ..httputils import bool_value, stream_body


def _archive_form_values(request: web.Request) -> tuple[str, str]:
    """httputils.ArchiveFormValues (the missing space is dockerd's)."""
    path = request.query.get("path", "")
    if path == "":
        raise errdefs.InvalidParameter("bad parameter: pathcannot be empty")
    return request.match_info["name"], path


def _stat_header(stat: object) -> str:
    """setContainerPathStatHeader: base64 of json.Marshal(stat)."""
    return base64.b64encode(gojson.encode_stream(stat).rstrip(b"\n")).decode()


async def head_containers_archive(request: web.Request) -> web.StreamResponse:
    name, path = _archive_form_values(request)
    stat = await request.app[BACKEND].container_stat_path(name, path)
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})


async def get_containers_archive(request: web.Request) -> web.StreamResponse:
    name, path = _archive_form_values(request)
    chunks, stat = await request.app[BACKEND].container_archive_path(name, path)
    return await stream_body(request, chunks, "application/x-tar",
                             {"X-Docker-Container-Path-Stat": _stat_header(stat)})


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(65536):
        yield chunk


async def put_containers_archive(request: web.Request) -> web.StreamResponse:
    name, path = _archive_form_values(request)
    await request.app[BACKEND].container_extract_to_dir(
        name, path, bool_value(request, "copyUIDGID"), bool_value(request, "noOverwriteDirNonDir"), _body(request))
    return web.Response(status=200)


async def get_containers_export(request: web.Request) -> web.StreamResponse:
    chunks = await request.app[BACKEND].container_export(request.match_info["name"])
    return await stream_body(request, chunks, "application/x-tar")


ROUTES = [
    ("HEAD", "/containers/{name:.*}/archive", head_containers_archive),
    ("GET", "/containers/{name:.*}/archive", get_containers_archive),
    ("PUT", "/containers/{name:.*}/archive", put_containers_archive),
    ("GET", "/containers/{name:.*}/export", get_containers_export),
]
