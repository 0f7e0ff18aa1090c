"""What the shipping drivers share: the connection thread (Shipper), dialling, and
dockerd's error words (see the package docstring)."""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from ... import errdefs
from ...pkg.units import ram_in_bytes
from ..copier import Message
from ..info import Info

log = logging.getLogger("berth.logger")

DEFAULT_MAX_BUFFER = 1_000_000  # logger.defaultRingMaxSize
RETRY_DELAY = 1.0
CONNECT_TIMEOUT = 10.0
SEND_TIMEOUT = 30.0


def go_errno(e: OSError) -> str:
    """syscall.Errno.Error(): strerror with Go's lower-case first letter."""
    if isinstance(e, socket.timeout) or e.errno is None:
        return "i/o timeout" if isinstance(e, socket.timeout) else str(e)
    text = os.strerror(e.errno)
    return text[:1].lower() + text[1:]


def dial_error(network: str, address: str, e: OSError) -> str:
    """net.Dial's error text: `dial tcp 127.0.0.1:514: connect: connection refused`."""
    if isinstance(e, socket.gaierror):
        host = address.rsplit(":", 1)[0] if network.startswith(("tcp", "udp")) else address
        return f"dial {network}: lookup {host}: no such host"
    return f"dial {network} {address}: connect: {go_errno(e)}"


class DriverError(errdefs.Untyped):
    """The driver's New failed: start wraps it in "failed to initialize logging driver"."""


class Shipper:
    """Base of the shipping drivers. Subclasses implement `_connect` (blocking, raises
    DriverError with dockerd's text), `_send` (blocking, raises OSError) and `_disconnect`."""

    name = ""

    def __init__(self, info: Info, opts: dict[str, str]) -> None:
        self.info = info
        self.opts = opts
        self.nonblocking = opts.get("mode") == "non-blocking"
        self.max_buffer = DEFAULT_MAX_BUFFER
        if self.nonblocking and opts.get("max-buffer-size"):
            self.max_buffer = ram_in_bytes(opts["max-buffer-size"])
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"log-{self.name}")
        self.connected = False
        self.sock: socket.socket | None = None  # the connection of a socket-based driver (gelf, fluentd)
        # non-blocking: dockerd's ring buffer and its sender
        self._ring: collections.deque[Message] = collections.deque()
        self._ring_bytes = 0
        self.ring_counts_messages = False  # fluentd-async's queue holds a number of messages
        self._ring_event = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self.dropped = 0
        self.sent = 0

    def connect_at_start(self) -> bool:
        """Whether New connects (fluentd-async does not)."""
        return True

    # -- blocking parts, in the driver's own thread --------------------------------------
    def _connect(self) -> None:
        raise NotImplementedError

    def _send(self, msgs: list[Message]) -> None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        pass

    def _interrupt(self) -> None:
        """Unblock the driver's thread (from the event loop): shut its socket down."""
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _send_batch(self, msgs: list[Message]) -> None:
        if not self.connected:
            self._connect()
            self.connected = True
        try:
            self._send(msgs)
        except BaseException:
            self.connected = False
            self._disconnect()
            raise
        self.sent += len(msgs)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- the pump's side ---------------------------------------------------------------
    async def connect(self) -> None:
        """New's connection: fails with dockerd's error."""
        await self._run(self._connect)
        self.connected = True

    async def _deliver(self, msgs: list[Message]) -> None:
        """Send until it went (blocking mode's guarantee)."""
        while True:
            try:
                await asyncio.shield(self._run(self._send_batch, msgs))
                return
            except (OSError, DriverError) as e:
                log.warning("%s log driver: %s (retrying)", self.name, e)
                await asyncio.sleep(RETRY_DELAY)

    async def log(self, msgs: list[Message]) -> None:
        if not self.nonblocking:
            await self._deliver(msgs)
            return
        count_only = self.ring_counts_messages
        for m in msgs:  # RingLogger.Log: drop when the buffer is full
            size = 1 if count_only else len(m.line)
            if self._ring_bytes + size > self.max_buffer and self._ring:
                self.dropped += 1
                continue
            self._ring.append(m)
            self._ring_bytes += size
        self._ring_event.set()
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._drain_ring())

    async def _drain_ring(self) -> None:
        while True:
            if not self._ring:
                self._ring_event.clear()
                await self._ring_event.wait()
                continue
            batch = list(self._ring)
            self._ring.clear()
            self._ring_bytes = 0
            try:
                await asyncio.shield(self._run(self._send_batch, batch))
            except (OSError, DriverError) as e:
                # dockerd's ring logger logs the error and goes on: these are lost
                self.dropped += len(batch)
                log.warning("%s log driver: %s (%d messages dropped)", self.name, e, len(batch))
                await asyncio.sleep(RETRY_DELAY)

    async def close(self) -> None:
        if self._sender is not None:
            # RingLogger.Close: what is buffered is still sent (briefly)
            deadline = asyncio.get_running_loop().time() + 5
            while self._ring and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            self._interrupt()  # a send stuck on a receiver that does not read
            self._sender.cancel()
            try:
                await self._sender
            except asyncio.CancelledError:
                pass
        try:
            await self._run(self._disconnect)
        finally:
            self._pool.shutdown(wait=False)


def open_stream(network: str, address: str, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """net.Dial for tcp and unix stream sockets, with Go's error text."""
    try:
        if network == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(address)
            except BaseException:
                s.close()
                raise
        else:
            host, _, port = address.rpartition(":")
            s = socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as e:
        raise DriverError(dial_error(network, address, e)) from None
    s.settimeout(SEND_TIMEOUT)
    return s


def open_datagram(network: str, address: str) -> socket.socket:
    """net.Dial for udp and unixgram: a connected datagram socket."""
    try:
        if network == "unixgram":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.connect(address)
            except BaseException:
                s.close()
                raise
        else:
            host, _, port = address.rpartition(":")
            infos = socket.getaddrinfo(host.strip("[]") or "localhost", int(port), type=socket.SOCK_DGRAM)
            fam, typ, proto, _, sa = infos[0]
            s = socket.socket(fam, typ, proto)
            s.connect(sa)
    except OSError as e:
        raise DriverError(dial_error(network, address, e)) from None
    s.settimeout(SEND_TIMEOUT)
    return s


def send_datagram(s: socket.socket, data: bytes) -> None:
    """A datagram to a connected socket. A refused one (nobody on the port, reported by
    the previous send's ICMP) is lost as with dockerd's writers; it is not an error that
    a reconnect would cure."""
    try:
        s.send(data)
    except ConnectionRefusedError:
        try:
            s.send(data)
        except ConnectionRefusedError:
            pass
    except OSError as e:
        if e.errno not in (errno.ECONNREFUSED,):
            raise
