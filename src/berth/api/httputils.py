"""Request helpers shared by the routers (moby/api/server/httputils)."""
from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import io
import os
import re
import tempfile
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web

from .. import errdefs
from ..types import gojson
from ..types.auth import AuthConfig

# The negotiated API version of a request, as put there by the version middleware.
API_VERSION_KEY = web.RequestKey("berth.api_version", str)

# api.DefaultVersion: the newest version served, and the version of a request whose
# path carries none (as dockerd 29). api/versions.py adapts answers for 1.42 and up;
# 1.41 and below answer exactly as dockerd 20.10.
DEFAULT_VERSION = "1.52"
MIN_VERSION = "1.12"


def version_from_request(request: web.Request) -> str:
    """The request's API version; unversioned paths get the default (`1.52`)."""
    return request.get(API_VERSION_KEY) or DEFAULT_VERSION


def _components(v: str) -> list[int]:
    out = []
    for part in v.split("."):
        try:
            out.append(int(part))
        except ValueError:  # strconv.Atoi failure counts as 0, as in versions.compare
            out.append(0)
    return out


@functools.lru_cache(maxsize=256)
def compare_versions(a: str, b: str) -> int:
    """moby/api/types/versions/compare.go: component-wise integer comparison."""
    ca, cb = _components(a), _components(b)
    n = max(len(ca), len(cb))
    ca += [0] * (n - len(ca))
    cb += [0] * (n - len(cb))
    return (ca > cb) - (ca < cb)


def version_less_than(v: str, other: str) -> bool:
    return compare_versions(v, other) < 0


def version_at_least(v: str, other: str) -> bool:
    return compare_versions(v, other) >= 0


_FALSE = {"", "0", "no", "false", "none"}


def bool_value(request: web.Request, key: str) -> bool:
    """httputils.BoolValue: false for "", 0, no, false, none (trimmed, any case)."""
    return request.query.get(key, "").strip().lower() not in _FALSE


def bool_value_or_default(request: web.Request, key: str, default: bool) -> bool:
    if key not in request.query:
        return default
    return bool_value(request, key)


def int64_value_or_zero(request: web.Request, key: str) -> int:
    try:
        return int(request.query.get(key, ""))
    except ValueError:
        return 0


def int64_value_or_default(request: web.Request, key: str, default: int) -> int:
    raw = request.query.get(key, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise errdefs.InvalidParameter(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from None


def check_for_json(request: web.Request) -> None:
    """httputils.CheckForJSON: a body must come as application/json.

    No Content-Type with an empty body is fine. Parameters (`; charset=utf-8`)
    and case do not matter, as with Go's mime.ParseMediaType.
    """
    ct = request.headers.get("Content-Type")
    if ct is None and (request.content_length in (None, 0)) and not request.body_exists:
        return
    if ct is None and request.content_length == 0:
        return
    media = (ct or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise errdefs.InvalidParameter(f"Content-Type specified ({ct or ''}) must be 'application/json'")


def json_body(obj: Any, status: int = 200) -> web.Response:
    """A WriteJSON-style response from already-encoded bytes or an object."""
    data = obj if isinstance(obj, bytes) else gojson.encode_response(obj)
    return web.Response(body=data, status=status, content_type="application/json")


async def read_json(request: web.Request, typ: Any, go_name: str) -> Any:
    """json.NewDecoder(r.Body).Decode for routes where dockerd turns a bad body into a 400
    (exec, networks, swarm): an empty body reads "got EOF while reading request body"."""
    body = await request.read()
    try:
        return gojson.decode(body, typ, go_type_name=go_name)
    except gojson.GoJSONError as e:
        if str(e) == "EOF":
            raise errdefs.InvalidParameter("got EOF while reading request body") from None
        raise errdefs.InvalidParameter(str(e)) from None


async def stream_body(request: web.Request, chunks: AsyncGenerator[bytes, None], content_type: str,
                      headers: dict[str, str] | None = None) -> web.StreamResponse:
    """A 200 whose body is every chunk as it comes, after the headers; a client that went
    away ends the stream quietly, and the producer is always closed (it may hold a
    container lock or a mounted filesystem)."""
    resp = web.StreamResponse(status=200, headers=headers)
    resp.content_type = content_type
    try:
        await resp.prepare(request)
        async for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
    except ConnectionResetError:
        pass
    finally:
        await chunks.aclose()
    return resp


async def spool_body(request: web.Request, tmp_dir: str, prefix: str = "berth-body-") -> str:
    """The request body in a temporary file under `tmp_dir` (the caller removes it): tarballs
    of any size are read once, 1 MiB at a time, without holding them in memory."""
    fd, path = tempfile.mkstemp(prefix=prefix, dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                await asyncio.to_thread(f.write, chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path


class BodyReader(io.RawIOBase):
    """The request body as a blocking binary stream, for a worker thread (the event loop
    runs on meanwhile and reads the socket for it): what dockerd's handlers do with
    r.Body, where a spooled copy (spool_body) would fail on its own when the disk is
    full before the handler's work has begun."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._content = request.content
        self._loop = loop

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = asyncio.run_coroutine_threadsafe(self._content.read(len(view)), self._loop).result()
        view[:len(data)] = data
        return len(data)


# -- registry requests ---------------------------------------------------------------------

def registry_auth(request: web.Request) -> Any:
    """X-Registry-Auth: base64url (with padding) of a types.AuthConfig. A header that will
    not decode or parse means anonymous, as in dockerd (None)."""
    raw = request.headers.get("X-Registry-Auth", "")
    if not raw or len(raw) % 4 or not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", raw):
        return None
    try:
        return gojson.decode(base64.urlsafe_b64decode(raw), AuthConfig, go_type_name="types.AuthConfig")
    except (binascii.Error, gojson.GoJSONError, ValueError):
        return None


def meta_headers(request: web.Request) -> dict[str, str]:
    """Headers whose canonical name starts with X-Meta-: copied onto registry requests."""
    return {k: v for k, v in request.headers.items() if k.lower().startswith("x-meta-")}


class LazyStream:
    """A JSON progress response that starts with its first line, so that an error raised
    before anything was written is still an HTTP status (output.Flushed())."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.resp: web.StreamResponse | None = None

    async def write(self, data: bytes) -> None:
        if self.resp is None:
            resp = web.StreamResponse(status=200)
            resp.content_type = "application/json"
            resp.enable_chunked_encoding()
            await resp.prepare(self.request)
            self.resp = resp
        await self.resp.write(data)

    async def finish(self) -> web.StreamResponse:
        if self.resp is None:
            resp = web.StreamResponse(status=200)
            resp.content_type = "application/json"
            resp.enable_chunked_encoding()
            await resp.prepare(self.request)
            self.resp = resp
        try:
            await self.resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return self.resp
