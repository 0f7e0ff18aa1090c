"""Container run-time routes: start, stop, kill, restart, pause, unpause, wait, logs
(moby api/server/router/container/container_routes.go)."""
from __future__ import annotations

from aiohttp import web

from ... import errdefs
from ...pkg.signal import parse_signal
from ...pkg.stdcopy import frame
from ...types import gojson
from ...types.backend import LogsConfig
from ...types.container import UpdateConfig
from ...types.timestamp import format_timestamp
from .. import versions
from ..backend import BACKEND
from ..fastpath import plain_reply
from ..httputils import bool_value, check_for_json, json_body, version_from_request, version_less_than


class _UntypedStreamResponse(web.StreamResponse):
    """A streamed body without a Content-Type header, as dockerd 20.10 sends logs.
    aiohttp adds `application/octet-stream` to any body in _prepare_headers; the signal
    hooks run after it, so the header is dropped right there."""

    keep_content_type = False  # a 1.42+ client gets its stream media type: keep the header

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        if not self.keep_content_type:
            self.headers.popall("Content-Type", None)


def _wrap(err: errdefs.DockerError, prefix: str) -> errdefs.DockerError:
    """errors.Wrapf: the same class (so the same status), the message prefixed."""
    return type(err)(f"{prefix}: {err}")


