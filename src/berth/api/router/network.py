"""The network routes (moby v20.10.24 api/server/router/network/network.go, network_routes.go).

    GET    /networks                 getNetworksList
    GET    /networks/{id:.*}         getNetwork
    POST   /networks/create          postNetworkCreate
    POST   /networks/{id:.*}/connect     postNetworkConnect
    POST   /networks/{id:.*}/disconnect  postNetworkDisconnect
    POST   /networks/prune           postNetworksPrune
    DELETE /networks/{id:.*}         deleteNetwork
"""
from __future__ import annotations

import msgspec
from aiohttp import web

from ... import errdefs
from ...container.container import NetworkEndpoint
from ...network.types import (
    NetworkConnect,
    NetworkCreateRequest,
    NetworkCreateResponse,
    NetworkDisconnect,
    NetworksPruneReport,
)
from ...types.filters import Args
from ..backend import BACKEND
from ..fastpath import plain_reply
from ..httputils import check_for_json, json_body, read_json


@plain_reply
async def get_networks_list(request: web.Request) -> web.StreamResponse:
    try:
        filters = Args.from_json(request.query.get("filters", ""))
    except errdefs.InvalidParameter:
        raise
    except errdefs.DockerError as e:
        raise errdefs.Untyped(str(e)) from None
    d = request.app[BACKEND]
    return json_body(await d.network_list(filters))


@plain_reply
async def get_network(request: web.Request) -> web.StreamResponse:
    d = request.app[BACKEND]
    return json_body(await d.network_inspect(request.match_info["id"]))


async def post_network_create(request: web.Request) -> web.StreamResponse:
    check_for_json(request)
    req = await read_json(request, NetworkCreateRequest, "types.NetworkCreateRequest")
    d = request.app[BACKEND]
    nid, warning = await d.network_create(req)
    return json_body(NetworkCreateResponse(Id=nid, Warning=warning), status=201)


async def post_network_connect(request: web.Request) -> web.StreamResponse:
    check_for_json(request)
    req = await read_json(request, NetworkConnect, "types.NetworkConnect")
    d = request.app[BACKEND]
    await d.network_connect(request.match_info["id"], req.Container, _decode_endpoint(req.EndpointConfig))
    return web.Response(status=200)


async def post_network_disconnect(request: web.Request) -> web.StreamResponse:
    check_for_json(request)
    req = await read_json(request, NetworkDisconnect, "types.NetworkDisconnect")
    d = request.app[BACKEND]
    await d.network_disconnect(request.match_info["id"], req.Container, req.Force)
    return web.Response(status=200)


async def delete_network(request: web.Request) -> web.StreamResponse:
    d = request.app[BACKEND]
    await d.network_remove(request.match_info["id"])
    return web.Response(status=204)


async def post_networks_prune(request: web.Request) -> web.StreamResponse:
    filters = Args.from_json(request.query.get("filters", ""))
    d = request.app[BACKEND]
    deleted = await d.networks_prune(filters)
    return json_body(NetworksPruneReport(NetworksDeleted=deleted))


def _decode_endpoint(obj: object) -> NetworkEndpoint | None:
    """The connect request's EndpointConfig as the endpoint the daemon records."""
    if obj is None:
        return None
    return msgspec.convert(msgspec.to_builtins(obj), NetworkEndpoint)


ROUTES = [
    ("GET", "/networks", get_networks_list),
    ("GET", "/networks/{id:.*}", get_network),
    ("POST", "/networks/create", post_network_create),
    ("POST", "/networks/prune", post_networks_prune),
    ("POST", "/networks/{id:.*}/connect", post_network_connect),
    ("POST", "/networks/{id:.*}/disconnect", post_network_disconnect),
    ("DELETE", "/networks/{id:.*}", delete_network),
]
