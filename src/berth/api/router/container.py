"""Container routes (moby/api/server/router/container/container_routes.go).

Handlers are thin: parse, adjust for the API version, one backend call, write.
"""
from __future__ import annotations

import json

import msgspec
from aiohttp import web

from ... import errdefs
from ...pkg import platforms
from ...runconfig.config import decode_container_config
from ...types.backend import ContainerCreateConfig, CreateImageConfig
from ...types.filters import Args
from ...types.gojson_decode import GoJSONError
from .. import versions
from ..backend import BACKEND
from ..fastpath import plain_reply, plain_reply_with_body
from ..httputils import (
    bool_value,
    check_for_json,
    json_body,
    version_at_least,
    version_from_request,
    version_less_than,
)


@plain_reply_with_body
async def post_containers_create(request: web.Request) -> web.StreamResponse:
    check_for_json(request)
    name = request.query.get("name", "")
    body = await request.read()
    # A body Go cannot decode raises gojson.GoJSONError: unclassified, so a 500 with
    # Go's message, exactly as dockerd 20.10 answers (STYLE.md: keep it that way).
    config, hc, nc = decode_container_config(body)
    version = version_from_request(request)
    backend = request.app[BACKEND]
    adjust_cpu_shares = version_less_than(version, "1.19")
    if hc is not None:
        if version_less_than(version, "1.25"):
            hc.AutoRemove = False
        if version_less_than(version, "1.40"):
            for m in hc.Mounts or []:
                bo = m.BindOptions
                if bo is not None and bo is not msgspec.UNSET:
                    bo.NonRecursive = msgspec.UNSET
            hc.KernelMemoryTCP = 0
            if not hc.IpcMode:
                hc.IpcMode = "shareable"
        if version_less_than(version, "1.41") and not backend.cgroup_v2 and not hc.CgroupnsMode:
            hc.CgroupnsMode = "host"
        if hc.PidsLimit is not None and hc.PidsLimit <= 0:
            hc.PidsLimit = None
    versions.health_start_interval(version, config)  # 1.44: Healthcheck.StartInterval
    warnings: list[str] = []
    if versions.newer_than_legacy(version):
        # 1.42+ gates read fields the daemon's types do not carry: use the raw document.
        try:
            raw = json.loads(body) if body else None
        except ValueError:  # Go accepted it (e.g. invalid UTF-8): the structs still apply
            raw = None
        warnings = versions.container_create(version, raw, config, hc, nc)
    platform = None
    if version_at_least(version, "1.41") and (spec := request.query.get("platform", "")):
        platform = platforms.parse(spec)
    result = await backend.container_create(
        ContainerCreateConfig(
            name=name, config=config, host_config=hc, networking_config=nc,
            adjust_cpu_shares=adjust_cpu_shares, platform=platform,
        )
    )
    return json_body(versions.container_create_response(result, version, warnings), status=201)


def _atoi_form(request: web.Request, key: str) -> int:
    """getContainersJSON's strconv.Atoi: a bad value is an untyped error (500)."""
    raw = request.query.get(key, "")
    if not raw:
        return 0
    sign = raw[1:] if raw[:1] in "+-" else raw
    if not (sign.isascii() and sign.isdigit()):
        raise errdefs.Untyped(f'strconv.Atoi: parsing "{raw}": invalid syntax')
    n = int(raw)
    if not -(1 << 63) <= n < (1 << 63):
        raise errdefs.Untyped(f'strconv.Atoi: parsing "{raw}": value out of range')
    return n


@plain_reply
async def get_containers_json(request: web.Request) -> web.StreamResponse:
    filters = Args.from_json(request.query.get("filters", ""))
    result = await request.app[BACKEND].list_containers(
        all_=bool_value(request, "all"),
        limit=_atoi_form(request, "limit"),
        size=bool_value(request, "size"),
        filters=filters,
    )
    return json_body(versions.container_list(result, version_from_request(request)))


@plain_reply
async def get_containers_by_name(request: web.Request) -> web.StreamResponse:
    version = version_from_request(request)
    if version_less_than(version, "1.21"):  # ContainerInspect: the v1p19 and v1p20 shapes
        pre120 = version_less_than(version, "1.20")
        return json_body(await request.app[BACKEND].container_inspect_legacy(request.match_info["name"], pre120))
    result = await request.app[BACKEND].container_inspect(request.match_info["name"], bool_value(request, "size"))
    return json_body(versions.container_inspect(result, version_from_request(request)))


@plain_reply
async def delete_containers(request: web.Request) -> web.StreamResponse:
    await request.app[BACKEND].container_rm(
        request.match_info["name"],
        force=bool_value(request, "force"),
        remove_volume=bool_value(request, "v"),
        remove_link=bool_value(request, "link"),
    )
    return web.Response(status=204)


async def post_container_rename(request: web.Request) -> web.StreamResponse:
    await request.app[BACKEND].container_rename(request.match_info["name"], request.query.get("name", ""))
    return web.Response(status=204)


class _PruneReport(msgspec.Struct):
    ContainersDeleted: list[str] | None
    SpaceReclaimed: int


async def post_containers_prune(request: web.Request) -> web.StreamResponse:
    filters = Args.from_json(request.query.get("filters", ""))
    deleted, reclaimed = await request.app[BACKEND].containers_prune(filters)
    return json_body(_PruneReport(ContainersDeleted=deleted or None, SpaceReclaimed=reclaimed))


async def post_commit(request: web.Request) -> web.StreamResponse:
    """postCommit (moby 20.10 container router): pause defaults to true from API 1.13."""
    check_for_json(request)
    q = request.query
    pause = bool_value(request, "pause")
    if q.get("pause", "") == "" and version_at_least(version_from_request(request), "1.13"):
        pause = True
    body = await request.read()
    try:
        config, _, _ = decode_container_config(body)
    except GoJSONError as e:
        if str(e) != "EOF":  # an empty body is no error here
            raise
        config = None
    image_id = await request.app[BACKEND].container_commit(q.get("container", ""), CreateImageConfig(
        repo=q.get("repo", ""), tag=q.get("tag", ""), pause=pause, author=q.get("author", ""),
        comment=q.get("comment", ""), config=config, changes=q.getall("changes", []),
    ))
    return json_body({"Id": image_id}, status=201)


ROUTES = [
    ("POST", "/commit", post_commit),
    ("POST", "/containers/create", post_containers_create),
    ("GET", "/containers/json", get_containers_json),
    ("POST", "/containers/prune", post_containers_prune),
    ("GET", "/containers/{name:.*}/json", get_containers_by_name),
    ("DELETE", "/containers/{name:.*}", delete_containers),
    ("POST", "/containers/{name:.*}/rename", post_container_rename),
]
