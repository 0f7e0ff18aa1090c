"""`POST /build` with dockerd 20.10's classic builder (moby/api/server/router/build/
build_routes.go postBuild, api/server/backend/build/backend.go Build and tag.go).

The form is decoded and the tags checked before the body is read; the context is
spooled and unpacked in worker threads; the builder's output is written as dockerd's
JSON messages. An error before the first message is an HTTP error (dockerd answers with
a status while nothing is flushed); after it, an `errorDetail` message in the stream.
With `q`, step output is held back and only sent if the build fails.
"""
from __future__ import annotations

import json
import os
from typing import Any

from aiohttp import web

from ... import errdefs
from ...builder.builder import Builder, BuildOptions, BuildStepError, short
from ...builder.context import extract_context, read_dockerfile
from ...image import reference as refmod
from ...image.progress import line
from ..backend import BACKEND
from ..httputils import bool_value, bool_value_or_default, spool_body


def _json_map(request: web.Request, key: str, what: str) -> dict[str, Any]:
    raw = request.query.get(key, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise errdefs.InvalidParameter(f"unable to parse {what} options: {e}") from None
    if not isinstance(value, dict):
        raise errdefs.InvalidParameter(f"unable to parse {what} options: not an object")
    return value


def sanitize_repo_and_tags(names: list[str]) -> list[refmod.Reference]:
    """sanitizeRepoAndTags: parse each `t`, default the tag, drop duplicates."""
    out: list[refmod.Reference] = []
    seen: set[str] = set()
    for name in names:
        if not name:
            continue
        try:
            ref = refmod.parse_normalized_named(name)
        except refmod.ReferenceError as e:
            raise errdefs.Untyped(str(e)) from None
        if ref.digest:
            raise errdefs.Untyped("build tag cannot contain a digest")
        ref = refmod.tag_name_only(ref)
        key = str(ref)
        if key not in seen:
            seen.add(key)
            out.append(ref)
    return out


def _options(request: web.Request) -> BuildOptions:
    """newImageBuildOptions."""
    q = request.query
    shm = q.get("shmsize", "")
    try:
        shm_size = int(shm) if shm else 0
    except ValueError:
        raise errdefs.InvalidParameter(f'strconv.ParseInt: parsing "{shm}": invalid syntax') from None
    if q.get("isolation", "") not in ("", "default"):
        raise errdefs.InvalidParameter(f"Unsupported isolation: \"{q.get('isolation')}\"")
    platform = q.get("platform", "")
    if platform and platform.split("/")[0] not in ("linux",):
        raise errdefs.InvalidParameter(f'"{platform}": unknown operating system or architecture')
    cache_from = q.get("cachefrom", "")
    try:
        cache_from_list = json.loads(cache_from) if cache_from else []
    except ValueError as e:
        raise errdefs.InvalidParameter(f"unable to parse cache-from options: {e}") from None
    return BuildOptions(
        dockerfile=q.get("dockerfile", "") or "Dockerfile",
        build_args={k: (None if v is None else str(v)) for k, v in _json_map(request, "buildargs", "build-args").items()},
        labels={k: str(v) for k, v in _json_map(request, "labels", "labels").items()},
        no_cache=bool_value(request, "nocache"),
        remove=bool_value_or_default(request, "rm", True) or bool_value(request, "forcerm"),
        force_remove=bool_value(request, "forcerm"),
        target=q.get("target", ""),
        network_mode=q.get("networkmode", ""),
        extra_hosts=[h for h in q.getall("extrahosts", []) if h],  # r.Form["extrahosts"]
        cache_from=[str(c) for c in cache_from_list or []],
        shm_size=shm_size,
    )


class _Output:
    """The response, prepared on the first message (so errors before it are statuses)."""

    def __init__(self, request: web.Request, quiet: bool) -> None:
        self.request = request
        self.resp: web.StreamResponse | None = None
        self.quiet = quiet
        self.held: list[bytes] = []

    @property
    def flushed(self) -> bool:
        return self.resp is not None

    async def write(self, data: bytes) -> None:
        if self.resp is None:
            self.resp = web.StreamResponse(status=200)
            self.resp.content_type = "application/json"
            self.resp.enable_chunked_encoding()
            await self.resp.prepare(self.request)
        try:
            await self.resp.write(data)
        except ConnectionResetError:
            pass  # the client went away; the build still finishes, as dockerd's does

    async def stdout(self, text: str) -> None:
        msg = line({"stream": text})
        if self.quiet:
            self.held.append(msg)
        else:
            await self.write(msg)

    async def stderr(self, text: str) -> None:
        # dockerd colours the RUN's stderr red in the stream
        await self.stdout(f"\x1b[91m{text}\x1b[0m")

    async def aux(self, obj: dict[str, Any]) -> None:
        await self.write(line({"aux": obj}))


def _error_line(err: Exception) -> bytes:
    msg = str(err)
    detail: dict[str, Any] = {"message": msg}
    if isinstance(err, BuildStepError):
        detail = {"code": err.code, "message": msg}
    return line({"errorDetail": detail, "error": msg})


async def _spool(request: web.Request, tmp_dir: str) -> str:
    return await spool_body(request, tmp_dir, "berth-build-body-")


async def post_build(request: web.Request) -> web.StreamResponse:
    d = request.app[BACKEND]
    q = request.query
    if q.get("version", "") == "2":
        raise errdefs.InvalidParameter("BuildKit is not supported by Berth: use DOCKER_BUILDKIT=0")
    opts = _options(request)
    tags = sanitize_repo_and_tags(q.getall("t", []))
    if q.get("remote", ""):
        raise errdefs.NotImplemented(
            f"remote build contexts are not supported by Berth (no network access): {q['remote']}")
    out = _Output(request, bool_value(request, "q"))
    path = await _spool(request, d.images.tmp_dir)
    ctx = None
    try:
        def unpack() -> Any:
            with open(path, "rb") as f:
                return extract_context(f, d.images.tmp_dir)

        ctx = await d.run_blocking(unpack)
        dockerfile = await d.run_blocking(read_dockerfile, ctx, opts.dockerfile)
        builder = Builder(d, opts, ctx, out.stdout, out.stderr, out.aux)
        stages, meta, escape = builder.prepare(dockerfile)
        try:
            image_id = await builder.build(stages, meta, escape)
            await out.stdout(f"Successfully built {short(image_id)}\n")
            for ref in tags:
                await d.run_blocking(d.images.tag_image_with_reference, image_id, ref)
                await out.stdout(f"Successfully tagged {refmod.familiar_string(ref)}\n")
        except errdefs.DockerError as e:
            if out.quiet and out.held:
                await out.write(b"".join(out.held))
            if not out.flushed:
                raise
            await out.write(_error_line(e))
        else:
            if out.quiet:
                await out.write(line({"stream": image_id + "\n"}))
    finally:
        os.unlink(path)
        if ctx is not None:
            await d.run_blocking(ctx.close)
    assert out.resp is not None
    try:
        await out.resp.write_eof()
    except ConnectionResetError:
        pass  # the client went away
    return out.resp


ROUTES = [("POST", "/build", post_build)]
