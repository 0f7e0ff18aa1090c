"""The /etc/hostname, /etc/hosts and /etc/resolv.conf a container gets, written into its
directory at start and bind-mounted in (container/container_unix.go BuildHostnameFile,
libnetwork/etchosts Build, libnetwork/resolvconf FilterResolvDNS).

The network helper's initialize_networking may rewrite hosts/resolv.conf afterwards (it
knows the addresses); these are the files of a container with no network knowledge yet.
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from .. import errdefs
from ..network.etcfiles import _LOCALHOST_NS, DEFAULT_HOSTS  # one copy of libnetwork's defaults
from ..trace import traced
from . import network

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

DEFAULT_DNS = ["8.8.8.8", "8.8.4.4"]
_NS_LINE = re.compile(r"^\s*nameserver\s+(\S+)\s*$", re.M)
_SEARCH = re.compile(r"^\s*search\s+(.*)$", re.M)
_OPTIONS = re.compile(r"^\s*options\s+(.*)$", re.M)
# dockerd reads systemd-resolved's upstream file when the stub resolver is in use.
HOST_RESOLV_CONF = ("/run/systemd/resolve/resolv.conf", "/etc/resolv.conf")


def host_resolv_conf() -> bytes:
    """The host's resolv.conf; systemd-resolved's real one if /etc/resolv.conf is its stub."""
    try:
        with open("/etc/resolv.conf", "rb") as f:
            data = f.read()
    except OSError:
        return b""
    if b"127.0.0.53" in data and os.path.exists(HOST_RESOLV_CONF[0]):
        with open(HOST_RESOLV_CONF[0], "rb") as f:
            return f.read()
    return data


def filter_resolv_dns(content: str, ipv6: bool = False) -> str:
    """FilterResolvDNS: drop localhost nameservers (and IPv6 ones without IPv6); fall back
    to Google's servers when nothing is left."""
    out = _LOCALHOST_NS.sub("", content)
    if not ipv6:
        out = re.sub(r"^\s*nameserver\s+[0-9a-fA-F:]*:[0-9a-fA-F:.%\w]*\s*$", "", out, flags=re.M)
    out = re.sub(r"\n{2,}", "\n", out).lstrip("\n")
    if not _NS_LINE.search(out):
        out += "".join(f"nameserver {ns}\n" for ns in DEFAULT_DNS)
    return out


def build_resolv_conf(ctr: Container, host_mode: bool) -> bytes:
    hc = ctr.host_config
    content = host_resolv_conf().decode("utf-8", "replace")
    if hc.Dns or hc.DnsSearch or hc.DnsOptions:
        # resolvconf.Build: the user's lists replace the host's.
        ns = list(hc.Dns or []) or [m for m in _NS_LINE.findall(content)]
        search = list(hc.DnsSearch or []) or (_SEARCH.findall(content)[-1].split() if _SEARCH.findall(content) else [])
        opts = list(hc.DnsOptions or []) or (_OPTIONS.findall(content)[-1].split() if _OPTIONS.findall(content) else [])
        out = "".join(f"nameserver {n}\n" for n in ns)
        if search and search != ["."]:
            out += "search " + " ".join(search) + "\n"
        if opts:
            out += "options " + " ".join(opts) + "\n"
        if not hc.Dns and not host_mode:
            out = filter_resolv_dns(out)
        return out.encode()
    if host_mode:
        return content.encode()
    return filter_resolv_dns(content).encode()


def build_hosts(ctr: Container, host_mode: bool) -> bytes:
    if host_mode:
        try:
            with open("/etc/hosts", "rb") as f:
                base = f.read()
        except OSError:
            base = DEFAULT_HOSTS.encode()
        extra = "".join(_extra_host_line(h) for h in ctr.host_config.ExtraHosts or [])
        return base + extra.encode()
    out = DEFAULT_HOSTS
    out += "".join(_extra_host_line(h) for h in ctr.host_config.ExtraHosts or [])
    for ep in (ctr.NetworkSettings.Networks or {}).values():
        ip = ep.IPAddress
        if ip:
            names = ctr.Config.Hostname
            if ctr.Config.Domainname:
                names = f"{ctr.Config.Hostname}.{ctr.Config.Domainname} {ctr.Config.Hostname}"
            out += f"{ip}\t{names}\n"
            break
    return out.encode()


def _extra_host_line(entry: str) -> str:
    host, _, ip = entry.partition(":")
    return f"{ip}\t{host}\n"


@traced("writeNetworkFiles")
def write_network_files(d: Daemon, ctr: Container) -> None:
    """Write hostname, hosts and resolv.conf into the container directory (blocking);
    `container:` network mode shares the other container's files instead."""
    hc = ctr.host_config
    mode = hc.NetworkMode or "default"
    if mode.startswith("container:"):
        target_id = mode.split(":", 1)[1]
        if target_id == ctr.ID:
            raise errdefs.InvalidParameter("cannot join own network")
        try:
            other = d.get_container(target_id)
        except errdefs.NotFound as e:
            raise errdefs.NotFound(str(e)) from None
        if not other.State.Running:
            raise errdefs.Conflict(f"cannot join network of a non running container: {target_id}")
        ctr.HostnamePath, ctr.HostsPath = other.HostnamePath, other.HostsPath
        ctr.ResolvConfPath = other.ResolvConfPath
        ctr.Config.Hostname = other.Config.Hostname
        ctr.Config.Domainname = other.Config.Domainname
        return
    host_mode = mode == "host"
    ctr.HostnamePath = os.path.join(ctr.root, "hostname")
    ctr.HostsPath = os.path.join(ctr.root, "hosts")
    ctr.ResolvConfPath = os.path.join(ctr.root, "resolv.conf")
    # Plain writes: these files are rebuilt on every start, a torn one is harmless.
    # The network code knows addresses, links and the embedded DNS: its content wins.
    if hasattr(network, "build_hosts") and hasattr(network, "build_resolv_conf"):
        hosts = network.build_hosts(d, ctr).encode()
        resolv = network.build_resolv_conf(d, ctr).encode()
    else:
        hosts, resolv = build_hosts(ctr, host_mode), build_resolv_conf(ctr, host_mode)
    for path, data in ((ctr.HostnamePath, (ctr.Config.Hostname + "\n").encode()),
                       (ctr.HostsPath, hosts), (ctr.ResolvConfPath, resolv)):
        _plain_write(path, data)


def _plain_write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)

