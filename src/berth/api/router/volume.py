"""The volume routes (moby v20.10.24 api/server/router/volume/volume.go, volume_routes.go).

    GET    /volumes            getVolumesList
    GET    /volumes/{name:.*}  getVolumeByName
    POST   /volumes/create     postVolumesCreate
    POST   /volumes/prune      postVolumesPrune
    DELETE /volumes/{name:.*}  deleteVolumes

Names may contain `/` (the route pattern is `.*`), and an empty name is looked up as
such (`get: no such volume`). Two error classes differ between routes, as in
dockerd: a malformed `filters` is a 400 prefixed `error reading volume filters: ` on
list but an untyped 500 on prune; a body that does not decode is a 400 on create.
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from ... import errdefs
from ...types import gojson
from ...types.filters import Args
from ...types.volume import VolumeCreateBody, VolumeListOKBody
from ...volume.service import VolumeService
from .. import versions
from ..fastpath import plain_reply
from ..httputils import bool_value, check_for_json, json_body, version_from_request

VOLUME_SERVICE = web.AppKey("volume_service", VolumeService)


@plain_reply
async def get_volumes_list(request: web.Request) -> web.StreamResponse:
    """`GET /volumes`: `{"Volumes":[...],"Warnings":null}`; filters dangling/driver/label/name."""
    try:
        filters = Args.from_json(request.query.get("filters", ""))
    except errdefs.DockerError as e:
        raise errdefs.InvalidParameter(f"error reading volume filters: {e}") from None
    service = request.app[VOLUME_SERVICE]
    anon = versions.volume_anonymous_label(version_from_request(request))
    volumes, warnings = await asyncio.to_thread(service.list, filters, anon)
    return json_body(VolumeListOKBody(Volumes=volumes, Warnings=warnings))


@plain_reply
async def get_volume_by_name(request: web.Request) -> web.StreamResponse:
    """`GET /volumes/{name}`: the volume, or 404 `get <name>: no such volume`."""
    service = request.app[VOLUME_SERVICE]
    anon = versions.volume_anonymous_label(version_from_request(request))
    volume = await asyncio.to_thread(service.get, request.match_info["name"], None, None, anon)
    return json_body(volume)


async def post_volumes_create(request: web.Request) -> web.StreamResponse:
    """`POST /volumes/create`: 201 with the (new or existing) volume."""
    check_for_json(request)
    body = await request.read()
    try:
        req = gojson.decode(body, VolumeCreateBody, go_type_name="volume.VolumeCreateBody")
    except gojson.GoJSONError as e:
        # The route decodes with json.NewDecoder itself and classifies every failure.
        if str(e) == "EOF":
            raise errdefs.InvalidParameter("got EOF while reading request body") from None
        raise errdefs.InvalidParameter(str(e)) from None
    service = request.app[VOLUME_SERVICE]
    anon = versions.volume_anonymous_label(version_from_request(request))
    volume = await asyncio.to_thread(service.create, req.Name, req.Driver, req.DriverOpts, req.Labels, None, anon)
    return json_body(volume, status=201)


async def post_volumes_prune(request: web.Request) -> web.StreamResponse:
    """`POST /volumes/prune`: `{"VolumesDeleted":[...],"SpaceReclaimed":N}`."""
    filters = Args.from_json(request.query.get("filters", ""))  # errors stay untyped (500)
    version = version_from_request(request)
    filters = versions.volume_prune_filters(filters, version)
    service = request.app[VOLUME_SERVICE]
    report = await asyncio.to_thread(service.prune, filters, versions.volume_anonymous_label(version))
    return json_body(report)


async def delete_volumes(request: web.Request) -> web.StreamResponse:
    """`DELETE /volumes/{name}?force=`: 204; force ignores a missing volume."""
    service = request.app[VOLUME_SERVICE]
    await asyncio.to_thread(service.remove, request.match_info["name"], bool_value(request, "force"))
    return web.Response(status=204)


ROUTES = [
    ("GET", "/volumes", get_volumes_list),
    ("GET", "/volumes/{name:.*}", get_volume_by_name),
    ("POST", "/volumes/create", post_volumes_create),
    ("POST", "/volumes/prune", post_volumes_prune),
    ("DELETE", "/volumes/{name:.*}", delete_volumes),
]
