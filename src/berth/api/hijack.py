"""Hijacked connections for attach and exec start (moby api/server/httputils
HijackConnection, router/container/container_routes.go postContainersAttach, exec.go).

dockerd takes the raw connection from net/http and writes its own response head:
`HTTP/1.1 101 UPGRADED` with `Connection: Upgrade`/`Upgrade: tcp` when the client asked to
upgrade, `HTTP/1.1 200 OK` otherwise, then raw bytes both ways. Here the aiohttp transport
gets a protocol of ours: what the client sends (the container's stdin) goes into a buffer
with flow control, a half-close by the client (`CloseWrite`, as the CLI does after
`echo data | docker run -i`) is an EOF on stdin that leaves our write side open, and the
handler returns a response that writes nothing, so aiohttp closes the connection after it.
"""
from __future__ import annotations

import asyncio
import collections
from typing import Any

from aiohttp import web

RAW_STREAM = "application/vnd.docker.raw-stream"
_HIGH_WATER = 1 << 20  # stop reading from the client past this much unread stdin

_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 500: "Internal Server Error", 501: "Not Implemented",
            503: "Service Unavailable"}


class _Protocol(asyncio.Protocol):
    """The transport's protocol once hijacked; connection_lost still reaches aiohttp's."""

    def __init__(self, conn: HijackedConn, orig: Any) -> None:
        self._conn = conn
        self._orig = orig

    def data_received(self, data: bytes) -> None:
        self._conn._feed(data)

    def eof_received(self) -> bool:
        self._conn._feed_eof()
        return True  # keep our write side open: output still flows after stdin ends

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn._lost()
        try:
            self._orig.connection_lost(exc)
        except Exception:  # aiohttp's cleanup must not break ours
            pass

    def pause_writing(self) -> None:
        self._conn._paused = True

    def resume_writing(self) -> None:
        self._conn._paused = False
        self._conn._wake_writers()


class _ParserShim:
    """What aiohttp's set_parser wants: receives the bytes it buffered after the request."""

    def __init__(self, conn: HijackedConn) -> None:
        self._conn = conn

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._conn._feed(data)
        return False, b""

    def feed_eof(self) -> None:
        self._conn._feed_eof()


class HijackedConn:
    """The raw client connection of one attach or exec start."""

    def __init__(self, request: web.Request) -> None:
        transport = request.transport
        assert transport is not None
        self._transport = transport
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._closed = False
        self._paused = False
        self._read_paused = False
        self._readable = asyncio.Event()
        self._writable: list[asyncio.Future[None]] = []
        self.gone = asyncio.Event()  # the client went away
        self.head_written = False
        orig = request.protocol
        # Bytes aiohttp read past the request (an upgraded connection) come in here first.
        orig.set_parser(_ParserShim(self))  # type: ignore[arg-type]  # duck-types aiohttp's parser (feed_data, feed_eof)
        transport.set_protocol(_Protocol(self, orig))
        if transport.is_closing():
            self._lost()

    # -- from the transport ------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._readable.set()
        if self._buffered > _HIGH_WATER and not self._read_paused:
            self._read_paused = True
            self._transport.pause_reading()

    def _feed_eof(self) -> None:
        self._eof = True
        self._readable.set()

    def _lost(self) -> None:
        self._feed_eof()
        self._closed = True
        self.gone.set()
        self._wake_writers()

    def _wake_writers(self) -> None:
        for fut in self._writable:
            if not fut.done():
                fut.set_result(None)
        self._writable.clear()

    # -- for the daemon ----------------------------------------------------------------
    async def read(self) -> bytes:
        """The next chunk the client sent; b"" once it closed its side."""
        while not self._chunks:
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._read_paused and self._buffered < _HIGH_WATER // 2:
            self._read_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        """Send to the client; ConnectionResetError once it is gone."""
        if self._closed or self._transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        self._transport.write(data)
        while self._paused and not self._closed:
            fut = asyncio.get_running_loop().create_future()
            self._writable.append(fut)
            await fut

    def write_head(self, upgrade: bool, content_type: str = RAW_STREAM, extra: str = "") -> None:
        """The response head dockerd writes on the hijacked connection; `extra` are header
        lines (each ending in CRLF) that exec start copies from the response writer."""
        if upgrade:
            head = (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\n"
                    f"Connection: Upgrade\r\nUpgrade: tcp\r\n{extra}\r\n")
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{extra}\r\n"
        self.head_written = True
        if not self._closed:
            self._transport.write(head.encode())

    def write_error(self, status: int, message: str) -> None:
        """An error before the streams were set up (postContainersAttach's fallback)."""
        if self.head_written or self._closed:
            return
        self.head_written = True
        reason = _REASONS.get(status, "Error")
        self._transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {RAW_STREAM}\r\n\r\n{message}\r\n".encode())

    def close(self) -> None:
        """CloseStreams: flush and close the connection."""
        self._closed = True
        self._transport.close()


class HijackedResponse(web.StreamResponse):
    """What a hijacking handler returns: aiohttp must write nothing more, and close."""

    def __init__(self) -> None:
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request: Any) -> Any:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def upgrade_requested(request: web.Request) -> bool:
    """`_, ok := r.Header["Upgrade"]`: the header's presence, whatever its value."""
    return "Upgrade" in request.headers
