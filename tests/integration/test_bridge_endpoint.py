"""An endpoint on a bridge that is already set up is made without netavark's firewall pass
(network/rtnl.py): the same veth, address, MAC and default route netavark makes, traffic
between containers and out through the network's masquerade, and nothing left when the
container goes; when the bridge's keeper is gone, the last container's teardown is still
netavark's complete one (bridge, chains and rules removed).

The outside world is a namespace of the test's own behind a veth (198.18.x.0/30, a
benchmarking range no route on the host uses): it answers a ping only if the container's
address was masqueraded to the host's, since it has no route back to the container subnet.
"""
from __future__ import annotations

import glob
import hashlib
import ipaddress
import json
import os
import random
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from berthd_harness import Berthd

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root"),
    pytest.mark.skipif(not any(os.access(p, os.X_OK) for p in ("/usr/lib/podman/netavark",
                                                               "/usr/libexec/podman/netavark")),
                       reason="needs netavark"),
]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {r.stderr}")
    return r


def inspect(b: Berthd, name: str) -> dict:
    return json.loads(b.docker("inspect", name).stdout)[0]


def endpoint_file(b: Berthd, cid: str) -> dict:
    (path,) = glob.glob(os.path.join(b.exec_root, "netavark", "endpoints", f"{cid}-*.json"))
    with open(path) as f:
        return json.load(f)


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


@pytest.fixture
def outside() -> Iterator[str]:
    """A namespace at 198.18.x.2 reached from the host through a veth at 198.18.x.1."""
    used = sh("ip", "-4", "route", "show", "table", "all").stdout
    for _ in range(50):
        net = ipaddress.IPv4Network(f"198.18.{random.randrange(1, 250)}.0/30")
        if str(net.network_address)[:-1] not in used:
            break
    tag = uuid.uuid4().hex[:6]
    ns, host_if = f"berth-out-{tag}", f"bo{tag}h"
    host_ip, peer_ip = str(net.network_address + 1), str(net.network_address + 2)
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "-n", ns, "addr", "add", f"{peer_ip}/30", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield peer_ip
    finally:
        sh("ip", "link", "del", host_if, check=False)
        sh("ip", "netns", "del", ns, check=False)


