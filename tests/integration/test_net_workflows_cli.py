"""Everyday networking workflows as on dockerd 20.10, through the real docker CLI:
`--add-host name:host-gateway` (and `--host-gateway-ip`), `docker rename` seen by the
embedded DNS, `--ip-range` addresses, interface names after a reconnect, and the bridge
of a new network made at `network create`.

Expected values are the reference dockerd 20.10.24's for the same commands. Subnets are
10.89.x.0/24 (or /16 in 10.8x) networks no route on the host overlaps.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pathlib
import random
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
from berthd_harness import Berthd, start_berthd, stop_berthd

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root"),
    pytest.mark.skipif(not any(os.access(p, os.X_OK) for p in ("/usr/lib/podman/netavark",
                                                               "/usr/libexec/podman/netavark")),
                       reason="needs netavark"),
]


def uniq(prefix: str = "nw") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    nets = []
    for line in out.splitlines():
        words = line.split()
        dst = words[1] if words and words[0] in ("local", "broadcast", "unreachable") and len(words) > 1 else \
            (words[0] if words else "")
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.IPv4Network(dst, strict=False))
    return nets


def free_net(prefix: int = 24) -> ipaddress.IPv4Network:
    """A free 10.x.y.0/24 (or 10.x.0.0/16) no route on the host overlaps."""
    used = _routes()
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{random.randrange(100, 250)}.{random.randrange(0, 250)}.0/24"
                                    if prefix == 24 else f"10.{random.randrange(100, 250)}.0.0/16", strict=False)
        if not any(net.overlaps(u) for u in used):
            return net
    raise AssertionError("no free subnet")


def out(b: Berthd, *args: str) -> str:
    return b.docker(*args).stdout.decode()


@contextlib.contextmanager
def network(b: Berthd, *opts: str) -> Iterator[str]:
    name = uniq("net")
    b.docker("network", "create", *opts, name)
    try:
        yield name
    finally:
        ids = b.docker("ps", "-aq", "--filter", f"network={name}", check=False).stdout.decode().split()
        if ids:
            b.docker("rm", "-f", *ids, check=False)
        b.docker("network", "rm", name, check=False)


@pytest.fixture
def names(berthd: Berthd) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        berthd.docker("rm", "-f", *made, check=False)


def default_gateway(b: Berthd) -> str:
    subnet = json.loads(out(b, "network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Subnet"]
    return str(ipaddress.ip_network(subnet).network_address + 1)


# -- item 4: host-gateway -------------------------------------------------------------------------
def test_add_host_host_gateway_is_the_default_bridge_gateway(berthd: Berthd) -> None:
    gw = default_gateway(berthd)
    hosts = out(berthd, "run", "--rm", "--add-host", "hgw:host-gateway", "--add-host", "other:1.2.3.4",
                "busybox", "cat", "/etc/hosts").splitlines()
    # dockerd's order: the extra hosts, then the container's own record
    assert hosts[6:8] == [f"{gw}\thgw", "1.2.3.4\tother"], hosts
    with network(berthd) as net:
        hosts = out(berthd, "run", "--rm", "--network", net, "--add-host", "host.docker.internal:host-gateway",
                    "busybox", "cat", "/etc/hosts")
        assert f"{gw}\thost.docker.internal\n" in hosts
    for mode in ("none", "host"):
        hosts = out(berthd, "run", "--rm", "--network", mode, "--add-host", "hgw:host-gateway", "busybox",
                    "cat", "/etc/hosts")
        assert hosts.endswith(f"{gw}\thgw\n"), (mode, hosts)
    # the setting is kept as given
    cid = out(berthd, "create", "--add-host", "hgw:host-gateway", "busybox").strip()
    try:
        assert json.loads(out(berthd, "inspect", cid))[0]["HostConfig"]["ExtraHosts"] == ["hgw:host-gateway"]
    finally:
        berthd.docker("rm", cid)


def test_host_gateway_ip_flag_and_daemon_json(busybox_tar: str, tmp_path: pathlib.Path) -> None:
    b = start_berthd(extra=["--host-gateway-ip", "10.123.45.6"])
    try:
        b.docker("load", "-i", busybox_tar)
        hosts = out(b, "run", "--rm", "--network", "none", "--add-host", "hgw:host-gateway", "busybox",
                    "cat", "/etc/hosts")
        assert hosts.endswith("10.123.45.6\thgw\n")
    finally:
        stop_berthd(b)
    # daemon.json's "host-gateway-ip"; an invalid address stops the daemon as dockerd's does
    tmp = str(tmp_path)
    with open(os.path.join(tmp, "daemon.json"), "w") as f:
        json.dump({"host-gateway-ip": "bogus"}, f)
    with pytest.raises(RuntimeError, match="invalid IP address: bogus"):
        start_berthd(tmp)


# -- item 5: rename and the embedded DNS ----------------------------------------------------------
def lookup(b: Berthd, peer: str, name: str) -> str:
    r = b.docker("exec", peer, "nslookup", name, check=False)
    lines = r.stdout.decode().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Name:") and i + 1 < len(lines):
            return lines[i + 1].split()[-1]
    return ""


def test_rename_running_container_updates_dns(berthd: Berthd) -> None:
    with network(berthd) as net:
        old, new, peer = uniq("old"), uniq("new"), uniq("peer")
        berthd.docker("run", "-d", "--name", old, "--network", net, "--network-alias", "al" + old[-6:],
                      "busybox", "sleep", "300")
        berthd.docker("run", "-d", "--name", peer, "--network", net, "busybox", "sleep", "300")
        ip = json.loads(out(berthd, "inspect", old))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert lookup(berthd, peer, old) == ip
        berthd.docker("rename", old, new)
        assert lookup(berthd, peer, new) == ip
        assert lookup(berthd, peer, old) == ""
        assert lookup(berthd, peer, "al" + old[-6:]) == ip  # aliases stay
        # the teardown still finds its entry: a restart leaves one name, the new one
        berthd.docker("restart", "-t", "1", new)
        ip = json.loads(out(berthd, "inspect", new))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert lookup(berthd, peer, new) == ip and lookup(berthd, peer, old) == ""
        berthd.docker("rm", "-f", new)
        assert lookup(berthd, peer, new) == ""


# -- item 14: --ip-range -------------------------------------------------------------------------
def addr(b: Berthd, net: str) -> tuple[str, str]:
    text = out(b, "run", "--rm", "--network", net, "busybox", "sh", "-c",
               "ip -4 -o addr show eth0; ip route show default")
    words = text.split()
    return words[words.index("inet") + 1].split("/")[0], words[words.index("via") + 1]


def test_ip_range_addresses(berthd: Berthd) -> None:
    wide = free_net(16)
    o = wide.network_address
    # no --gateway: the IPAM gives the gateway the range's first address, the container the next
    with network(berthd, "--subnet", str(wide), "--ip-range", f"{o + 5 * 256}/24") as net:
        assert addr(berthd, net) == (str(o + 5 * 256 + 1), str(o + 5 * 256))
        assert "Gateway" not in json.loads(out(berthd, "network", "inspect", net))[0]["IPAM"]["Config"][0]
    # with --gateway: the first container gets the range's first address (10.X.5.0)
    with network(berthd, "--subnet", str(wide), "--ip-range", f"{o + 5 * 256}/24", "--gateway", str(o + 1)) as net:
        assert addr(berthd, net) == (str(o + 5 * 256), str(o + 1))
    # a range at the start of the subnet: its first address is the subnet's, never handed out
    with network(berthd, "--subnet", str(wide), "--ip-range", f"{o}/24") as net:
        assert addr(berthd, net) == (str(o + 2), str(o + 1))


# -- item 15: interface names after a reconnect ---------------------------------------------------
def interfaces(b: Berthd, name: str) -> list[str]:
    return sorted(out(b, "exec", name, "ls", "/sys/class/net").split())


def test_reconnect_gives_the_next_interface(berthd: Berthd, names: list[str]) -> None:
    with network(berthd) as a, network(berthd) as b:
        names.append(uniq())
        c = names[-1]
        berthd.docker("run", "-d", "--name", c, "--network", a, "busybox", "sleep", "300")
        assert interfaces(berthd, c) == ["eth0", "lo"]
        berthd.docker("network", "disconnect", a, c)
        berthd.docker("network", "connect", a, c)
        assert interfaces(berthd, c) == ["eth1", "lo"]
        berthd.docker("network", "connect", b, c)
        assert interfaces(berthd, c) == ["eth1", "eth2", "lo"]
        berthd.docker("network", "disconnect", a, c)
        berthd.docker("network", "connect", a, c)
        assert interfaces(berthd, c) == ["eth2", "eth3", "lo"]
        # a new sandbox counts from eth0 again
        berthd.docker("restart", "-t", "1", c)
        assert interfaces(berthd, c) == ["eth0", "eth1", "lo"]
        berthd.docker("rm", "-f", c)
    # the default bridge too (the case)
    names.append(uniq())
    c = names[-1]
    berthd.docker("run", "-d", "--name", c, "busybox", "sleep", "300")
    berthd.docker("network", "disconnect", "bridge", c)
    berthd.docker("network", "connect", "bridge", c)
    assert interfaces(berthd, c) == ["eth1", "lo"]


# -- item 13: the bridge exists from `network create` on -----------------------------------------
def eventually(pred: Callable[[], bool], timeout: float = 20) -> bool:
    import time

    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def test_network_create_makes_the_bridge(berthd: Berthd) -> None:
    name = "xb" + uuid.uuid4().hex[:8]
    subnet = free_net()
    with network(berthd, "--subnet", str(subnet), "--opt", f"com.docker.network.bridge.name={name}") as net:
        assert link_exists(name)  # before any container joins, as dockerd's
        addrs = subprocess.run(["ip", "-4", "-o", "addr", "show", name], capture_output=True, text=True).stdout
        assert f"{subnet.network_address + 1}/24" in addrs
        # the address the set-up used is free again: the first container gets .2
        text = out(berthd, "run", "--rm", "--network", net, "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
        assert f"{subnet.network_address + 2}/24" in text
        assert not [p for p in os.listdir(os.path.join(berthd.exec_root, "netavark", "endpoints"))
                    if "keeper" in p]
    assert not link_exists(name)
    # the default bridge is there from the daemon's start (made beside its first requests)
    default = json.loads(out(berthd, "network", "inspect", "bridge"))[0]["Options"]["com.docker.network.bridge.name"]
    assert eventually(lambda: link_exists(default))


# -- item 9: the host set-up at daemon start, in a network namespace of the test's own ------------
@contextlib.contextmanager
def netns() -> Iterator[str]:
    name = "berth-t-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def in_netns(ns: str) -> list[str]:
    """A wrapper entering only the namespace's network (`ip netns exec` would remount /sys,
    hiding the cgroup mount the runtime needs); /sys/class/net still shows the host's."""
    return ["nsenter", f"--net=/run/netns/{ns}"]


