"""Keep a network's bridge and firewall chains alive between containers, as dockerd does.

dockerd makes a network's bridge and iptables rules once, when the network is created, and
a container only adds its veth. netavark (1.4) instead removes the bridge and the network's
chains whenever its last container leaves, and remakes them for the next one: on a network
with one container at a time (`docker run --rm` in a loop, CI jobs) every start and stop
pays that, about 200 ms of netlink and iptables calls here.

netavark deletes the bridge only when no other link has it as master, so Berth parks one
end of a veth pair on each bridge it uses (`bk-<network id>`, the peer `bq-<network id>`,
both down: it carries no traffic). When the network goes (`docker network rm`, prune, or
daemon shutdown with no container left on it) the keeper is removed and netavark is made
to do its complete teardown once, through a throwaway namespace, so nothing of the
network outlives it: no bridge, no chain, no rule.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import subprocess
from typing import Any, Protocol

from .. import errdefs
from ..pkg import stringid


class Netavark(Protocol):
    """What keeping a bridge asks of netavark (netavark.Netavark satisfies it)."""

    def create_netns(self, sandbox_id: str) -> str: ...
    def remove_netns(self, path: str) -> None: ...
    def setup(self, netns: str, opts: dict[str, Any]) -> dict[str, Any]: ...
    def teardown(self, container_id: str, network_id: str) -> None: ...

log = logging.getLogger("berth.network")

_SYS_NET = "/sys/class/net"
THROWAWAY_PREFIX = "berth-keeper-"


def keeper_name(network_id: str) -> str:
    return "bk-" + network_id[:11]


def _peer_name(network_id: str) -> str:
    return "bq-" + network_id[:11]


def _exists(ifname: str) -> bool:
    return os.path.exists(os.path.join(_SYS_NET, ifname))


def _ip(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["ip", *args], capture_output=True)


def ensure(bridge: str, network_id: str) -> None:
    """Park a keeper port on `bridge` (made by netavark's setup just before) if it has none,
    and pin the bridge's MAC address."""
    if not _exists(bridge):
        return
    _pin_mac(bridge)
    name = keeper_name(network_id)
    _drop_stale_keepers(bridge, name)
    if _exists(name):
        if not os.path.exists(os.path.join(_SYS_NET, name, "master")):
            # the bridge was deleted under the network and netavark made it again: the
            # keeper, left without a master, goes back on it
            _ip("link", "set", name, "master", bridge)
        return
    r = _ip("link", "add", name, "type", "veth", "peer", "name", _peer_name(network_id))
    if r.returncode != 0 and not _exists(name):
        log.warning("keeper for %s: %s", bridge, r.stderr.decode().strip())
        return
    r = _ip("link", "set", name, "master", bridge)
    if r.returncode != 0:
        log.warning("keeper for %s: %s", bridge, r.stderr.decode().strip())
        _ip("link", "del", name)


def _pin_mac(bridge: str) -> None:
    """Make the bridge's MAC address its own (`addr_assign_type` 3, NET_ADDR_SET).

    A Linux bridge whose address was never set takes the lowest MAC among its ports, so a
    container's veth coming or going (any restart) can change the gateway's MAC under the
    other containers, whose ARP entries then point at nothing until they go stale: seconds
    to a minute with no gateway and no embedded DNS. dockerd sets its bridges' MAC once;
    Berth keeps the one the bridge has now (the containers already know it), set."""
    path = os.path.join(_SYS_NET, bridge)
    try:
        with open(os.path.join(path, "addr_assign_type")) as f:
            if f.read().strip() == "3":
                return
        with open(os.path.join(path, "address")) as f:
            mac = f.read().strip()
    except OSError:
        return
    r = _ip("link", "set", bridge, "address", mac)
    if r.returncode != 0:
        log.warning("pinning the MAC of %s: %s", bridge, r.stderr.decode().strip())


def _drop_stale_keepers(bridge: str, name: str) -> None:
    """Delete the keeper ports of networks that are gone from the bridge: one bridge serves
    one network, so another `bk-` port on it was left by an earlier record of the bridge
    (a daemon killed, its data root removed) and would keep the bridge forever."""
    for port in _ports(bridge):
        if port.startswith("bk-") and port != name:
            log.info("removing stale keeper %s from %s", port, bridge)
            _ip("link", "del", port)


def has_keeper(network_id: str) -> bool:
    return _exists(keeper_name(network_id))


def _ports(bridge: str) -> list[str]:
    try:
        return os.listdir(os.path.join(_SYS_NET, bridge, "brif"))
    except OSError:
        return []


def _throwaway_ips(net_config: dict[str, Any]) -> list[str]:
    """One address per subnet that is not the gateway (the network has no container now)."""
    out = []
    for s in net_config.get("subnets") or []:
        subnet = ipaddress.ip_network(s["subnet"], strict=False)
        gw = s.get("gateway")
        for host in subnet.hosts():
            if str(host) != gw:
                out.append(str(host))
                break
    return out


def drop(nv: Netavark, net_config: dict[str, Any]) -> None:
    """Remove the keeper of the network described by `net_config` (netavark's Network JSON),
    and with it, when no container is left on the bridge, the bridge and its chains."""
    network_id = net_config["id"]
    bridge = net_config.get("network_interface") or ""
    name = keeper_name(network_id)
    if not _exists(name):
        return
    _drop_stale_keepers(bridge, name)
    others = [p for p in _ports(bridge) if p != name]
    if others:
        # Containers still on it (live-restored ones at shutdown): netavark completes the
        # teardown when the last of them leaves.
        _ip("link", "del", name)
        return
    ips = _throwaway_ips(net_config)
    path, cid, opts = _throwaway(nv, net_config, ips)
    try:
        nv.setup(path, opts)
    except errdefs.DockerError as e:
        log.warning("dropping network %s: %s", network_id[:12], e)
        _ip("link", "del", name)
        nv.remove_netns(path)
        return
    _ip("link", "del", name)
    nv.teardown(cid, network_id)
    nv.remove_netns(path)


def _throwaway(nv: Netavark, net_config: dict[str, Any], ips: list[str]) -> tuple[str, str, dict[str, Any]]:
    """A throwaway namespace and netavark's options attaching it to the network with `ips`:
    its path, container ID and the options."""
    sandbox = stringid.generate_random_id()
    path = nv.create_netns(sandbox)
    cid = THROWAWAY_PREFIX + sandbox[:12]
    return path, cid, {
        "container_id": cid,
        "container_name": cid,
        "networks": {net_config["id"]: {"static_ips": ips, "interface_name": "eth0"}},
        "network_info": {net_config["id"]: dict(net_config, dns_enabled=False)},
    }


def kept(bridge: str, network_id: str) -> bool:
    """The bridge is up and held by its keeper (nothing to make)."""
    return _exists(bridge) and has_keeper(network_id)


def make(nv: Netavark, net_config: dict[str, Any], ips: list[str]) -> None:
    """Make the network's bridge and firewall chains now, as dockerd's bridge driver does
    at `network create` (and for its default bridge at start), and keep them: netavark
    sets a network up only for a container, so a throwaway namespace is attached with
    `ips` (addresses the caller reserved), a keeper parked on the bridge, and the
    throwaway torn down again. Raises the netavark error when the setup fails."""
    network_id = net_config["id"]
    bridge = net_config.get("network_interface") or ""
    if kept(bridge, network_id):
        return
    path, cid, opts = _throwaway(nv, net_config, ips)
    try:
        nv.setup(path, opts)
        ensure(bridge, network_id)
        nv.teardown(cid, network_id)
    finally:
        nv.remove_netns(path)
