"""gelf (moby v20.10.24 daemon/logger/gelf/gelf.go with Graylog2/go-gelf v2).

udp: each message is one JSON document, compressed (gzip by default, level 1; zlib; none),
cut into chunks of 1420 bytes (12-byte header: 0x1e 0x0f, an 8-byte id, sequence, count)
when larger, at most 128. tcp: uncompressed JSON, each followed by a NUL byte. The JSON is
go-gelf's: version, host, short_message, timestamp (seconds, millisecond precision), level
(6 stdout, 3 stderr), then the extra fields sorted (_command, _container_id,
_container_name, _created, _image_id, _image_name, _tag, the labels/env attributes with a
`_` prefix). Empty lines are not sent. On tcp a failed send reconnects
gelf-tcp-max-reconnect times (3), gelf-tcp-reconnect-delay seconds apart (1), then the
batch is dropped as go-gelf drops the message.
"""
from __future__ import annotations

import asyncio
import gzip
import os
import socket
import urllib.parse
import zlib

from ...types import gojson
from ..copier import Message
from ..info import Info, extra_attributes, parse_log_tag
from ..jsonlog import go_bytes_string, go_string, rfc3339nano
from .base import DriverError, Shipper, log, open_datagram, open_stream, send_datagram

CHUNK_SIZE = 1420  # go-gelf ChunkSize
_HEADER = 12
_DATA = CHUNK_SIZE - _HEADER
_MAX_CHUNKS = 128


def parse_address(address: str) -> tuple[str, str]:
    url = urllib.parse.urlsplit(address)
    if url.scheme not in ("udp", "tcp") or not url.netloc:
        raise DriverError("gelf: unsupported address scheme")  # validated at create already
    return url.scheme, url.netloc


def _go_json_value(v: object) -> str:
    if isinstance(v, str):
        return go_string(v)
    raise TypeError(type(v))


class Gelf(Shipper):
    name = "gelf"

    def __init__(self, info: Info, opts: dict[str, str]) -> None:
        super().__init__(info, opts)
        self.scheme, self.address = parse_address(opts.get("gelf-address", ""))
        self.hostname = socket.gethostname()
        tag = parse_log_tag(info, "{{.ID}}")
        created = info.ContainerCreated
        extra: dict[str, str] = {
            "_container_id": info.ContainerID,
            "_container_name": info.ContainerName.lstrip("/"),
            "_image_id": info.ContainerImageID,
            "_image_name": info.ContainerImageName,
            "_command": " ".join([info.ContainerEntrypoint, *info.ContainerArgs]),
            "_tag": tag,
            "_created": created,
        }
        for k, v in extra_attributes(info).items():
            extra[k if k.startswith("_") else "_" + k] = v
        self.raw_extra = ",".join(f"{go_string(k)}:{go_string(v)}" for k, v in sorted(extra.items()))
        self.prefix = '{"version":"1.1","host":' + go_string(self.hostname) + ',"short_message":'
        self.compression = opts.get("gelf-compression-type", "gzip")
        if self.compression not in ("gzip", "zlib", "none"):
            raise DriverError(f'gelf: invalid compression type "{self.compression}"')
        level = opts.get("gelf-compression-level", "1")
        try:
            self.level = int(level)
        except ValueError:
            raise DriverError(f"gelf: invalid compression level {level}, err strconv.Atoi: "
                              f'parsing "{level}": invalid syntax') from None
        # go-gelf's TCPWriter: after a failed write, MaxReconnect reconnects ReconnectDelay
        # seconds apart, then the message is dropped (dockerd logs the error)
        self.max_reconnect, self.reconnect_delay = 3, 1
        for key in ("gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay"):
            if key in opts:
                try:
                    n = int(opts[key])
                except ValueError:
                    n = -1
                if n < 0:
                    raise DriverError(f"{key} must be a positive integer")
                if key == "gelf-tcp-max-reconnect":
                    self.max_reconnect = n
                else:
                    self.reconnect_delay = n
        self.sock: socket.socket | None = None
        self._seq = 0

    def document(self, m: Message) -> bytes | None:
        """go-gelf's Message.MarshalJSONBuf."""
        if not m.line:
            return None
        ms = _unix_ms(m.ts)
        level = 3 if m.stream == b"stderr" else 6
        return (self.prefix + go_bytes_string(m.line) + ',"timestamp":' + repr(ms / 1000.0) +
                f',"level":{level},' + self.raw_extra + "}").encode()

    def _compress(self, data: bytes) -> bytes:
        lvl = self.level if self.level != -1 else 6
        if self.compression == "gzip":
            return gzip.compress(data, compresslevel=lvl, mtime=0)
        if self.compression == "zlib":
            return zlib.compress(data, lvl)
        return data

    def chunks(self, z: bytes) -> list[bytes]:
        if len(z) <= CHUNK_SIZE:
            return [z]
        n = len(z) // _DATA + 1
        if n > _MAX_CHUNKS:
            raise ValueError(f"msg too large, would need {n} chunks")
        msg_id = os.urandom(8)
        return [b"\x1e\x0f" + msg_id + bytes((i, n)) + z[i * _DATA:(i + 1) * _DATA] for i in range(n)]

    async def _deliver(self, msgs: list[Message]) -> None:
        if self.scheme != "tcp":
            await super()._deliver(msgs)
            return
        attempt = 0
        while True:
            try:
                await asyncio.shield(self._run(self._send_batch, msgs))
                return
            except (OSError, DriverError) as e:
                attempt += 1
                if attempt > self.max_reconnect:
                    self.dropped += len(msgs)
                    log.warning("gelf: cannot send GELF message: %s (%d messages dropped after %d reconnects)",
                                e, len(msgs), self.max_reconnect)
                    return
                await asyncio.sleep(self.reconnect_delay)

    def _connect(self) -> None:
        try:
            if self.scheme == "udp":
                self.sock = open_datagram("udp", self.address)
            else:
                self.sock = open_stream("tcp", self.address)
        except DriverError as e:
            raise DriverError(f"gelf: cannot connect to GELF endpoint: {self.address} {e}") from None

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _send(self, msgs: list[Message]) -> None:
        assert self.sock is not None
        docs = [d for m in msgs if (d := self.document(m)) is not None]
        if self.scheme == "tcp":
            if docs:
                self.sock.sendall(b"\0".join(docs) + b"\0")
            return
        for d in docs:
            try:
                parts = self.chunks(self._compress(d))
            except ValueError:
                continue  # dockerd logs "msg too large" and goes on
            for p in parts:
                send_datagram(self.sock, p)


def _unix_ms(ts: bytes) -> int:
    return gojson.parse_go_time(rfc3339nano(ts).decode()) // 1_000_000


__all__ = ["CHUNK_SIZE", "Gelf"]
