"""fluentd (moby v20.10.24 daemon/logger/fluentd/fluentd.go with fluent-logger-golang 1.6):
the forward protocol, one msgpack `[tag, time, record, {}]` per message over tcp or a unix
socket. The record is container_id, container_name (with its "/"), source, log, the
labels/env attributes, and for a piece of a long line partial_message, partial_id,
partial_ordinal, partial_last (all strings). time is whole seconds, or an EventTime
(msgpack ext 0: seconds, nanoseconds) with fluentd-sub-second-precision. With
fluentd-request-ack each message carries a `chunk` id and waits for its `ack`.

Addresses (parseAddress): "" → tcp 127.0.0.1:24224; `host`, `host:port`, `tcp://host:port`,
`unix:///path`. fluentd-async (or the older fluentd-async-connect): no connection at start,
messages queue up to fluentd-buffer-limit of them (1Mi; fluent-logger's queue counts
messages, not bytes) and what does not fit is dropped. Otherwise an unreachable fluentd fails the start; a failed
send is retried every fluentd-retry-wait, at most fluentd-max-retries times, then the
batch is dropped as dockerd drops it.
"""
from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import struct
import urllib.parse
from typing import NamedTuple

import msgspec

from ...pkg.units import ram_in_bytes
from ..config import parse_bool
from ..copier import Message
from ..info import Info, extra_attributes, parse_log_tag
from ..jsonlog import _parse_any
from .base import DriverError, Shipper, log, open_stream

DEFAULT_BUFFER_LIMIT = 1024 * 1024
DEFAULT_PORT = 24224
MAX_RETRIES = 2**31 - 1


class Location(NamedTuple):
    protocol: str
    host: str
    port: int
    path: str


def parse_address(address: str) -> Location:
    if not address:
        return Location("tcp", "127.0.0.1", DEFAULT_PORT, "")
    given, protocol = address, "tcp"
    if re.match(r"^(tcp|udp|unix|unixgram|tcp\+tls)://", address):
        url = urllib.parse.urlsplit(address)
        if url.scheme in ("unix", "unixgram"):
            return Location(url.scheme, "", 0, url.path)
        bad = re.search(r":([^\]:]*)$", url.netloc)
        if bad and not bad.group(1).isdigit():
            raise DriverError(f'invalid fluentd-address {given}: parse "{given}": '
                              f'invalid port ":{bad.group(1)}" after host')
        protocol, address = url.scheme, url.netloc
    host, sep, port = address.rpartition(":")
    if not sep or (address.startswith("[") and not host.endswith("]")):
        return Location(protocol, "", DEFAULT_PORT, "")  # dockerd: SplitHostPort's empty host
    try:
        portnum = int(port)
    except ValueError:
        raise DriverError(f'invalid fluentd-address {given}: strconv.Atoi: parsing "{port}": invalid syntax') from None
    return Location(protocol, host.strip("[]"), portnum, "")


def _go_duration_ms(text: str) -> int:
    m = re.fullmatch(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", text)
    if not m:
        raise DriverError(f'time: invalid duration "{text}"')
    mult = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1, "s": 1000, "m": 60000, "h": 3600000}[m.group(2)]
    return int(float(m.group(1)) * mult)


class Config(NamedTuple):
    loc: Location
    buffer_limit: int
    retry_wait_ms: int
    max_retries: int
    is_async: bool
    sub_second: bool
    request_ack: bool


def parse_config(cfg: dict[str, str]) -> Config:
    """parseConfig, in dockerd's order, with its errors."""
    loc = parse_address(cfg.get("fluentd-address", ""))
    limit = DEFAULT_BUFFER_LIMIT
    if cfg.get("fluentd-buffer-limit"):
        try:
            limit = ram_in_bytes(cfg["fluentd-buffer-limit"])
        except ValueError as e:
            raise DriverError(str(e)) from None
    wait = 1000
    if cfg.get("fluentd-retry-wait"):
        wait = _go_duration_ms(cfg["fluentd-retry-wait"])
    retries = MAX_RETRIES
    if cfg.get("fluentd-max-retries"):
        v = cfg["fluentd-max-retries"]
        if not v.isdigit():
            raise DriverError(f'strconv.ParseUint: parsing "{v}": invalid syntax')
        retries = int(v)
    if cfg.get("fluentd-async") and cfg.get("fluentd-async-connect"):
        raise DriverError("conflicting options: cannot specify both 'fluentd-async' and 'fluentd-async-connect")
    flags = {}
    for key in ("fluentd-async", "fluentd-async-connect", "fluentd-sub-second-precision", "fluentd-request-ack"):
        flags[key] = False
        if cfg.get(key):
            try:
                flags[key] = parse_bool(cfg[key])
            except ValueError as e:
                raise DriverError(str(e)) from None
    return Config(loc, limit, wait, retries, flags["fluentd-async"] or flags["fluentd-async-connect"],
                  flags["fluentd-sub-second-precision"], flags["fluentd-request-ack"])


