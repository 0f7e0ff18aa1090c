"""The /etc/hostname, /etc/hosts and /etc/resolv.conf a container gets, written into its
directory at start and bind-mounted in (container/container_unix.go BuildHostnameFile,
libnetwork/etchosts Build, libnetwork/resolvconf FilterResolvDNS).

The contents of hosts and resolv.conf come from the network code (daemon/network.py
build_hosts, build_resolv_conf: addresses, links, the embedded DNS).
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from .. import errdefs
from ..network.etcfiles import _LOCALHOST_NS  # one copy of libnetwork's defaults
from ..pkg import ioutil
from ..trace import traced
from . import network

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

DEFAULT_DNS = ["8.8.8.8", "8.8.4.4"]
_NS_LINE = re.compile(r"^\s*nameserver\s+(\S+)\s*$", re.M)


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


@traced("writeNetworkFiles", leaf=True)
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
    ctr.HostnamePath = os.path.join(ctr.root, "hostname")
    ctr.HostsPath = os.path.join(ctr.root, "hosts")
    ctr.ResolvConfPath = os.path.join(ctr.root, "resolv.conf")
    # Plain writes: these files are rebuilt on every start, a torn one is harmless.
    # The network code knows addresses, links and the embedded DNS: its content wins.
    # dockerd's order (the sandbox's hosts and resolv.conf, then BuildHostnameFile), so
    # that a full disk fails on the file dockerd names (`write <path>/hosts: ...`).
    hosts = network.build_hosts(d, ctr).encode()
    resolv = network.build_resolv_conf(d, ctr).encode()
    for path, data in ((ctr.HostsPath, hosts), (ctr.ResolvConfPath, resolv),
                       (ctr.HostnamePath, (ctr.Config.Hostname + "\n").encode())):
        _plain_write(path, data)


def _plain_write(path: str, data: bytes) -> None:
    ioutil.write_file(path, data, 0o644)
    os.chmod(path, 0o644)