def _seconds(request: web.Request) -> int | None:
    """`t`: strconv.Atoi, whose error is untyped (500)."""
    raw = request.query.get("t", "")
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise errdefs.Untyped(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None


@plain_reply  # without a body (the fast path's); one with a body is aiohttp's
async def post_containers_start(request: web.Request) -> web.StreamResponse:
    # A non-nil JSON object is at least 7 bytes; chunked means unknown length (Go's -1).
    length = request.content_length
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if (length is not None and length > 7) or chunked:
        if not version_less_than(version_from_request(request), "1.24"):
            raise errdefs.InvalidParameter(
                "starting container with non-empty request body was deprecated since API v1.22 "
                "and removed in v1.24")
        await request.read()
    await request.app[BACKEND].container_start(
        request.match_info["name"], request.query.get("checkpoint", ""), request.query.get("checkpoint-dir", ""))
    return web.Response(status=204)


async def post_containers_stop(request: web.Request) -> web.StreamResponse:
    signal = versions.stop_options(request.query, version_from_request(request))  # 1.42: `signal`
    await request.app[BACKEND].container_stop(request.match_info["name"], _seconds(request), signal)
    return web.Response(status=204)


async def post_containers_kill(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    sig = request.query.get("signal", "")
    if sig:
        try:
            parse_signal(sig)
        except ValueError as e:
            raise errdefs.InvalidParameter(str(e)) from None
    try:
        await request.app[BACKEND].container_kill(name, sig)
    except errdefs.DockerError as e:
        stopped = isinstance(e, errdefs.Conflict)
        if not version_less_than(version_from_request(request), "1.20") or not stopped:
            raise _wrap(e, f"Cannot kill container: {name}") from None
    return web.Response(status=204)


async def post_containers_restart(request: web.Request) -> web.StreamResponse:
    signal = versions.stop_options(request.query, version_from_request(request))  # 1.42: `signal`
    await request.app[BACKEND].container_restart(request.match_info["name"], _seconds(request), signal)
    return web.Response(status=204)


async def post_containers_pause(request: web.Request) -> web.StreamResponse:
    await request.app[BACKEND].container_pause(request.match_info["name"])
    return web.Response(status=204)


async def post_containers_unpause(request: web.Request) -> web.StreamResponse:
    await request.app[BACKEND].container_unpause(request.match_info["name"])
    return web.Response(status=204)


def _wait_body(status: tuple[int, str]) -> bytes:
    code, error = status
    body = {"Error": {"Message": error} if error else None, "StatusCode": code}
    return gojson.encode_stream(body)


async def post_containers_wait(request: web.Request) -> web.StreamResponse:
    """Headers go out at once for API >= 1.30 (the CLI waits for them before it starts
    the container), the body when the condition is met."""
    version = version_from_request(request)
    legacy = version_less_than(version, "1.30")
    condition = "not-running"
    legacy_removal = False
    if not legacy:
        c = versions.wait_condition(request.query, version)  # 1.42+: 400 on an unknown one
        if c in ("next-exit", "removed"):
            condition = c
            legacy_removal = c == "removed" and version_less_than(version, "1.34")
    fut = await request.app[BACKEND].container_wait(request.match_info["name"], condition)
    if legacy:
        status = await fut
        return web.Response(body=_wait_body(status), content_type="application/json")
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    await resp.prepare(request)
    try:
        status = await fut
    finally:
        if not fut.done():
            fut.cancel()
    try:
        if not (legacy_removal and status[1]):
            await resp.write(_wait_body(status))
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client went away; the wait ended with it
    return resp


async def get_containers_logs(request: web.Request) -> web.StreamResponse:
    stdout, stderr = bool_value(request, "stdout"), bool_value(request, "stderr")
    if not (stdout or stderr):
        raise errdefs.InvalidParameter("Bad parameters: you must choose at least one stream")
    cfg = LogsConfig(stdout=stdout, stderr=stderr, since=request.query.get("since", ""),
                     until=request.query.get("until", ""), timestamps=bool_value(request, "timestamps"),
                     follow=bool_value(request, "follow"), tail=request.query.get("tail", ""),
                     details=bool_value(request, "details"))
    msgs, tty = await request.app[BACKEND].container_logs(request.match_info["name"], cfg)
    resp = _UntypedStreamResponse(status=200)
    # 1.42+: moby's multiplexed/raw stream media types (api/versions.py)
    # Up to 1.41 dockerd sends no Content-Type at all on logs.
    ctype = versions.stream_content_type(version_from_request(request), not tty)
    if ctype:
        resp.content_type = ctype
        resp.keep_content_type = True
    await resp.prepare(request)
    buf = bytearray()
    try:
        async for m in msgs:
            line = m.line
            if cfg.details:
                line = m.attrs + b" " + line  # attrsByteSlice (daemon/logs.py LogMessage.attrs)
            if cfg.timestamps:
                line = format_timestamp(m.time_ns).encode() + b" " + line
            buf += line if tty else frame(m.stream, line)
            if not cfg.follow and len(buf) < 65536:
                continue  # batch a plain read; a follow flushes every line
            await resp.write(bytes(buf))
            buf.clear()
        if buf:
            await resp.write(bytes(buf))
        await resp.write_eof()
    except ConnectionResetError:
        pass  # `docker logs -f` interrupted
    finally:
        await msgs.aclose()
    return resp


async def post_container_update(request: web.Request) -> web.StreamResponse:
    """postContainerUpdate: a body Go cannot decode is an untyped error (500, as 20.10)."""
    check_for_json(request)
    uc = gojson.decode(await request.read(), UpdateConfig, go_type_name="container.UpdateConfig")
    version = version_from_request(request)
    if version_less_than(version, "1.40"):
        uc.PidsLimit = None
    if not version_less_than(version, "1.42"):
        uc.KernelMemory = 0  # removed in API 1.42
    if not version_less_than(version, "1.52"):
        uc.KernelMemoryTCP = 0  # removed in API 1.52: "any value it is set to will be ignored"
    if uc.PidsLimit is not None and uc.PidsLimit <= 0:
        uc.PidsLimit = 0  # 0 and any negative value mean "unlimited" when updating
    return json_body(await request.app[BACKEND].container_update(request.match_info["name"], uc))


ROUTES = [
    ("POST", "/containers/{name:.*}/start", post_containers_start),
    ("POST", "/containers/{name:.*}/stop", post_containers_stop),
    ("POST", "/containers/{name:.*}/kill", post_containers_kill),
    ("POST", "/containers/{name:.*}/restart", post_containers_restart),
    ("POST", "/containers/{name:.*}/pause", post_containers_pause),
    ("POST", "/containers/{name:.*}/unpause", post_containers_unpause),
    ("POST", "/containers/{name:.*}/wait", post_containers_wait),
    ("GET", "/containers/{name:.*}/logs", get_containers_logs),
    ("POST", "/containers/{name:.*}/update", post_container_update),
]
