"""The HTTP server: routes, the version middleware and the error renderer.

moby/api/server/server.go (createMux: every route twice, with and without the
`/v{version}` prefix), moby/api/server/middleware/version.go,
moby/api/server/middleware/experimental.go and moby/api/server/errorhandler.go.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import posixpath
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from typing import Any

from aiohttp import web
from yarl import URL

from .. import ENGINE_VERSION, errdefs, trace
from ..types import gojson
from . import httpstatus
from .httputils import API_VERSION_KEY, DEFAULT_VERSION, MIN_VERSION, compare_versions

log = logging.getLogger("berth.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]

# The newest API version served (1.52, dockerd 29); requests above it are refused.
MAX_VERSION = DEFAULT_VERSION

_SERVER = f"Docker/{ENGINE_VERSION} (linux)"
# 1: Server/Api-Version/Ostype; 2: also Docker-Experimental
_HEADERS_KEY = web.RequestKey("berth.headers", int)


def _error_response(request: web.Request, status: int, message: str) -> web.Response:
    """errorhandler.go: JSON `{"message":…}` unless the URL version is 1.23 or lower."""
    version = request.get(API_VERSION_KEY, "") or request.match_info.get("version", "")
    if status == 304:  # Go's net/http drops Content-Type (and any body) from a 304
        return web.Response(status=304)
    if version and compare_versions(version, "1.23") <= 0:
        resp = web.Response(status=status, text=message + "\n", content_type="text/plain", charset="utf-8")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp
    body = gojson.encode_response({"message": message})
    return web.Response(status=status, body=body, content_type="application/json")


def _path_version(request: web.Request) -> str | None:
    """The `{version}` of a versioned URL, also for unmatched paths (for the error format)."""
    path = request.path
    if path.startswith("/v"):
        head = path[2:].split("/", 1)[0]
        if head and all(c.isdigit() or c == "." for c in head):
            return head
    return None


def clean_path(p: str) -> str:
    """gorilla/mux cleanPath: path.Clean, keeping a trailing slash."""
    if not p:
        return "/"
    if p[0] != "/":
        p = "/" + p
    np = posixpath.normpath(p)
    if np.startswith("//"):  # posixpath keeps a leading "//"; Go's path.Clean does not
        np = "/" + np.lstrip("/")
    if p[-1] == "/" and np != "/":
        np += "/"
    return np


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # mux.Router.ServeHTTP redirects to the cleaned path before any route or middleware
    # runs (so no version headers), keeping the query string.
    path = request.path
    if ("//" in path or "/." in path) and clean_path(path) != path:
        cleaned = clean_path(path)
        location = URL.build(path=cleaned).raw_path
        if request.rel_url.raw_query_string:
            location += "?" + request.rel_url.raw_query_string
        return web.Response(status=301, headers={"Location": location, "Content-Length": "0"})
    if request.method == "OPTIONS":  # system router optionsHandler: any path, 200, empty
        request[_HEADERS_KEY] = 2
        return web.Response(status=200)
    if request.match_info.http_exception is not None:
        # pageNotFoundError bypasses the middleware chain: no version headers, no version check.
        v = _path_version(request)
        if v:
            request[API_VERSION_KEY] = v
        return _error_response(request, 404, "page not found")
    request[_HEADERS_KEY] = 1
    version = request.match_info.get("version", "")
    if version:
        request[API_VERSION_KEY] = version
        refusal = version_refusal(version)
        if refusal is not None:
            return _error_response(request, 400, refusal)
    request[_HEADERS_KEY] = 2
    return await call_handler(request, handler)


_HOST_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.EROFS, errno.EIO})


def version_refusal(version: str) -> str | None:
    """version.go's middleware check: the message for a URL version out of range."""
    if compare_versions(version, MIN_VERSION) < 0:
        return (f"client version {version} is too old. Minimum supported API version is {MIN_VERSION}, "
                "please upgrade your client to a newer version")
    if compare_versions(version, MAX_VERSION) > 0:
        return f"client version {version} is too new. Maximum supported API version is {MAX_VERSION}"
    return None


def call_handler(request: web.Request, handler: Handler) -> Coroutine[Any, Any, web.StreamResponse]:
    """The handler's answer, or errorhandler.go's rendering of its error (one mapping:
    httpstatus.from_error). Used by the middleware and by the fast path. The coroutine
    that answers, not one that awaits it: a layer fewer for every resume of the request."""
    if trace.state.on:
        return _traced_call(request, handler)
    return _call(request, handler)


