"""/etc files and IPAM helpers of berth.network (dockerd 20.10 outputs observed on the reference)."""
from __future__ import annotations

import ipaddress

from berth.network import etcfiles, ipam


def test_resolv_default_bridge_copies_host_without_loopback() -> None:
    host = "nameserver 127.0.0.53\nnameserver 10.255.255.53"
    assert etcfiles.build_resolv(host, None, None, None, embedded=False) == "\nnameserver 10.255.255.53"
    assert etcfiles.build_resolv("nameserver 10.255.255.53", None, None, None, False) == "nameserver 10.255.255.53"


def test_resolv_embedded_dns_on_user_networks() -> None:
    out = etcfiles.build_resolv("nameserver 10.255.255.53", None, None, None, embedded=True)
    assert out == "nameserver 127.0.0.11\noptions ndots:0\n"


def test_hosts_records_order() -> None:
    out = etcfiles.build_hosts(["172.17.0.2"], "fc09ade36e74", "", [("db", "10.0.0.9")])
    assert out == etcfiles.DEFAULT_HOSTS + "10.0.0.9\tdb\n172.17.0.2\tfc09ade36e74\n"


def test_first_free_skips_reserved_and_uses_range() -> None:
    subnet = ipaddress.ip_network("10.89.5.0/24")
    assert ipam.first_free(subnet, None, {"10.89.5.1"}) == "10.89.5.2"
    # dockerd hands out the range's first address (reference: the gateway of 10.89.5.128/25
    # is 10.89.5.128, and with --gateway given the first container gets 10.X.5.0 of a /24
    # range in a /16), never the subnet's own first one
    rng = ipaddress.ip_network("10.89.5.128/25")
    assert ipam.first_free(subnet, rng, {"10.89.5.1"}) == "10.89.5.128"
    assert ipam.first_free(subnet, rng, {"10.89.5.128"}) == "10.89.5.129"
    wide = ipaddress.ip_network("10.89.0.0/16")
    assert ipam.first_free(wide, ipaddress.ip_network("10.89.5.0/24"), set()) == "10.89.5.0"
    assert ipam.first_free(wide, ipaddress.ip_network("10.89.0.0/24"), set()) == "10.89.0.1"
