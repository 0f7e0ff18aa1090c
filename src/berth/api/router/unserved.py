"""Endpoints Berth does not serve, answering as a dockerd that is not a swarm node,
has no plugins, no builder, no registry access.

Routes and request checks follow moby v20.10.24 api/server/router/swarm/cluster.go
and cluster_routes.go, plugin/plugin.go and plugin_routes.go, build/build.go,
session/session.go, grpc/grpc.go, distribution/distribution.go: a request is
parsed and checked exactly as there (same status and message for a missing body,
bad JSON, bad version), and then refused the way that daemon refuses it when the
feature is off: 503 "This node is not a swarm manager…" for swarm objects, 404
`plugin "x" not found` for plugins. What only works with a feature Berth lacks
(initialising a swarm, pulling a plugin, building) is 501; distribution lookups are served.

From API 1.42 on dockerd 29 classifies "Bad parameters: you must choose at least
one stream" as a 400 (20.10 answers 500); everything else is the same at every
version. Attestations (1.55) and debug endpoints are past 1.52: not routed.
"""
from __future__ import annotations

import json
from typing import Any

import msgspec
from aiohttp import web

from ... import errdefs
from ...types import gojson
from ...types.filters import Args
from .. import versions
from ..backend import BACKEND
from ..httputils import bool_value, meta_headers, read_json, registry_auth, version_from_request

NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node '
    "to swarm and try again."
)
NOT_IN_SWARM = "This node is not part of a swarm"


class _InitRequest(msgspec.Struct):
    ListenAddr: str = ""


class _Object(msgspec.Struct):
    """Any JSON object: a Go struct whose fields Berth does not need."""


def _check_version(request: web.Request, kind: str, with_detail: bool = True) -> None:
    """strconv.ParseUint(r.Form.Get("version"), 10, 64) as the update routes do."""
    raw = request.query.get("version", "")
    if raw.isdigit():
        return
    if with_detail:
        raise errdefs.InvalidParameter(
            f"invalid {kind} version '{raw}': strconv.ParseUint: parsing \"{raw}\": invalid syntax"
        )
    raise errdefs.InvalidParameter(f"invalid {kind} version")


async def not_a_manager(request: web.Request) -> web.StreamResponse:
    raise errdefs.Unavailable(NOT_A_MANAGER)


async def swarm_leave(request: web.Request) -> web.StreamResponse:
    raise errdefs.Unavailable(NOT_IN_SWARM)


async def swarm_init_or_join(request: web.Request) -> web.StreamResponse:
    req = await read_json(request, _InitRequest, "swarm.InitRequest")
    if not req.ListenAddr:
        raise errdefs.InvalidParameter('invalid ListenAddr "": invalid empty address')
    raise errdefs.NotImplemented("swarm mode is not supported by Berth")