async def _call(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as err:
        return _error_answer(request, err)


def _error_answer(request: web.Request, err: Exception) -> web.StreamResponse:
    """The answer to a handler's error (called in its except block); raises it again when
    the client is gone."""
    if isinstance(err, errdefs.DockerError):
        status = httpstatus.from_error(err)
        if status >= 500:
            log.error("Handler for %s %s returned error: %s", request.method, request.path, err)
        return _error_response(request, status, str(err))
    if isinstance(err, OSError):  # ConnectionResetError among them
        if request.transport is None or request.transport.is_closing():
            raise err
        if err.errno in _HOST_ERRNOS:
            # the host's limits (a full data root, no descriptor left): no bug to trace
            log.error("Handler for %s %s returned error: %s", request.method, request.path, errdefs.os_error_text(err))
        else:
            log.exception("Handler for %s %s failed", request.method, request.path)
        return _error_response(request, 500, errdefs.os_error_text(err))
    # an untyped error is a 500, as in dockerd
    log.exception("Handler for %s %s failed", request.method, request.path)
    return _error_response(request, 500, str(err))


# (method, handler) → the route's template without its patterns: `/containers/{name}/json`
ROUTE_TEMPLATES: dict[tuple[str, Any], str] = {}


async def _traced_call(request: web.Request, handler: Handler) -> web.StreamResponse:
    """_call as a trace operation (berth.trace): method, route template, API version,
    status; the daemon's steps become its children. One coroutine of its own (not one
    around _call): a layer fewer for every resume of the request's task."""
    op = trace.begin_request(request.method, ROUTE_TEMPLATES.get((request.method, handler), "?"),
                             request.get(API_VERSION_KEY, ""), request.headers.get("traceparent", ""))
    status, error = 500, ""
    try:
        try:
            resp = await handler(request)
        except web.HTTPException:
            raise
        except Exception as err:
            resp = _error_answer(request, err)
        status = resp.status
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    except BaseException as e:
        error = type(e).__name__
        raise
    finally:
        trace.end_operation(op, status, error)


class FrontProtocol(asyncio.Protocol):
    """A connection's protocol in front of an aiohttp RequestHandler (the fast path's):
    told, through the application's response-prepare signal, of the task in which aiohttp
    answers each request it was passed, so that it knows when aiohttp is done with it."""

    def aiohttp_answering(self, task: asyncio.Task[Any]) -> None:
        raise NotImplementedError


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Headers of the version and experimental middlewares; set before any streamed byte.
    A FrontProtocol in front of aiohttp learns which task answers the request."""
    transport = request.transport
    if transport is not None:
        front = transport.get_protocol()
        if isinstance(front, FrontProtocol):
            task = asyncio.current_task()
            if task is not None:
                front.aiohttp_answering(task)
    level = request.get(_HEADERS_KEY, 0)
    if level:
        response.headers["Api-Version"] = DEFAULT_VERSION
        response.headers["Ostype"] = "linux"
        response.headers["Server"] = _SERVER
        if level == 2:
            response.headers["Docker-Experimental"] = "false"
    else:
        response.headers.popall("Server", None)


def response_head(resp: web.StreamResponse, length: int, date: str, close: bool) -> bytes:
    """The status line and headers aiohttp's writer and _on_prepare give a versioned
    answer of `length` bytes, in their order (the fast path writes them itself)."""
    head = f"HTTP/1.1 {resp.status} {resp.reason}\r\n"
    length_set = False
    for name, value in resp.headers.items():
        low = name.lower()
        if low == "content-length":  # set by the handler (a HEAD answer): kept in its place
            length_set = True
            head += f"{name}: {value}\r\n"
        elif low not in _OWN_HEADERS:
            head += f"{name}: {value}\r\n"
    if not length_set and resp.status not in _NO_LENGTH:
        head += f"Content-Length: {length}\r\n"
    head += f"Date: {date}\r\n"
    return (head + (_CLOSE_TAIL if close else _TAIL)).encode("utf-8")


# statuses aiohttp answers with neither a body nor a Content-Length (as Go's net/http)
_NO_LENGTH = frozenset((204, 304))
_TAIL = f"Server: {_SERVER}\r\nApi-Version: {DEFAULT_VERSION}\r\nOstype: linux\r\nDocker-Experimental: false\r\n\r\n"
_CLOSE_TAIL = _TAIL.replace("\r\nApi-Version", "\r\nConnection: close\r\nApi-Version", 1)
_OWN_HEADERS = frozenset(("content-length", "date", "server", "connection", "api-version", "ostype",
                          "docker-experimental"))


_VERSIONED = re.compile(r"^/v([0-9.]+)(/.*)$")
_PARAM = re.compile(r"\{(\w+)(?::([^{}]*))?\}")


class ApiResource(web.AbstractResource):
    """createMux's routing, as the application's one aiohttp resource: every route bare
    and under `/v{version}`, found by a dict lookup for fixed paths and, for the rest, the
    regexes of the method and first path segment in the order they were added (mux's
    first match wins).

    aiohttp's own resources would be tried one regex after another for every request,
    twice over with the versioned copies; this keeps resolution off the hot path. What
    is not found here is aiohttp's 404 (dockerd's "page not found", the middleware).
    """

    def __init__(self) -> None:
        super().__init__()
        self._routes: list[web.ResourceRoute] = []  # in the order added
        self._fixed: dict[tuple[str, str], web.ResourceRoute] = {}  # (method, path) of routes without variables
        # (method, first path segment) → the regexes of the routes with variables, in order
        self._patterns: dict[tuple[str, str], list[tuple[re.Pattern[str], web.ResourceRoute]]] = {}

    def add_api_route(self, method: str, path: str, handler: Handler) -> None:
        route = web.ResourceRoute(method, handler, self)
        self._routes.append(route)
        ROUTE_TEMPLATES[(method, handler)] = _PARAM.sub(r"{\1}", path)
        if "{" not in path:
            self._fixed[(method, path)] = route
            return
        first = _first_segment(path)
        if "{" in first:
            raise ValueError(f"route {path}: its first segment must be literal")
        self._patterns.setdefault((method, first), []).append((re.compile(_template_regex(path)), route))

    def match(self, method: str, path: str) -> tuple[web.ResourceRoute, dict[str, str]] | None:
        """The route for `method path` and its variables (`version` for `/v…` paths)."""
        version = ""
        m = _VERSIONED.match(path)
        if m:
            version, path = m.group(1), m.group(2)
        route = self._fixed.get((method, path))
        if route is not None:
            return route, ({"version": version} if version else {})
        for regex, route in self._patterns.get((method, _first_segment(path)), ()):
            mm = regex.fullmatch(path)
            if mm:
                found = mm.groupdict()
                if version:
                    found["version"] = version
                return route, found
        return None

    async def resolve(self, request: web.Request) -> tuple[web.UrlMappingMatchInfo | None, set[str]]:
        found = self.match(request.method, request.path)
        if found is None:
            return None, set()
        return web.UrlMappingMatchInfo(found[1], found[0]), {request.method}

    # The rest of aiohttp's resource interface: the resource sits at the root, unnamed.
    @property
    def canonical(self) -> str:
        return "/"

    def url_for(self, **kwargs: str) -> URL:
        raise NotImplementedError("the API routes are not built by name")

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("the API routes are not mounted under a prefix")

    def get_info(self) -> Any:  # aiohttp's _InfoDict: nothing to add
        return {}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return len(self._routes)

    def __iter__(self) -> Iterator[web.AbstractRoute]:
        return iter(self._routes)


def api_resource(router: web.UrlDispatcher) -> ApiResource:
    """The ApiResource build_app registered in the application's router."""
    for resource in router.resources():
        if isinstance(resource, ApiResource):
            return resource
    raise LookupError("no API routes in this router (build_app makes them)")


def _first_segment(path: str) -> str:
    """`/containers/x/json` → `containers`."""
    end = path.find("/", 1)
    return path[1:] if end < 0 else path[1:end]


def _template_regex(path: str) -> str:
    """`/containers/{name:.*}/json` → `/containers/(?P<name>.*)/json`."""
    out, pos = [], 0
    for m in _PARAM.finditer(path):
        out.append(re.escape(path[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>{m.group(2) or '[^{}/]+'})")
        pos = m.end()
    out.append(re.escape(path[pos:]))
    return "".join(out)


def build_app(routes: Iterable[Route], state: dict[web.AppKey[Any], Any]) -> web.Application:
    """The aiohttp application serving `routes`, each under `/v{version}` and bare."""
    app = web.Application(middlewares=[_middleware], client_max_size=0)
    for key, value in state.items():
        app[key] = value
    resource = ApiResource()
    for method, path, handler in routes:
        resource.add_api_route(method, path, handler)
    app.router.register_resource(resource)
    app.on_response_prepare.append(_on_prepare)
    return app
