"""A bridge must hold its network's gateway (moby v20.10.24 daemon/daemon_unix.go
initBridgeDriver, libnetwork/drivers/bridge/setup_ipv4.go setupBridgeIPv4).

netavark gives a bridge its addresses only when it creates it: a bridge that is already
there is used as it is. A bridge can outlive the network record that made it (a daemon
SIGKILLed with a container on it, its data root then removed; a record made again after a
restart), and then a new record picks another subnet because the old one is still routed:
every container got a gateway nobody holds, silently.

dockerd does two things, and so does Berth:
- the default bridge adopts the address an existing kernel bridge holds (initBridgeDriver:
  ElectInterfaceAddresses, then PreferredPool and Gateway from it) unless `--bip` says
  otherwise;
- whatever the network, before it is used its bridge is made to hold the network's gateway,
  and an address of the same family that is not the network's is taken off
  (setupBridgeIPv4 deletes the old address and adds the configured one).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import subprocess
from collections.abc import Iterable

log = logging.getLogger("berth.network")

Iface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def exists(bridge: str) -> bool:
    return bool(bridge) and os.path.exists(os.path.join("/sys/class/net", bridge))


def addresses(bridge: str) -> list[Iface]:
    """The bridge's IPv4 and global IPv6 addresses, in the kernel's order ([] if it has none
    or does not exist)."""
    if not exists(bridge):
        return []
    r = subprocess.run(["ip", "-j", "addr", "show", "dev", bridge], capture_output=True)
    if r.returncode != 0:
        return []
    out: list[Iface] = []
    try:
        for link in json.loads(r.stdout or b"[]"):
            for a in link.get("addr_info") or []:
                if a.get("family") == "inet6" and a.get("scope") != "global":
                    continue  # link-local: every bridge has one, it is no gateway
                if a.get("family") in ("inet", "inet6"):
                    out.append(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"))
    except (ValueError, KeyError, TypeError):
        return []
    return out


def elect_ipv4(bridge: str) -> tuple[str, str] | None:
    """ElectInterfaceAddresses for the default bridge: (subnet, gateway) from the bridge's
    first IPv4 address, the gateway "" when its host part is not a unicast address."""
    for a in addresses(bridge):
        if a.version == 4:
            net = a.network
            host = int(a.ip) & int(net.hostmask)
            gw = str(a.ip) if host not in (0, int(net.hostmask)) or net.prefixlen >= 31 else ""
            return str(net), gw
    return None


def reconcile(bridge: str, gateways: Iterable[tuple[str, int]]) -> None:
    """Make an existing bridge hold each (gateway, prefix length) and no other address of a
    family the network uses (setupBridgeIPv4). A missing bridge is left to netavark, which
    makes it with the right addresses."""
    want = [ipaddress.ip_interface(f"{gw}/{plen}") for gw, plen in gateways if gw]
    if not want or not exists(bridge):
        return
    have = addresses(bridge)
    families = {w.version for w in want}
    for a in have:
        if a.version in families and a not in want:
            log.warning("bridge %s held %s, which is not its network's gateway: removed", bridge, a)
            _ip("addr", "del", str(a), "dev", bridge)
    for w in want:
        if w not in have:
            log.info("bridge %s: adding its network's gateway %s", bridge, w)
            r = _ip("addr", "add", str(w), "dev", bridge)
            if r.returncode != 0 and b"File exists" not in r.stderr:
                log.warning("bridge %s: adding %s: %s", bridge, w, r.stderr.decode().strip())


def _ip(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["ip", *args], capture_output=True)