def in_ns(ns: str, *cmd: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, check=True).stdout


def test_start_enables_ip_forward_and_drops_forward(busybox_tar: str) -> None:
    with netns() as ns:
        in_ns(ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
        assert "-P FORWARD ACCEPT" in in_ns(ns, "iptables", "-S", "FORWARD")
        b = start_berthd(prefix=in_netns(ns))
        try:
            assert in_ns(ns, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
            assert "-P FORWARD DROP" in in_ns(ns, "iptables", "-S", "FORWARD")
            b.docker("load", "-i", busybox_tar)
            r = b.docker("run", "--rm", "busybox", "true")
            assert b"IPv4 forwarding is disabled" not in r.stderr
        finally:
            stop_berthd(b)
    # a host that forwards already keeps its FORWARD policy
    with netns() as ns:
        in_ns(ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        b = start_berthd(prefix=in_netns(ns))
        try:
            assert "-P FORWARD ACCEPT" in in_ns(ns, "iptables", "-S", "FORWARD")
        finally:
            stop_berthd(b)


def test_ip_forward_false_leaves_forwarding_off(busybox_tar: str) -> None:
    with netns() as ns:
        in_ns(ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
        b = start_berthd(prefix=in_netns(ns), extra=["--ip-forward=false"])
        try:
            b.docker("load", "-i", busybox_tar)
            r = b.docker("run", "--rm", "busybox", "true")  # netavark's setup turns it on; Berth puts it back
            assert b"IPv4 forwarding is disabled. Networking will not work." in r.stderr
            assert in_ns(ns, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "0"
            assert "-P FORWARD ACCEPT" in in_ns(ns, "iptables", "-S", "FORWARD")
        finally:
            stop_berthd(b)


def test_unserved_host_setup_values_are_refused(tmp_path: pathlib.Path) -> None:
    for flag in ("--iptables=false", "--ip-masq=false", "--icc=false", "--userland-proxy=false"):
        d = tmp_path / flag.strip("-").replace("=", "-")
        d.mkdir()
        with pytest.raises(RuntimeError, match=f"{flag} is not supported"):
            start_berthd(str(d), extra=[flag])
    d = tmp_path / "json"
    d.mkdir()
    (d / "daemon.json").write_text('{"icc": false}')
    with pytest.raises(RuntimeError, match="--icc=false is not supported"):
        start_berthd(str(d))


def test_ipv6_gateway_is_the_first_address(berthd: Berthd) -> None:
    """An IPv6 subnet's gateway is allocated as an IPv4 one is (::1, or the range's first
    address); containers start at the next one, with a default route through it."""
    if not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("no IPv6 on this host")
    tag = f"{int(uuid.uuid4().hex[:4], 16) | 0x1000:x}"  # no leading zero: `ip` prints the short form
    for opts, want_ip, want_gw in ((["--subnet", f"fd11:{tag}::/64"], f"fd11:{tag}::2", f"fd11:{tag}::1"),
                                   (["--subnet", f"fd12:{tag}::/64", "--ip-range", f"fd12:{tag}::100/120"],
                                    f"fd12:{tag}::101", f"fd12:{tag}::100")):
        with network(berthd, "--ipv6", *opts) as net:
            text = out(berthd, "run", "--rm", "--network", net, "busybox", "sh", "-c",
                       "ip -6 -o addr show eth0 scope global; ip -6 route show default")
            assert f"inet6 {want_ip}/64" in text and f"default via {want_gw} " in text, text


# -- item 9's twins on user networks: enable_icc and enable_ip_masquerade --------------------------
def test_network_without_icc(berthd: Berthd, names: list[str]) -> None:
    """`-o com.docker.network.bridge.enable_icc=false`: containers of the network do not
    reach each other (dockerd's DROP between two ports of the bridge); the rule goes with
    the network."""
    name = "xi" + uuid.uuid4().hex[:8]
    with network(berthd, "-o", "com.docker.network.bridge.enable_icc=false",
                 "-o", f"com.docker.network.bridge.name={name}") as net:
        names.append(uniq())
        berthd.docker("run", "-d", "--name", names[-1], "--network", net, "busybox", "sleep", "300")
        ip = json.loads(out(berthd, "inspect", names[-1]))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        r = berthd.docker("run", "--rm", "--network", net, "busybox", "ping", "-c", "1", "-W", "1", ip, check=False)
        assert r.returncode != 0
        assert any(f"berth icc {name}" in ln for ln in iptables_lines())
    assert not any(f"berth icc {name}" in ln for ln in iptables_lines())
    with network(berthd) as net:  # the default: they do
        names.append(uniq())
        berthd.docker("run", "-d", "--name", names[-1], "--network", net, "busybox", "sleep", "300")
        berthd.docker("run", "--rm", "--network", net, "busybox", "ping", "-c", "1", "-W", "2", names[-1])
    r = berthd.docker("network", "create", "-o", "com.docker.network.bridge.enable_ip_masquerade=false", uniq(),
                      check=False)
    assert r.returncode != 0 and b"enable_ip_masquerade=false is not supported" in r.stderr


def iptables_lines() -> list[str]:
    return subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout.splitlines()


def test_bridges_are_made_again_at_start(busybox_tar: str) -> None:
    """A daemon stop takes unused bridges off the host; the next start makes every bridge
    network's bridge again (dockerd's restored networks), its icc rule with it."""
    b = start_berthd()
    name = "xr" + uuid.uuid4().hex[:8]
    try:
        b.docker("network", "create", "-o", f"com.docker.network.bridge.name={name}",
                 "-o", "com.docker.network.bridge.enable_icc=false", "n1")
        assert link_exists(name)
        stop_berthd(b, cleanup=False)
        assert not link_exists(name)
        assert not any(f"berth icc {name}" in ln for ln in iptables_lines())
        b = start_berthd(tmp=b.tmp)
        assert eventually(lambda: link_exists(name))
        assert eventually(lambda: any(f"berth icc {name}" in ln for ln in iptables_lines()))
        b.docker("network", "rm", "n1")
        assert not link_exists(name)
    finally:
        stop_berthd(b)


def test_network_host_binding_ipv4(berthd: Berthd, names: list[str]) -> None:
    """`-o com.docker.network.bridge.host_binding_ipv4=127.0.0.1`: a published port with
    no host address binds there (dockerd's defHostIP); an explicit one is kept."""
    import socket

    ports = []
    for p in range(15350, 15400):
        s = socket.socket()
        try:
            s.bind(("0.0.0.0", p))
            ports.append(p)
        except OSError:
            pass
        finally:
            s.close()
        if len(ports) == 2:
            break
    with network(berthd, "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1") as net:
        names.append(uniq())
        berthd.docker("run", "-d", "--name", names[-1], "--network", net, "-p", f"{ports[0]}:80",
                      "-p", f"0.0.0.0:{ports[1]}:81", "busybox", "sleep", "300")
        shown = json.loads(out(berthd, "inspect", names[-1]))[0]["NetworkSettings"]["Ports"]
        assert shown["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(ports[0])}]
        assert shown["81/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(ports[1])}]
        berthd.docker("rm", "-f", names[-1])