def _decode_then(kind: str | None, detail: bool = True) -> Any:
    """A handler that reads the JSON body (and the `version` of an update), then 503."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await read_json(request, _Object, "swarm.Spec")
        if kind is not None:
            _check_version(request, kind, detail)
        raise errdefs.Unavailable(NOT_A_MANAGER)

    return handler


async def list_swarm_objects(request: web.Request) -> web.StreamResponse:
    Args.from_json(request.query.get("filters", ""))  # a malformed filter is a 400 first
    raise errdefs.Unavailable(NOT_A_MANAGER)


async def swarm_logs(request: web.Request) -> web.StreamResponse:
    """getServiceLogs / getTaskLogs: the stream check comes before the cluster."""
    if not bool_value(request, "stdout") and not bool_value(request, "stderr"):
        msg = "Bad parameters: you must choose at least one stream"
        if versions.newer_than_legacy(version_from_request(request)):
            raise errdefs.InvalidParameter(msg)
        raise errdefs.Untyped(msg)
    raise errdefs.Unavailable(NOT_A_MANAGER)


# --- plugins -------------------------------------------------------------------------------------

def _plugin_not_found(name: str) -> errdefs.NotFound:
    return errdefs.NotFound(f'plugin "{name}" not found')


async def get_plugins(request: web.Request) -> web.StreamResponse:
    try:
        Args.from_json(request.query.get("filters", ""))
    except errdefs.DockerError as e:  # untyped in the plugin router: a 500
        raise errdefs.Untyped(str(e)) from None
    return web.Response(body=b"[]\n", content_type="application/json")


async def plugin_by_name(request: web.Request) -> web.StreamResponse:
    raise _plugin_not_found(request.match_info["name"])


async def plugin_enable(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("timeout", "")
    try:
        int(raw)
    except ValueError:
        raise errdefs.Untyped(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None
    raise _plugin_not_found(request.match_info["name"])


async def plugin_set(request: web.Request) -> web.StreamResponse:
    await read_json(request, list[str], "[]string")
    raise _plugin_not_found(request.match_info["name"])


async def _privileges(request: web.Request) -> None:
    body = await request.read()
    try:
        gojson.decode(body, list[_Object], go_type_name="types.PluginPrivileges")
    except gojson.GoJSONError as e:
        raise errdefs.Untyped(f"failed to parse privileges: {e}") from None


async def plugin_pull_or_upgrade(request: web.Request) -> web.StreamResponse:
    await _privileges(request)
    if not request.query.get("remote", ""):
        raise errdefs.Untyped("invalid reference format")
    raise errdefs.NotImplemented("plugins are not supported by Berth")


async def plugin_privileges(request: web.Request) -> web.StreamResponse:
    if not request.query.get("remote", ""):
        raise errdefs.Untyped("invalid reference format")
    raise errdefs.NotImplemented("plugins are not supported by Berth")


async def plugin_create(request: web.Request) -> web.StreamResponse:
    name = request.query.get("name", "")
    if not name:
        raise errdefs.Untyped("failed to parse reference : invalid reference format")
    raise errdefs.NotImplemented("plugins are not supported by Berth")


# --- build, session, grpc, distribution --------------------------------------------------------

async def build_prune(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b'{"CachesDeleted":null,"SpaceReclaimed":0}\n', content_type="application/json")


async def build_cancel(request: web.Request) -> web.StreamResponse:
    if not request.query.get("id", ""):
        raise errdefs.Untyped("build ID not provided")
    return web.Response(status=200, content_type="application/json")


async def session(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "") == "":
        raise errdefs.InvalidParameter("no upgrade proto in request")
    raise errdefs.NotImplemented("sessions are not supported by Berth")


async def grpc(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "") == "":
        raise errdefs.Untyped("no upgrade proto in request")
    raise errdefs.NotImplemented("gRPC (BuildKit) is not supported by Berth")


async def distribution_info(request: web.Request) -> web.StreamResponse:
    """getDistributionInfo (served: the registry client exists now)."""
    doc = await request.app[BACKEND].distribution_inspect(
        request.match_info["name"], registry_auth(request), meta_headers(request),
        request.headers.get("User-Agent", ""))
    # WriteJSON: the struct's field order, HTML characters as they are
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    return web.Response(body=body, content_type="application/json")


_UPDATE = {kind: _decode_then(kind, detail) for kind, detail in
           (("swarm", True), ("node", True), ("service", True), ("secret", False), ("config", False))}

ROUTES: list[tuple[str, str, Any]] = [
    # swarm (cluster.go)
    ("GET", "/swarm", not_a_manager),
    ("POST", "/swarm/init", swarm_init_or_join),
    ("POST", "/swarm/join", swarm_init_or_join),
    ("POST", "/swarm/leave", swarm_leave),
    ("GET", "/swarm/unlockkey", not_a_manager),
    ("POST", "/swarm/update", _UPDATE["swarm"]),
    ("POST", "/swarm/unlock", _decode_then(None)),
    ("GET", "/services", list_swarm_objects),
    ("GET", "/services/{id}", not_a_manager),
    ("POST", "/services/create", _decode_then(None)),
    ("POST", "/services/{id}/update", _UPDATE["service"]),
    ("DELETE", "/services/{id}", not_a_manager),
    ("GET", "/services/{id}/logs", swarm_logs),
    ("GET", "/nodes", list_swarm_objects),
    ("GET", "/nodes/{id}", not_a_manager),
    ("DELETE", "/nodes/{id}", not_a_manager),
    ("POST", "/nodes/{id}/update", _UPDATE["node"]),
    ("GET", "/tasks", list_swarm_objects),
    ("GET", "/tasks/{id}", not_a_manager),
    ("GET", "/tasks/{id}/logs", swarm_logs),
    ("GET", "/secrets", list_swarm_objects),
    ("POST", "/secrets/create", _decode_then(None)),
    ("DELETE", "/secrets/{id}", not_a_manager),
    ("GET", "/secrets/{id}", not_a_manager),
    ("POST", "/secrets/{id}/update", _UPDATE["secret"]),
    ("GET", "/configs", list_swarm_objects),
    ("POST", "/configs/create", _decode_then(None)),
    ("DELETE", "/configs/{id}", not_a_manager),
    ("GET", "/configs/{id}", not_a_manager),
    ("POST", "/configs/{id}/update", _UPDATE["config"]),
    # plugins (plugin.go)
    ("GET", "/plugins", get_plugins),
    ("GET", "/plugins/privileges", plugin_privileges),
    ("GET", "/plugins/{name:.*}/json", plugin_by_name),
    ("DELETE", "/plugins/{name:.*}", plugin_by_name),
    ("POST", "/plugins/{name:.*}/enable", plugin_enable),
    ("POST", "/plugins/{name:.*}/disable", plugin_by_name),
    ("POST", "/plugins/pull", plugin_pull_or_upgrade),
    ("POST", "/plugins/{name:.*}/push", plugin_by_name),
    ("POST", "/plugins/{name:.*}/upgrade", plugin_pull_or_upgrade),
    ("POST", "/plugins/{name:.*}/set", plugin_set),
    ("POST", "/plugins/create", plugin_create),
    # build, session, grpc, distribution
    ("POST", "/build/prune", build_prune),
    ("POST", "/build/cancel", build_cancel),
    ("POST", "/session", session),
    ("POST", "/grpc", grpc),
    ("GET", "/distribution/{name:.*}/json", distribution_info),
]
