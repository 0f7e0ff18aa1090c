"""syslog (moby v20.10.24 daemon/logger/syslog/syslog.go with RackSec/srslog).

Addresses: `unix://`, `unixgram://` (the path must exist at create), `udp://`, `tcp://`,
`tcp+tls://` (port 514 when none is given), or none: the local syslog socket (/dev/log,
/var/run/syslog, /var/run/log; datagram, then stream). Formats as srslog writes them, with
berthd's pid where dockerd puts its own:
- "" (default): `<PRI>Jan _2 15:04:05 TAG[PID]: line`
- rfc3164: `<PRI>Jan _2 15:04:05 HOST TAG[PID]: line`
- rfc5424: `<PRI>1 2006-01-02T15:04:05Z07:00 HOST TAG PID TAG - line`
- rfc5424micro: the same with microseconds.
Every message ends with a newline; on tcp+tls the rfc5424 formats are framed with their
length (RFC 5425). PRI is the facility (daemon by default) plus severity info (stdout) or
err (stderr). Empty lines are not sent.
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import ssl
import urllib.parse

from ..copier import Message
from ..info import Info, parse_log_tag
from .base import DriverError, Shipper, go_errno, open_datagram, open_stream, send_datagram

SECURE = "tcp+tls"
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
              "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18,
              "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}
LOG_INFO, LOG_ERR = 6, 3
FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
_LOCAL_PATHS = ("/dev/log", "/var/run/syslog", "/var/run/log")
_TRANSPORTS = ("tcp", "udp", "unix", "unixgram", "tcp+tls")  # urlutil.IsTransportURL's schemes


def parse_address(address: str) -> tuple[str, str]:
    """parseAddress: (proto, address); ("", "") is the local syslog."""
    if not address:
        return "", ""
    scheme = address.split("://", 1)[0] if "://" in address else ""
    if scheme not in _TRANSPORTS:
        raise DriverError(f"syslog-address should be in form proto://address, got {address}")
    url = urllib.parse.urlsplit(address)
    if scheme in ("unix", "unixgram"):
        try:
            os.stat(url.path)
        except OSError as e:
            raise DriverError(f"stat {url.path}: {go_errno(e)}") from None
        return scheme, url.path
    host = url.netloc
    if not _has_port(host):
        host += ":514"
    return scheme, host


def _has_port(hostport: str) -> bool:
    if hostport.startswith("["):
        return "]:" in hostport
    return hostport.count(":") == 1


def parse_facility(facility: str) -> int:
    if not facility:
        return 3 << 3
    if facility in FACILITIES:
        return FACILITIES[facility] << 3
    try:
        n = int(facility)
    except ValueError:
        n = -1
    if 0 <= n <= 23 and facility.lstrip("+-").isdigit():
        return n << 3
    raise DriverError("invalid syslog facility")


def parse_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DriverError("Invalid syslog format")
    return fmt


def _go_zone(dt: _dt.datetime) -> str:
    """Go's Z07:00."""
    off = dt.utcoffset() or _dt.timedelta(0)
    if not off:
        return "Z"
    mins = int(off.total_seconds()) // 60
    sign = "+" if mins >= 0 else "-"
    mins = abs(mins)
    return f"{sign}{mins // 60:02d}:{mins % 60:02d}"


def _stamp(dt: _dt.datetime) -> str:
    """time.Stamp: `Jan _2 15:04:05`."""
    return f"{dt.strftime('%b')} {dt.day:2d} {dt.strftime('%H:%M:%S')}"


class Syslog(Shipper):
    name = "syslog"

    def __init__(self, info: Info, opts: dict[str, str]) -> None:
        super().__init__(info, opts)
        self.tag = parse_log_tag(info, "{{.ID}}")
        self.proto, self.address = parse_address(opts.get("syslog-address", ""))
        self.facility = parse_facility(opts.get("syslog-facility", ""))
        self.format = parse_format(opts.get("syslog-format", ""))
        self.framed = self.proto == SECURE and self.format.startswith("rfc5424")
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.tls: ssl.SSLContext | None = self._tls_context() if self.proto == SECURE else None
        self.sock: socket.socket | None = None
        self.datagram = False

    def _tls_context(self) -> ssl.SSLContext:
        """tlsconfig.Client: the CA (else the system's), a client certificate, and
        syslog-tls-skip-verify (present at all: skip)."""
        o = self.opts
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if o.get("syslog-tls-ca-cert"):
            try:
                ctx.load_verify_locations(cafile=o["syslog-tls-ca-cert"])
            except (OSError, ssl.SSLError) as e:
                raise DriverError(f"Could not read CA certificate {o['syslog-tls-ca-cert']!r}: {e}") from None
        if o.get("syslog-tls-cert") or o.get("syslog-tls-key"):
            try:
                ctx.load_cert_chain(o.get("syslog-tls-cert", ""), o.get("syslog-tls-key") or None)
            except (OSError, ssl.SSLError) as e:
                raise DriverError(f"Could not load X509 key pair: {e}") from None
        if "syslog-tls-skip-verify" in o:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self) -> None:
        if self.proto == "":
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                for path in _LOCAL_PATHS:
                    s = socket.socket(socket.AF_UNIX, kind)
                    try:
                        s.connect(path)
                    except OSError:
                        s.close()
                        continue
                    self.sock, self.datagram = s, kind == socket.SOCK_DGRAM
                    return
            raise DriverError("Unix syslog delivery error")
        if self.proto in ("udp", "unixgram"):
            self.sock, self.datagram = open_datagram(self.proto, self.address), True
            return
        s = open_stream("unix" if self.proto == "unix" else "tcp", self.address)
        if self.tls is not None:
            try:
                s = self.tls.wrap_socket(s, server_hostname=self.address.rpartition(":")[0].strip("[]"))
            except (OSError, ssl.SSLError) as e:
                s.close()
                raise DriverError(str(e)) from None
        self.sock, self.datagram = s, False

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def format_message(self, m: Message, now: _dt.datetime) -> bytes | None:
        if not m.line:
            return None
        pri = self.facility | (LOG_ERR if m.stream == b"stderr" else LOG_INFO)
        content = m.line.decode("utf-8", "surrogateescape")
        if not content.endswith("\n"):
            content += "\n"
        f = self.format
        if f == "":
            text = f"<{pri}>{_stamp(now)} {self.tag}[{self.pid}]: {content}"
        elif f == "rfc3164":
            text = f"<{pri}>{_stamp(now)} {self.hostname} {self.tag}[{self.pid}]: {content}"
        else:
            ts = now.strftime("%Y-%m-%dT%H:%M:%S")
            if f == "rfc5424micro":
                ts += f".{now.microsecond:06d}"
            ts += _go_zone(now)
            text = f"<{pri}>1 {ts} {self.hostname} {self.tag} {self.pid} {self.tag} - {content}"
        data = text.encode("utf-8", "surrogateescape")
        if self.framed:
            data = b"%d " % len(data) + data
        return data

    def _send(self, msgs: list[Message]) -> None:
        assert self.sock is not None
        now = _dt.datetime.now().astimezone()  # srslog stamps with the time of sending
        out = [d for m in msgs if (d := self.format_message(m, now)) is not None]
        if self.datagram:
            for d in out:
                send_datagram(self.sock, d)
        elif out:
            self.sock.sendall(b"".join(out))


__all__ = ["Syslog", "parse_address", "parse_facility", "parse_format"]
