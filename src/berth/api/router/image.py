"""Image routes (moby/api/server/router/image/image_routes.go).

Thin: parse the form, make one ImageService call in a worker thread, write the
answer. Request bodies (load, import) are spooled to a temporary file first so the
unpacking thread never reads from the event loop.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from ... import errdefs
from ...image import ImageService
from ...image.progress import error_message, status_message
from ...types import gojson
from ...types.auth import AuthConfig
from ...types.filters import Args
from .. import versions
from ..backend import BACKEND
from ..fastpath import plain_reply
from ..httputils import (
    BodyReader,
    LazyStream,
    bool_value,
    bool_value_or_default,
    meta_headers,
    registry_auth,
    spool_body,
    version_from_request,
)

log = logging.getLogger("berth.api")

IMAGE_SERVICE = web.AppKey("image_service", ImageService)
# The daemon's answer to "which containers use image X": (container id, running) pairs.
IMAGE_USED_BY: web.AppKey[Callable[[str], list[tuple[str, bool]]]] = web.AppKey("image_used_by")


def _svc(request: web.Request) -> ImageService:
    return request.app[IMAGE_SERVICE]


def _json(obj: Any, status: int = 200) -> web.Response:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    return web.Response(body=body, status=status, content_type="application/json")


def _parse_filters(raw: str) -> dict[str, list[str]]:
    """filters.FromJSON: `{"k":{"v":true}}` or the legacy `{"k":["v"]}`."""
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise errdefs.InvalidParameter(str(e)) from None
    out: dict[str, list[str]] = {}
    for k, v in (doc or {}).items():
        if isinstance(v, dict):
            out[k] = [x for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
    return out


async def _spool_body(request: web.Request, svc: ImageService) -> str:
    return await spool_body(request, svc.tmp_dir)


async def _stream_lines(request: web.Request, lines: Iterator[bytes]) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        while True:
            item = await asyncio.to_thread(next, lines, None)
            if item is None:
                break
            await resp.write(item)
        await resp.write_eof()
    except ConnectionResetError:  # the client went (the CLI leaves once it has read an error)
        pass
    return resp


async def post_images_load(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    quiet = bool_value_or_default(request, "quiet", True)  # dockerd's default is quiet
    # unpacked as it arrives, as dockerd's untar reads r.Body (a full disk fails in the
    # unpack, with the unpacker's message, as dockerd's does)
    body = io.BufferedReader(BodyReader(request, asyncio.get_running_loop()), 1 << 20)
    return await _stream_lines(request, svc.load(body, quiet))


async def _progress(request: web.Request, op: Callable[[Callable[[bytes], Any]], Any]) -> web.StreamResponse:
    """Run a pull or push writing its progress stream: an error before the first line is
    an HTTP status, after it an errorDetail line (status stays 200)."""
    stream = LazyStream(request)
    try:
        await op(stream.write)
    except errdefs.DockerError as e:
        if stream.resp is None:
            raise
        await _write_quietly(stream, error_message(str(e)))
    except (ConnectionError, asyncio.CancelledError):
        if stream.resp is None:
            raise
    except Exception as e:
        log.exception("%s %s", request.method, request.path)
        if stream.resp is None:
            raise
        await _write_quietly(stream, error_message(str(e)))
    return await stream.finish()


async def _write_quietly(stream: LazyStream, data: bytes) -> None:
    try:
        await stream.write(data)
    except (ConnectionError, RuntimeError):
        pass


async def post_images_create(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    q = request.query
    if q.get("fromImage", ""):
        platform = q.get("platform", "") if versions.at_least(version_from_request(request), "1.32") else ""
        backend = request.app[BACKEND]
        return await _progress(request, lambda write: backend.pull_image(
            q["fromImage"], q.get("tag", ""), platform, registry_auth(request), meta_headers(request),
            request.headers.get("User-Agent", ""), write))
    if q.get("fromSrc", "") != "-" and q.get("fromSrc"):
        raise errdefs.NotImplemented("importing from a URL is not supported")
    path = await _spool_body(request, svc)
    try:
        def run() -> str:
            with open(path, "rb") as f:
                return svc.import_image(f, q.get("repo", ""), q.get("tag", ""), q.getall("changes", []),
                                        q.get("message", ""))

        image_id = await asyncio.to_thread(run)
    finally:
        os.unlink(path)
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(status_message(image_id))
    await resp.write_eof()
    return resp


@plain_reply
async def get_images_json(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    filters = _parse_filters(request.query.get("filters", ""))
    # API < 1.28 had `filter=<reference>`; dockerd 20.10 keeps it for 1.40 and below only.
    if request.query.get("filter") and versions.before(version_from_request(request), "1.41"):
        filters.setdefault("reference", []).append(request.query["filter"])
    # `shared-size` is read from API 1.42 on (moby's getImagesJSON); 20.10 ignored it.
    shared_size = versions.at_least(version_from_request(request), "1.42") and bool_value(request, "shared-size")
    images = await asyncio.to_thread(svc.list_images, bool_value(request, "all"), filters,
                                     bool_value(request, "digests"), shared_size)
    return _json(versions.image_list(images, version_from_request(request), request.app.get(IMAGE_USED_BY)))


@plain_reply
async def get_images_by_name(request: web.Request) -> web.StreamResponse:
    doc = await asyncio.to_thread(_svc(request).inspect, request.match_info["name"])
    return _json(versions.image_inspect(doc, version_from_request(request)))


@plain_reply
async def get_images_history(request: web.Request) -> web.StreamResponse:
    return _json(await asyncio.to_thread(_svc(request).history, request.match_info["name"]))


async def post_images_tag(request: web.Request) -> web.StreamResponse:
    await asyncio.to_thread(_svc(request).tag, request.match_info["name"], request.query.get("repo", ""),
                            request.query.get("tag", ""))
    return web.Response(status=201)


async def delete_images(request: web.Request) -> web.StreamResponse:
    used_by = request.app.get(IMAGE_USED_BY)
    records = await asyncio.to_thread(_svc(request).delete, request.match_info["name"],
                                      bool_value(request, "force"), not bool_value(request, "noprune"), used_by)
    return _json(records)


async def post_images_prune(request: web.Request) -> web.StreamResponse:
    filters = Args.from_json(request.query.get("filters", ""))
    deleted, reclaimed = await asyncio.to_thread(_svc(request).prune, filters, request.app.get(IMAGE_USED_BY))
    return _json({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


async def post_images_push(request: web.Request) -> web.StreamResponse:
    """postImagesPush: X-Registry-Auth, or (old clients) the AuthConfig as the body."""
    auth = registry_auth(request)
    if not request.headers.get("X-Registry-Auth"):
        try:
            auth = gojson.decode(await request.read(), AuthConfig, go_type_name="types.AuthConfig")
        except gojson.GoJSONError as e:
            raise errdefs.InvalidParameter(f"Bad parameters and missing X-Registry-Auth: {e}") from None
    backend = request.app[BACKEND]
    return await _progress(request, lambda write: backend.push_image(
        request.match_info["name"], request.query.get("tag", ""), auth, meta_headers(request),
        request.headers.get("User-Agent", ""), write))


async def get_images_search(request: web.Request) -> web.StreamResponse:
    """getImagesSearch: `term`, `limit` (strconv.Atoi), `filters`; a JSON array back."""
    q = request.query
    limit: int | None = None
    if q.get("limit"):
        raw = q["limit"]
        try:
            limit = int(raw, 10) if raw.lstrip("+-").isdigit() else int("x")
        except ValueError:
            raise errdefs.Untyped(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None
    try:
        filters = Args.from_json(q.get("filters", ""))
    except errdefs.DockerError as e:
        raise errdefs.Untyped(str(e)) from None
    results = await request.app[BACKEND].search_registry(
        q.get("term", ""), limit, filters, registry_auth(request), meta_headers(request),
        request.headers.get("User-Agent", ""))
    return _json(results)


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    svc = _svc(request)
    fd, path = tempfile.mkstemp(prefix="berth-save-", dir=svc.tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            await asyncio.to_thread(svc.save, names, f)
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/x-tar"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        with open(path, "rb") as f:
            while chunk := await asyncio.to_thread(f.read, 1 << 20):
                await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        os.unlink(path)


async def get_images_get(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


async def get_images_name_get(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


ROUTES: list[tuple[str, str, Callable[[web.Request], Any]]] = [
    ("GET", "/images/json", get_images_json),
    ("POST", "/images/prune", post_images_prune),
    ("GET", "/images/search", get_images_search),
    ("POST", "/images/{name:.*}/push", post_images_push),
    ("GET", "/images/get", get_images_get),
    ("GET", "/images/{name:.*}/get", get_images_name_get),
    ("GET", "/images/{name:.*}/history", get_images_history),
    ("GET", "/images/{name:.*}/json", get_images_by_name),
    ("POST", "/images/load", post_images_load),
    ("POST", "/images/create", post_images_create),
    ("POST", "/images/{name:.*}/tag", post_images_tag),
    ("DELETE", "/images/{name:.*}", delete_images),
]

__all__ = ["IMAGE_SERVICE", "IMAGE_USED_BY", "ROUTES", "error_message"]
