"""A lean HTTP/1.1 path in front of aiohttp for the hottest plain requests.

aiohttp's request cycle (protocol, Request object, middleware chain, response writer)
costs about 0.35 ms a request on a small machine: as much as all of dockerd's answer to
an inspect. Most Engine API traffic is a handful of GETs (`_ping`, inspect, list) that
read only the URL and write one JSON body, so each unix-socket connection is read by
`FastProtocol`, which frames every request itself and answers the plain ones:

- GET, HEAD, or a POST or DELETE without a body (start, remove: two of the four
  requests of every `docker run --rm`), or with a body of known length up to 64 KiB to a
  handler marked as reading one (`@plain_reply_with_body`: create, a third), HTTP/1.1,
  a path that needs no cleaning or decoding, an API version in range, a route whose
  handler is marked `@plain_reply`;
- the handler is the one aiohttp would call (routes stay written once), given a small
  `PlainRequest`; errors are rendered by the same `server.call_handler`; the answer is
  written with exactly the headers aiohttp and the version middleware would write.

Every other request (bodies, 404s, redirects, version errors) is passed, head and body,
to an aiohttp RequestHandler attached to the same transport, and the next request is
read here again once aiohttp is at rest. Upgrades (hijack), chunked bodies and
pipelining give the connection to aiohttp for good. Requests on one connection are
answered in order.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from collections.abc import Coroutine
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from .httputils import API_VERSION_KEY
from .server import FrontProtocol, api_resource, call_handler, response_head, version_refusal

if TYPE_CHECKING:
    from .server import Handler

log = logging.getLogger("berth.api")

_PLAIN_ATTR = "__berth_plain_reply__"
_WITH_BODY = 2
# a body buffered by the fast path (a container's config is a few kB); a larger one is aiohttp's
_MAX_PLAIN_BODY = 64 * 1024
# aiohttp's default max_line_size/max_field_size; a longer head goes to aiohttp to refuse.
_MAX_HEAD = 8190


def plain_reply(handler: Handler) -> Handler:
    """Marks a handler that reads only the URL, query, headers (and content_length) and
    API version and returns a finished web.Response (no body read, no streaming, no
    prepare()), so the
    fast path may call it with a PlainRequest. On Python 3.11 it runs up to its first
    wait outside any task: it must not need asyncio.current_task() (asyncio.timeout)."""
    setattr(handler, _PLAIN_ATTR, True)
    return handler


def plain_reply_with_body(handler: Handler) -> Handler:
    """plain_reply for a handler that also reads the request's body, whole (`await
    request.read()`; body_exists, content_length): the fast path buffers it first."""
    setattr(handler, _PLAIN_ATTR, _WITH_BODY)
    return handler


def is_plain(handler: Any) -> bool:
    return bool(getattr(handler, _PLAIN_ATTR, False))


def reads_body(handler: Any) -> bool:
    return getattr(handler, _PLAIN_ATTR, False) == _WITH_BODY


class PlainRequest:
    """The part of web.Request a @plain_reply handler and the error renderer use."""

    __slots__ = ("method", "path", "match_info", "headers", "app", "transport", "_raw_query", "_query", "_values",
                 "_body")

    def __init__(self, app: web.Application, transport: asyncio.Transport, method: str, path: str,
                 raw_query: str, match_info: dict[str, str], headers: CIMultiDictProxy[str],
                 body: bytes = b"") -> None:
        self._body = body
        self.method = method
        self.app = app
        self.transport = transport
        self.path = path
        self.match_info = match_info
        self.headers = headers
        self._raw_query = raw_query
        self._query: MultiDictProxy[str] | None = None
        self._values: dict[Any, Any] = {}

    @property
    def content_length(self) -> int | None:
        """As web.Request's: the Content-Length header (checked by parse_head)."""
        raw = self.headers.get("Content-Length")
        return None if raw is None else int(raw)

    @property
    def body_exists(self) -> bool:
        return bool(self._body)

    async def read(self) -> bytes:
        """The whole body, buffered before the handler was called."""
        return self._body

    @property
    def query(self) -> MultiDictProxy[str]:
        if self._query is None:  # parsed as aiohttp does (yarl), only when asked
            if self._raw_query:
                self._query = URL.build(path=self.path, query_string=self._raw_query, encoded=True).query
            else:
                self._query = _NO_QUERY
        return self._query

    def get(self, key: Any, default: Any = None) -> Any:
        return self._values.get(key, default)

    def __getitem__(self, key: Any) -> Any:
        return self._values[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._values[key] = value


_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())
_PLAIN_METHODS = frozenset(("GET", "HEAD", "POST", "DELETE"))
_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class RequestHead:
    """A request line and headers, as far as the fast path needs to read them."""

    __slots__ = ("method", "target", "version", "headers", "body_length", "plain")

    def __init__(self, method: str, target: str, version: str, headers: CIMultiDictProxy[str],
                 body_length: int | None) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        # None: a body whose end only aiohttp can find (chunked), or an upgrade.
        self.body_length = body_length
        self.plain = (method in _PLAIN_METHODS and version == "HTTP/1.1" and body_length is not None
                      and body_length <= (_MAX_PLAIN_BODY if method == "POST" else 0) and "expect" not in headers)


def parse_head(head: bytes) -> RequestHead | None:
    """The head of one request, or None for anything malformed (aiohttp refuses it)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        return None
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            return None  # malformed or folded
        headers.add(name, value.strip(" \t"))
    length: int | None = 0
    cl = headers.getall("Content-Length", ())
    if "Transfer-Encoding" in headers or "Upgrade" in headers or len(cl) > 1 or "upgrade" in headers.get("Connection", "").lower():
        length = None
    elif cl:
        length = int(cl[0]) if cl[0].isascii() and cl[0].isdigit() else None
    return RequestHead(parts[0], parts[1], parts[2], CIMultiDictProxy(headers), length)


if sys.version_info >= (3, 12):
    def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run `coro` now, up to its first real wait; the task that goes on from there."""
        task = asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
        return None if task.done() else task
else:
    def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run `coro` now, up to its first real wait; the task that goes on from there.

        Python 3.11 has no eager tasks: a plain answer (ping, a cached inspect) finishes
        without ever waiting, and a task for it would cost more than the answer. Both
        parts run in one context of the request's own, as in an eager task: a context
        variable set before the wait (the trace's current step) can be reset after it,
        and nothing set leaks into the connection's next request."""
        context = contextvars.copy_context()
        try:
            waiting_on = context.run(coro.send, None)
        except StopIteration:
            return None
        return asyncio.get_running_loop().create_task(_resume(coro, waiting_on), context=context)

    async def _resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        """Drive `coro` on from the future it yielded, as a Task would have."""
        while True:
            try:
                if waiting_on is None:  # a bare yield (sleep(0))
                    await asyncio.sleep(0)
                else:
                    # Taken over as Task.__step takes a yielded future: it is ours to wait on.
                    waiting_on._asyncio_future_blocking = False
                    await waiting_on
            except BaseException as e:  # the awaited future failed or we were cancelled
                try:
                    waiting_on = coro.throw(e)
                except StopIteration:
                    return
                continue
            try:
                waiting_on = coro.send(None)
            except StopIteration:
                return


# Hops of the loop to wait for aiohttp to finish its bookkeeping after an answer the
# client has already read, before the connection is given to aiohttp for good.
_MAX_WAIT_HOPS = 100


class FastProtocol(FrontProtocol):
    """One client connection: plain requests answered here, the rest passed, request by
    request, to an aiohttp RequestHandler on the same transport. Upgrades, chunked bodies
    and pipelining give the connection to aiohttp for good."""

    def __init__(self, site: FastUnixSite) -> None:
        self._site = site
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._busy = False  # a plain answer is being made
        self._task: asyncio.Task[None] | None = None  # ...and waits, in this task
        self._aio: web.RequestHandler | None = None  # aiohttp's, made at the first passed request
        self._body_left = 0  # bytes of a passed request's body still to pass on
        self._passed = 0  # requests passed to aiohttp
        self._answered = 0  # ...whose answering task (server._on_prepare) has ended
        self._answering: set[asyncio.Task[Any]] = set()  # those tasks, until they end
        self._hops = 0
        self._in_next = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a unix socket server's transport is a Transport
        self._site.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._site.connections.discard(self)
        if self._aio is not None:
            self._aio.connection_lost(exc)

    def eof_received(self) -> bool | None:
        if self._aio is not None:
            self._aio.eof_received()
            return None
        return False  # close our side too

    def pause_writing(self) -> None:
        if self._aio is not None:  # aiohttp's writer waits on its own flow control
            self._aio.pause_writing()

    def resume_writing(self) -> None:
        if self._aio is not None:
            self._aio.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self._body_left:
            n = min(self._body_left, len(data))
            self._body_left -= n
            self._aiohttp().data_received(data[:n] if n < len(data) else data)
            data = data[n:]
            if not data:
                return
        self._buf += data
        if not self._busy:
            self._next()

    def close(self) -> None:
        """Shutdown: close a connection at rest; aiohttp closes those it is serving."""
        if self._transport is not None and not self._busy and self._aiohttp_at_rest():
            self._transport.close()

    def aiohttp_answering(self, task: asyncio.Task[Any]) -> None:
        """aiohttp answers a passed request in `task` (its response is being prepared)."""
        if task not in self._answering:
            self._answering.add(task)
            task.add_done_callback(self._aiohttp_answered)

    def _aiohttp_answered(self, task: asyncio.Task[Any]) -> None:
        self._answering.discard(task)
        self._answered += 1
        if self._buf and not self._busy:
            self._next()

    def _aiohttp_at_rest(self) -> bool:
        """Every request passed to aiohttp answered: its last byte is on the transport
        (write_eof came before the task's end), so an answer written now follows it."""
        return self._answered >= self._passed

    def _next(self) -> None:
        """Answer or pass on the buffered requests, in order, as far as they are complete."""
        if self._in_next:  # an answer finished inside the loop below: the loop goes on
            return
        self._in_next = True
        try:
            while self._step():
                pass
        finally:
            self._in_next = False

    def _step(self) -> bool:
        """Answer or pass on the next buffered request; whether to look at the one after."""
        t = self._transport
        if t is None or not self._buf or self._busy or self._body_left:
            return False
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > _MAX_HEAD:
                self._hand_off()
            return False
        if self._answered < self._passed:  # not self._aiohttp_at_rest(), inline on the hot path
            # aiohttp is still on the previous request: answering now could overtake it.
            self._hops += 1
            if self._hops > _MAX_WAIT_HOPS:
                self._hand_off()
            else:
                asyncio.get_running_loop().call_soon(self._next)
            return False
        self._hops = 0
        head = parse_head(bytes(self._buf[:end])) if end <= _MAX_HEAD else None
        if head is None or head.body_length is None:
            self._hand_off()
            return False
        plain = self._site.plain_route(head, t) if head.plain else None
        if plain is not None and head.body_length:
            if not reads_body(plain[0]):
                plain = None  # a body the handler would not read: aiohttp's
            elif len(self._buf) < end + 4 + head.body_length:
                return False  # the rest of the body comes with the next data_received
            else:
                plain[1]._body = bytes(self._buf[end + 4:end + 4 + head.body_length])
                del self._buf[end + 4:end + 4 + head.body_length]
        if plain is not None:
            del self._buf[:end + 4]
            self._busy = True
            self._task = start_eagerly(self._answer(*plain))
            return not self._busy  # answered already, or waiting (it calls _next when done)
        self._pass_on(end + 4 + head.body_length)
        return True

    async def _answer(self, handler: Handler, request: PlainRequest) -> None:
        try:
            resp = await call_handler(request, handler)  # type: ignore[arg-type]  # PlainRequest has all a fast GET handler reads of a web.Request
            body = resp.body if isinstance(resp, web.Response) else None
            if body is not None and not isinstance(body, (bytes, bytearray)):
                raise TypeError(f"{handler.__name__}: a plain reply's body must be bytes")
            close = request.headers.get("Connection", "").lower() == "close"
            t = self._transport
            if t is not None and not t.is_closing():
                if request.method == "HEAD":  # the length of what a GET would send, no body
                    length = int(resp.headers.get("Content-Length") or len(body or b""))
                    t.write(response_head(resp, length, _http_date(), close))
                else:
                    t.write(response_head(resp, len(body or b""), _http_date(), close) + (body or b""))
                if close:
                    t.close()
            aio = self._aio
            if aio is not None:
                # aiohttp's keep-alive timer, started at its last answer, must not close
                # the connection this answer keeps busy: keep_alive(True) cancels it.
                aio.keep_alive(True)
        except Exception:  # what aiohttp would do with a handler that broke: log, drop the connection
            log.exception("answering %s %s", request.method, request.path)
            if self._transport is not None:
                self._transport.close()
        finally:
            self._busy = False
        self._next()

    def _aiohttp(self) -> web.RequestHandler:
        if self._aio is None:
            self._aio = self._site.aiohttp_protocol()
            self._aio.connection_made(self._transport)  # type: ignore[arg-type]  # set while connected
        return self._aio

    def _pass_on(self, length: int) -> None:
        """aiohttp answers the request of `length` bytes at the head of the buffer; body
        bytes not read yet follow it as they come."""
        aio = self._aiohttp()
        data = bytes(self._buf[:length])
        del self._buf[:length]
        self._body_left = length - len(data)
        self._passed += 1
        aio.data_received(data)

    def _hand_off(self) -> None:
        """aiohttp's RequestHandler takes the transport, and what was read from it, for good."""
        t = self._transport
        if t is None:
            return
        aio = self._aiohttp()
        self._site.connections.discard(self)
        t.set_protocol(aio)
        data, self._buf = bytes(self._buf), bytearray()
        self._transport = None
        self._aio = None
        if data:
            aio.data_received(data)


class FastUnixSite(web.UnixSite):
    """web.UnixSite whose connections start with FastProtocol."""

    def __init__(self, runner: web.AppRunner, path: str, router: web.UrlDispatcher, app: web.Application,
                 backlog: int = 128) -> None:
        super().__init__(runner, path, backlog=backlog)
        self._fast_runner = runner
        self._fast_path = path
        self._fast_backlog = backlog
        self._listener: asyncio.Server | None = None  # our own listening socket (start)
        self._routes = api_resource(router)
        self._app = app
        self.connections: set[FastProtocol] = set()

    def aiohttp_protocol(self) -> web.RequestHandler:
        server = self._fast_runner.server
        assert server is not None
        return server()

    def plain_route(self, head: RequestHead, transport: asyncio.Transport) -> tuple[Handler, PlainRequest] | None:
        """(handler, request) when `head` asks a plain route in range, else None."""
        path, _, query = head.target.partition("?")
        # Percent-decoding and mux's path cleaning (a 301) are aiohttp's business.
        if not path.startswith("/") or "#" in head.target or "%" in path or "//" in path or "/." in path:
            return None
        headers = head.headers
        found = self._routes.match(head.method, path)
        if found is None:
            return None
        route, match_info = found
        if not is_plain(route.handler):
            return None
        version = match_info.get("version", "")
        if version and version_refusal(version) is not None:
            return None
        request = PlainRequest(self._app, transport, head.method, path, query, match_info, headers)
        if version:
            request[API_VERSION_KEY] = version
        return route.handler, request

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registered with the runner, which stops it at cleanup
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_unix_server(lambda: FastProtocol(self), self._fast_path,
                                                       backlog=self._fast_backlog)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        await super().stop()
        for proto in list(self.connections):  # idle keep-alive connections; busy ones finish
            proto.close()
