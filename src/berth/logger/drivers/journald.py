"""journald (moby v20.10.24 daemon/logger/journald/journald.go with go-systemd's journal
package): one native-protocol datagram per message to /run/systemd/journal/socket with
MESSAGE, PRIORITY (6 stdout, 3 stderr), CONTAINER_ID (12 chars), CONTAINER_ID_FULL,
CONTAINER_NAME, CONTAINER_TAG and SYSLOG_IDENTIFIER (the tag, `{{.ID}}` by default),
IMAGE_NAME, the labels/env attributes with their names upper-cased and sanitized, and for a
piece of a long line CONTAINER_PARTIAL_ID/ORDINAL/LAST (+ CONTAINER_PARTIAL_MESSAGE=true
but on the last). A message too big for a datagram goes in a memfd passed along, as
go-systemd does. Where the host has no journald, a start fails with dockerd's "journald is
not enabled on this host". Empty lines are sent too (dockerd's journald does).
"""
from __future__ import annotations

import array
import errno
import os
import socket

from ..copier import Message
from ..info import Info, extra_attributes, parse_log_tag
from .base import DriverError, Shipper

SOCKET = "/run/systemd/journal/socket"


def sanitize_key(key: str) -> str:
    """sanitizeKeyMod: A-Z0-9 and _, lower case raised, no leading _."""
    out: list[str] = []
    for ch in key:
        if "a" <= ch <= "z":
            ch = ch.upper()
        elif not ("A" <= ch <= "Z" or "0" <= ch <= "9"):
            ch = "_"
        if not (not out and ch == "_"):
            out.append(ch)
    return "".join(out)


def _field(key: str, value: bytes) -> bytes:
    """go-systemd appendVariable: KEY=value, or the binary form for a value with a newline."""
    k = key.encode()
    if b"\n" in value:
        return k + b"\n" + len(value).to_bytes(8, "little") + value + b"\n"
    return k + b"=" + value + b"\n"


def enabled(path: str = SOCKET) -> bool:
    """journal.Enabled: the socket exists and takes a connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Journald(Shipper):
    name = "journald"
    socket_path = SOCKET

    def __init__(self, info: Info, opts: dict[str, str]) -> None:
        super().__init__(info, opts)
        tag = parse_log_tag(info, "{{.ID}}")
        fields = {
            "CONTAINER_ID": info.ContainerID[:12], "CONTAINER_ID_FULL": info.ContainerID,
            "CONTAINER_NAME": info.ContainerName.lstrip("/"), "CONTAINER_TAG": tag,
            "IMAGE_NAME": info.ContainerImageName, "SYSLOG_IDENTIFIER": tag,
        }
        for k, v in extra_attributes(info).items():
            fields[sanitize_key(k)] = v
        self.fixed = b"".join(_field(k, v.encode()) for k, v in fields.items())
        self.sock: socket.socket | None = None

    def _connect(self) -> None:
        if not enabled(self.socket_path):
            raise DriverError("journald is not enabled on this host")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.connect(self.socket_path)
        self.sock = s

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def entry(self, m: Message) -> bytes:
        out = _field("MESSAGE", m.line) + _field("PRIORITY", b"3" if m.stream == b"stderr" else b"6") + self.fixed
        p = m.partial
        if p is not None:
            out += (_field("CONTAINER_PARTIAL_ID", p.id.encode()) +
                    _field("CONTAINER_PARTIAL_ORDINAL", str(p.ordinal).encode()) +
                    _field("CONTAINER_PARTIAL_LAST", b"true" if p.last else b"false"))
            if not p.last:
                out += _field("CONTAINER_PARTIAL_MESSAGE", b"true")
        return out

    def _send(self, msgs: list[Message]) -> None:
        assert self.sock is not None
        for m in msgs:
            data = self.entry(m)
            try:
                self.sock.send(data)
            except OSError as e:
                if e.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                    raise
                fd = os.memfd_create("journal-message", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
                try:
                    os.write(fd, data)
                    self.sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
                finally:
                    os.close(fd)


__all__ = ["Journald", "enabled", "sanitize_key"]
