"""Published ports (moby v20.10.24 libnetwork/portallocator/portallocator.go,
libnetwork/drivers/bridge/port_mapping.go, daemon/network/settings.go, go-connections/nat).

Berth reserves each published host port by binding a socket to it (listening, for TCP)
and holds that socket while the container runs, as docker-proxy holds its listener: a
host process then cannot take the port, and a clash with one is found at start with
dockerd's message. Traffic itself is forwarded by netavark's DNAT rules.
"""
from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Sequence
from typing import Any

from .. import errdefs


def ephemeral_range() -> tuple[int, int]:
    """portallocator.getDynamicPortRange: the kernel's ip_local_port_range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 49153, 60999


def host_has_ipv6() -> bool:
    try:
        with open("/proc/sys/net/ipv6/conf/all/disable_ipv6") as f:
            return f.read().strip() == "0"
    except OSError:
        return False


class PortAllocator:
    """Ports handed out by this daemon, per (proto, host IP): portallocator.PortAllocator."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.used: dict[tuple[str, str, int], str] = {}  # (proto, ip, port) -> container ID
        self.socks: dict[str, list[socket.socket]] = {}
        self.last: dict[tuple[str, str], int] = {}

    def _clash(self, proto: str, ip: str, port: int) -> bool:
        """Taken by another container on the same IP: portallocator keeps one map per host
        IP, so 127.0.0.1:80 and 0.0.0.0:80 do not clash here; the kernel refuses the second
        bind (the userland proxy error), as it refuses docker-proxy's."""
        return (proto, ip, port) in self.used

    def _reserve_socket(self, proto: str, ip: str, port: int) -> socket.socket:
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if proto == "tcp":
            # Go's net.Listen (docker-proxy) sets SO_REUSEADDR: a port whose last
            # connection is in TIME_WAIT can be published again at once.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
            if proto == "tcp":
                # Listening, as docker-proxy does: with SO_REUSEADDR a bound-only socket
                # would not keep another engine (or a host server) off the port. Every
                # connection to it is DNATed to the container before it could land here.
                s.listen(1)
        except OSError:
            s.close()
            raise
        s.set_inheritable(False)
        return s

    def allocate(self, cid: str, proto: str, ip: str, want: int, want_end: int) -> int:
        """One host port: `want` (0 = any ephemeral) up to `want_end` for a range."""
        with self.lock:
            ports: Sequence[int]
            if want:
                ports = range(want, (want_end or want) + 1)
                explicit = want_end == 0
            else:
                lo, hi = ephemeral_range()
                start = self.last.get((proto, ip), lo - 1) + 1
                if start > hi:
                    start = lo
                ports = [*range(start, hi + 1), *range(lo, start)]
                explicit = False
            last_err: OSError | None = None
            for port in ports:
                if self._clash(proto, ip, port):
                    if explicit:
                        raise _bind_error(ip, port)
                    continue
                try:
                    s = self._reserve_socket(proto, ip, port)
                except OSError as e:
                    if explicit:
                        raise _proxy_error(proto, ip, port, e) from None
                    last_err = e
                    continue
                self.used[(proto, ip, port)] = cid
                self.socks.setdefault(cid, []).append(s)
                if not want:
                    self.last[(proto, ip)] = port
                return port
            if want and want_end:
                if last_err is not None:
                    raise _proxy_error(proto, ip, want, last_err)
                raise _bind_error(ip, want)
            raise errdefs.System(f"Bind for {ip}:{want} failed: port is already allocated")

    def release(self, cid: str) -> None:
        with self.lock:
            for s in self.socks.pop(cid, []):
                s.close()
            for k in [k for k, v in self.used.items() if v == cid]:
                del self.used[k]


def _fmt(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class PortError(Exception):
    """The tail of dockerd's `driver failed programming external connectivity` error."""


def _bind_error(ip: str, port: int) -> PortError:
    return PortError(f"Bind for {_fmt(ip, port)} failed: port is already allocated")


def _proxy_error(proto: str, ip: str, port: int, e: OSError) -> PortError:
    fam = "6" if ":" in ip else "4"
    what = {errno.EADDRINUSE: "address already in use", errno.EADDRNOTAVAIL: "cannot assign requested address",
            errno.EACCES: "permission denied"}.get(e.errno or 0, (e.strerror or str(e)).lower())
    return PortError(f"Error starting userland proxy: listen {proto}{fam} {_fmt(ip, port)}: bind: {what}")


def parse_port_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return int(port), (proto or "tcp").lower()


def plan(exposed: dict[str, Any] | None, bindings: dict[str, Any] | None, publish_all: bool
         ) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(\"80/tcp\", [(host IP, host port spec)])] for every exposed or bound port; an
    exposed port with no binding gets [] (shown as null in inspect)."""
    keys: dict[str, None] = {}
    for k in list((exposed or {}).keys()) + list((bindings or {}).keys()):
        p, proto = parse_port_key(k)
        keys[f"{p}/{proto}"] = None
    out = []
    for key in keys:
        bs = None
        for k, v in (bindings or {}).items():
            p, proto = parse_port_key(k)
            if f"{p}/{proto}" == key:
                bs = v
        pairs: list[tuple[str, str]] = []
        if bs:
            for b in bs:
                b = b or {}
                pairs.append((b.get("HostIp", "") if isinstance(b, dict) else b.HostIp,
                              b.get("HostPort", "") if isinstance(b, dict) else b.HostPort))
        elif publish_all:
            pairs.append(("", ""))
        out.append((key, pairs))
    return out