_enc = msgspec.msgpack.Encoder()


def _raw_str(data: bytes) -> msgspec.Raw:
    """A msgpack str of these bytes as they are: Go's string(msg.Line) keeps bytes that are
    not UTF-8, and so does fluentd's forward input."""
    n = len(data)
    if n < 32:
        head = bytes((0xA0 | n,))
    elif n < 256:
        head = b"\xd9" + bytes((n,))
    elif n < 65536:
        head = b"\xda" + n.to_bytes(2, "big")
    else:
        head = b"\xdb" + n.to_bytes(4, "big")
    return msgspec.Raw(head + data)
_dec = msgspec.msgpack.Decoder()


class Fluentd(Shipper):
    name = "fluentd"

    def __init__(self, info: Info, opts: dict[str, str]) -> None:
        super().__init__(info, opts)
        self.cfg = parse_config(opts)
        self.tag = parse_log_tag(info, "{{.ID}}")
        self.base = {"container_id": info.ContainerID, "container_name": info.ContainerName}
        self.extra = extra_attributes(info)
        if self.cfg.is_async:
            # fluent-logger's async queue stands in for dockerd's: non-blocking, bounded
            self.nonblocking = True
            self.max_buffer = self.cfg.buffer_limit
            self.ring_counts_messages = True
        self.sock: socket.socket | None = None
        self.retries = 0

    def connect_at_start(self) -> bool:
        return not self.cfg.is_async

    def record(self, m: Message) -> dict[str, object]:
        r: dict[str, object] = dict(self.base)
        r["source"] = m.stream.decode()
        r["log"] = _raw_str(m.line)
        r.update(self.extra)
        if m.partial is not None:
            r["partial_message"] = "true"
            r["partial_id"] = m.partial.id
            r["partial_ordinal"] = str(m.partial.ordinal)
            r["partial_last"] = "true" if m.partial.last else "false"
        return r

    def encode(self, m: Message) -> bytes:
        ns = _parse_any(m.ts)
        t: object = ns // 1_000_000_000
        if self.cfg.sub_second:
            t = msgspec.msgpack.Ext(0, struct.pack(">II", ns // 1_000_000_000, ns % 1_000_000_000))
        option: dict[str, str] = {}
        if self.cfg.request_ack:
            option["chunk"] = base64.b64encode(os.urandom(16)).decode()
        return _enc.encode([self.tag, t, self.record(m), option])

    def _connect(self) -> None:
        loc = self.cfg.loc
        if loc.protocol in ("unix", "unixgram"):
            self.sock = open_stream("unix", loc.path)
        else:
            host = f"[{loc.host}]" if ":" in loc.host else loc.host
            self.sock = open_stream("tcp", f"{host}:{loc.port}")

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _send(self, msgs: list[Message]) -> None:
        assert self.sock is not None
        if not self.cfg.request_ack:
            self.sock.sendall(b"".join(self.encode(m) for m in msgs))
            return
        for m in msgs:  # one at a time: each waits for its ack
            data = self.encode(m)
            self.sock.sendall(data)
            chunk = _dec.decode(data)[3]["chunk"]
            self._await_ack(chunk)

    def _await_ack(self, chunk: str) -> None:
        assert self.sock is not None
        buf = b""
        while True:
            part = self.sock.recv(4096)
            if not part:
                raise ConnectionResetError(104, "connection reset by peer")
            buf += part
            try:
                resp = _dec.decode(buf)
            except msgspec.DecodeError:
                continue
            if isinstance(resp, dict) and resp.get("ack") == chunk:
                return
            raise OSError(f"ack in response and chunk id in sent data are different: {resp!r}")

    async def _deliver(self, msgs: list[Message]) -> None:
        """fluent-logger's retries: every fluentd-retry-wait, fluentd-max-retries times
        (unbounded by default), then the batch is dropped as dockerd drops it."""
        attempt = 0
        while True:
            try:
                await asyncio.shield(self._run(self._send_batch, msgs))
                return
            except (OSError, DriverError) as e:
                attempt += 1
                if attempt > self.cfg.max_retries:
                    self.dropped += len(msgs)
                    log.warning("fluentd log driver: %s: %d messages dropped after %d retries",
                                e, len(msgs), self.cfg.max_retries)
                    return
                log.warning("fluentd log driver: %s (retrying)", e)
                await asyncio.sleep(self.cfg.retry_wait_ms / 1000)


__all__ = ["Fluentd", "parse_address", "parse_config"]