def test_endpoint_by_netlink(berthd: Berthd, outside: str) -> None:
    names = [f"be-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        for n in names:
            berthd.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
        a, b = (inspect(berthd, n) for n in names)
        bridge = json.loads(berthd.docker("network", "inspect", "bridge").stdout)[0]["Options"][
            "com.docker.network.bridge.name"]
        # the first start of a daemon's life on the network may be netavark's; the second is not
        ep = endpoint_file(berthd, b["Id"])
        veth = ep.get("host_veth")
        assert veth, ep
        assert os.path.realpath(f"/sys/class/net/{veth}/master").endswith("/" + bridge)
        with open(f"/sys/class/net/{veth}/operstate") as f:
            assert f.read().strip() == "up"
        net = b["NetworkSettings"]
        addr = berthd.docker("exec", names[1], "ip", "-o", "-4", "addr", "show", "eth0").stdout.decode()
        bcast = ipaddress.IPv4Network(f"{net['IPAddress']}/{net['IPPrefixLen']}", strict=False).broadcast_address
        assert f"inet {net['IPAddress']}/{net['IPPrefixLen']} brd {bcast} scope global eth0" in addr, addr
        mac = berthd.docker("exec", names[1], "cat", "/sys/class/net/eth0/address").stdout.decode().strip()
        assert mac == net["MacAddress"]
        route = berthd.docker("exec", names[1], "ip", "route").stdout.decode()
        assert f"default via {net['Gateway']} dev eth0  metric 100" in route, route
        # to the other container, to the gateway, and out (masqueraded: the outside has no route back)
        for target in (a["NetworkSettings"]["IPAddress"], net["Gateway"], outside):
            berthd.docker("exec", names[1], "ping", "-c", "1", "-W", "3", target)
        berthd.docker("rm", "-f", names[1])
        assert not link_exists(veth)
        assert not glob.glob(os.path.join(berthd.exec_root, "netavark", "endpoints", f"{b['Id']}-*.json"))
        assert link_exists(bridge)  # kept for the next container
    finally:
        berthd.docker("rm", "-f", *names, check=False)


def test_last_endpoint_without_keeper_is_a_complete_teardown(berthd: Berthd) -> None:
    """With the bridge's keeper gone (a network dropped while its containers run), the last
    container's teardown takes the bridge and the network's rules, as netavark always did;
    the next start makes them again."""
    net = json.loads(berthd.docker("network", "inspect", "bridge").stdout)[0]
    bridge = net["Options"]["com.docker.network.bridge.name"]
    subnet = net["IPAM"]["Config"][0]["Subnet"]
    names = [f"bt-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        for n in names:
            berthd.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
        assert endpoint_file(berthd, inspect(berthd, names[1])["Id"]).get("host_veth")
        keeper = "bk-" + net["Id"][:11]
        assert link_exists(keeper)
        sh("ip", "link", "del", keeper)
        berthd.docker("rm", "-f", names[0])
        assert link_exists(bridge)  # a container is still on it
        berthd.docker("rm", "-f", names[1])
        assert not link_exists(bridge)
        assert f"-s {subnet} " not in sh("iptables", "-w", "-t", "nat", "-S", "POSTROUTING").stdout
        berthd.docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "3", net["IPAM"]["Config"][0]["Gateway"])
        assert link_exists(bridge) and link_exists(keeper)
        assert f"-s {subnet} " in sh("iptables", "-w", "-t", "nat", "-S", "POSTROUTING").stdout
    finally:
        berthd.docker("rm", "-f", *names, check=False)


def test_rules_of_an_earlier_record_of_the_subnet_go(berthd: Berthd) -> None:
    """What a SIGKILLed daemon whose data and exec roots were removed leaves for its network
    (netavark's masquerade chain, and the DNAT of a published port into the old container's
    address, under a network name nobody knows) goes when a network takes the subnet again,
    as dockerd flushes its chains at start: the port is not forwarded to a dead address."""
    third = random.randrange(1, 250)
    subnet = f"10.{random.randrange(100, 250)}.{third}.0/24"
    old = uuid.uuid4().hex * 2
    h = hashlib.sha512(old.encode()).hexdigest().upper()[:13]
    masq, dn = f"NETAVARK-{h}", f"NETAVARK-DN-{h}"
    port = str(random.randrange(20000, 30000))
    base = subnet.rsplit(".", 1)[0]
    jump = ["NETAVARK-HOSTPORT-DNAT", "-p", "tcp", "-m", "tcp", "--dport", port, "-j", dn]
    sh("iptables", "-w", "-t", "nat", "-N", "NETAVARK-HOSTPORT-DNAT", check=False)
    sh("iptables", "-w", "-t", "nat", "-N", masq)
    sh("iptables", "-w", "-t", "nat", "-A", masq, "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE")
    sh("iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", subnet, "-j", masq)
    sh("iptables", "-w", "-t", "nat", "-N", dn)
    sh("iptables", "-w", "-t", "nat", "-A", dn, "-p", "tcp", "-m", "tcp", "--dport", port, "-j", "DNAT",
       "--to-destination", f"{base}.2:80")
    sh("iptables", "-w", "-t", "nat", "-A", *jump)
    net = f"stale-{uuid.uuid4().hex[:8]}"
    try:
        berthd.docker("network", "create", "--subnet", subnet, net)
        nat = sh("iptables", "-w", "-t", "nat", "-S").stdout
        assert masq not in nat and dn not in nat, nat
        assert f"-A POSTROUTING -s {subnet} -j NETAVARK-" in nat  # the new network's own
    finally:
        berthd.docker("network", "rm", net, check=False)
        sh("iptables", "-w", "-t", "nat", "-D", *jump, check=False)
        sh("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", subnet, "-j", masq, check=False)
        for c in (dn, masq):
            sh("iptables", "-w", "-t", "nat", "-F", c, check=False)
            sh("iptables", "-w", "-t", "nat", "-X", c, check=False)
