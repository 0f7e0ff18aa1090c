"""Address management (moby v20.10.24 libnetwork/ipam/allocator.go, ipamutils/utils.go).

Pools: dockerd's local default pools (172.17-31.0.0/16, then 192.168.0.0/16 in /20s);
a pool is skipped when it overlaps one of Berth's networks or a route already on the
host (libnetwork/netutils CheckRouteOverlaps), so a second engine's bridge is avoided.
Addresses: the first free one in the range (dockerd's default, non-serial allocation),
never the network address, the gateway, auxiliary addresses or the broadcast address.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .. import errdefs

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def default_pools() -> list[ipaddress.IPv4Network]:
    """ipamutils.localScopeDefaultNetworks."""
    pools = [ipaddress.IPv4Network(f"172.{i}.0.0/16") for i in range(17, 32)]
    pools += list(ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20))
    return pools


def host_routes() -> list[ipaddress.IPv4Network]:
    """IPv4 destinations routed on the host (/proc/net/route), default route excluded."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f, None)  # the header; a namespace without routes has none
            for line in f:
                parts = line.split()
                if len(parts) < 8:
                    continue
                dest = int(parts[1], 16).to_bytes(4, "little")
                mask = int(parts[7], 16).to_bytes(4, "little")
                if mask == b"\0\0\0\0":
                    continue
                out.append(ipaddress.IPv4Network(f"{ipaddress.IPv4Address(dest)}/{ipaddress.IPv4Address(mask)}",
                                                 strict=False))
    except OSError:
        pass
    return out


def choose_pool(in_use: Iterable[Net], offset: int = 0) -> ipaddress.IPv4Network:
    """The first default pool overlapping nothing in use or routed, starting at `offset`
    (a daemon on another data root starts elsewhere, so two berthds starting at once do
    not both take 172.18.0.0/16 before either has made its bridge)."""
    used = list(in_use) + list(host_routes())
    pools = default_pools()
    offset %= len(pools)
    for pool in pools[offset:] + pools[:offset]:
        if not any(pool.version == u.version and pool.overlaps(u) for u in used):
            return pool
    raise errdefs.Forbidden("could not find an available, non-overlapping IPv4 address pool among the defaults "
                            "to assign to the network")


def parse_subnet(s: str) -> Net:
    try:
        return ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise errdefs.Untyped(f"Invalid subnet {s} : invalid CIDR address: {s}") from None


def parse_ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        return None


def first_free(subnet: Net, ip_range: Net | None, reserved: set[str]) -> str | None:
    """The first address of the range (or subnet) not reserved, skipping network and broadcast."""
    rng = ip_range or subnet
    last = subnet.broadcast_address if subnet.version == 4 else None
    # dockerd's allocator (getAddressRange) reserves only the subnet's own first address:
    # the first address of a sub-range is handed out (--ip-range 10.0.5.0/24 in 10.0.0.0/16
    # gives 10.0.5.0, to the gateway when none is given, else to the first container).
    start = rng.network_address
    end = rng.broadcast_address
    ip = start
    # Bounded walk: sets are small compared with the range in practice.
    while ip <= end:  # type: ignore[operator]  # start and end come from one network: one family
        if ip != last and ip != subnet.network_address and str(ip) not in reserved:
            return str(ip)
        ip += 1
    return None
