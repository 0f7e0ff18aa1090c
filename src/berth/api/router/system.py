"""System routes (moby/api/server/router/system/system_routes.go)."""
from __future__ import annotations

from aiohttp import web

from ... import errdefs
from ...types import gojson
from ...types.auth import AuthConfig
from .. import versions
from ..backend import BACKEND
from ..fastpath import plain_reply
from ..httputils import MIN_VERSION, bool_value, json_body, version_from_request
from ..server import MAX_VERSION
from . import unserved


@plain_reply
async def ping(request: web.Request) -> web.StreamResponse:
    headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}
    if versions.newer_than_legacy(version_from_request(request)):
        # 1.42: the Swarm header (unversioned in dockerd 29; 20.10 had none). No
        # Builder-Version: Berth has no builder to recommend.
        headers["Swarm"] = "inactive"
    if request.method == "HEAD":
        # Go's server sends Content-Length: 0 for a HEAD whose handler wrote nothing.
        headers["Content-Length"] = "0"
        return web.Response(status=200, headers=headers, content_type="text/plain", charset="utf-8")
    return web.Response(status=200, text="OK", headers=headers, content_type="text/plain", charset="utf-8")


@plain_reply
async def get_version(request: web.Request) -> web.StreamResponse:
    return json_body(await request.app[BACKEND].system_version(MAX_VERSION, MIN_VERSION))


@plain_reply
async def get_info(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    info = await backend.system_info()
    return json_body(versions.system_info(info, version_from_request(request), backend.cgroup_v2))


async def get_disk_usage(request: web.Request) -> web.StreamResponse:
    """getDiskUsage: `type` from 1.42, `verbose` and the usage summaries from 1.52
    (api/versions_system.py system_df); anonymous volumes labelled from 1.42."""
    version = version_from_request(request)
    types = versions.df_types(request.query.getall("type", []), version)
    verbose = versions.at_least(version, "1.52") and bool_value(request, "verbose")
    usage = await request.app[BACKEND].system_disk_usage(versions.volume_anonymous_label(version))
    return json_body(versions.system_df(usage, version, types, verbose))


async def post_auth(request: web.Request) -> web.StreamResponse:
    """postAuth: the body is a types.AuthConfig (a bad one is Go's decode error, a 500)."""
    try:
        auth = gojson.decode(await request.read(), AuthConfig, go_type_name="types.AuthConfig")
    except gojson.GoJSONError as e:
        raise errdefs.Untyped(str(e)) from None
    status, token = await request.app[BACKEND].auth(auth, request.headers.get("User-Agent", ""))
    return json_body({"IdentityToken": token, "Status": status})


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", get_version),
    ("GET", "/info", get_info),
    ("GET", "/system/df", get_disk_usage),
    ("POST", "/auth", post_auth),
    *unserved.ROUTES,
]
