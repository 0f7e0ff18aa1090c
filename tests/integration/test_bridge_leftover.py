"""A bridge left on the host by a daemon that died never gives a container a dead gateway
(network/bridgeaddr.py), and a plain SIGTERM takes the default bridge off the host when no
container is left on it.

The issue's steps: run with -p, SIGKILL berthd and the container's conmon, remove the data
root, start berthd again on the same path (so the same bridge name), run with -p again.
Traffic goes only to loopback and to the test's containers.
"""
from __future__ import annotations

import glob
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from berthd_harness import Berthd, start_berthd, stop_berthd, unmount_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root")

HTTPD = "mkdir /www; echo hi > /www/index.html; exec httpd -f -p 80 -h /www"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fetch(port: int) -> bytes:
    last: Exception | None = None
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.read()
        except OSError as e:
            last = e
            time.sleep(0.1)
    raise AssertionError(f"no answer on 127.0.0.1:{port}: {last}")


def bridge_of(b: Berthd, net: str = "bridge") -> str:
    out = b.docker("network", "inspect", net).stdout
    return json.loads(out)[0]["Options"].get("com.docker.network.bridge.name") or ""


def addrs(ifname: str) -> list[str]:
    r = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", ifname], capture_output=True)
    if r.returncode != 0:
        return []
    return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(r.stdout or b"[]")
            for a in link.get("addr_info") or []]


def exists(ifname: str) -> bool:
    return os.path.exists(f"/sys/class/net/{ifname}")


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def drop_leftover_rules(subnet: str, bridge: str, port: int) -> None:
    """The killed daemon's netavark rules outlive it (nobody tears its network down, as
    nobody flushes a SIGKILLed dockerd's chains until it starts again): take off what names
    its subnet, its bridge or its published port, and the chains only those rules used."""
    import shlex

    from berth.network.netavark import host_lock

    def rules(table: str) -> list[list[str]]:
        out = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
        return [shlex.split(line) for line in out.splitlines() if line.startswith("-A ")]

    with host_lock():
        for table in ("nat", "filter"):
            chains: set[str] = set()
            for r in rules(table):
                target = r[r.index("-j") + 1] if "-j" in r else ""
                mine = (r[1] == "POSTROUTING" and subnet in r and target.startswith("NETAVARK-")) or (
                    r[1] == "NETAVARK-HOSTPORT-DNAT" and str(port) in r and target.startswith("NETAVARK-DN-")) or (
                    r[1].startswith("NETAVARK_ISOLATION") and bridge in r)
                if mine:
                    if target.startswith("NETAVARK-"):
                        chains.add(target)
                    subprocess.run(["iptables", "-w", "-t", table, "-D", *r[1:]], capture_output=True)
            for c in chains:
                subprocess.run(["iptables", "-w", "-t", table, "-F", c], capture_output=True)
                subprocess.run(["iptables", "-w", "-t", table, "-X", c], capture_output=True)


def gateway_answers(b: Berthd, name: str, gw: str) -> bool:
    return b.docker("exec", name, "ping", "-c", "1", "-W", "2", gw, check=False).returncode == 0


def test_bridge_left_by_a_killed_daemon_is_adopted(busybox_tar: str) -> None:
    tmp = tempfile.mkdtemp(prefix="berth-leftover-")
    b = start_berthd(tmp)
    orphans: list[int] = []
    orphan_ids: list[str] = []
    old_subnet, port1 = "", 0
    bridge = ""
    try:
        b.docker("load", "-i", busybox_tar)
        port1 = free_port()
        b.docker("run", "-d", "--name", "first", "-p", f"127.0.0.1:{port1}:80", "busybox", "sh", "-c", HTTPD)
        assert fetch(port1) == b"hi\n"
        bridge = bridge_of(b)
        old_subnet = json.loads(b.docker("network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][0]["Subnet"]
        first = json.loads(b.docker("inspect", "first").stdout)[0]
        old_gw = first["NetworkSettings"]["Gateway"]
        pid = first["State"]["Pid"]
        conmon = ppid(pid)
        # the daemon and the container's monitor die; the container (and so the bridge) lives
        os.kill(b.proc.pid, signal.SIGKILL)
        b.proc.wait()
        kill_pid(conmon)
        orphans.append(pid)
        orphan_ids.append(first["Id"])
        unmount_under(b.data_root)
        shutil.rmtree(b.data_root)
        assert exists(bridge) and addrs(bridge)

        b = start_berthd(tmp)
        b.docker("load", "-i", busybox_tar)
        assert bridge_of(b) == bridge
        port2 = free_port()
        b.docker("run", "-d", "--name", "second", "-p", f"127.0.0.1:{port2}:80", "busybox", "sh", "-c", HTTPD)
        ns = json.loads(b.docker("inspect", "second").stdout)[0]["NetworkSettings"]
        gw, plen = ns["Gateway"], ns["IPPrefixLen"]
        # dockerd's initBridgeDriver: the default network takes the address the bridge holds
        assert gw == old_gw
        assert f"{gw}/{plen}" in addrs(bridge)
        subnet = json.loads(b.docker("network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][0]["Subnet"]
        assert ipaddress.ip_interface(f"{gw}/{plen}").network == ipaddress.ip_network(subnet)
        assert gateway_answers(b, "second", gw)
        assert fetch(port2) == b"hi\n"
        b.docker("rm", "-f", "second")
    finally:
        for pid in orphans:
            kill_pid(pid)
        for cid in orphan_ids:  # no runtime delete will ever come for the orphan: its cgroups
            deadline = time.time() + 5
            for d in glob.glob(f"/sys/fs/cgroup/*/*/{cid}") + glob.glob(f"/sys/fs/cgroup/*/{cid}"):
                while time.time() < deadline:
                    try:
                        os.rmdir(d)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)
        if b.proc.poll() is None:
            b.docker("rm", "-f", "first", "second", check=False)
        stop_berthd(b)
        if old_subnet:
            drop_leftover_rules(old_subnet, bridge, port1)
    # the orphan gone and the daemon stopped with no container left: nothing of it stays,
    # not even the keeper port the killed daemon had parked on it
    deadline = time.time() + 5
    while bridge and exists(bridge) and time.time() < deadline:
        time.sleep(0.1)
    assert not bridge or not exists(bridge)


def test_bridge_holding_another_address_is_reconfigured(busybox_tar: str) -> None:
    """A bridge that holds an address its network does not have (a record made again after
    a restart, a user-defined bridge named with com.docker.network.bridge.name) gets the
    network's gateway instead, as dockerd's setupBridgeIPv4 does."""
    b = start_berthd()
    net, name = "lo-net", "br-h12test"
    try:
        b.docker("load", "-i", busybox_tar)
        subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", "10.89.251.1/24", "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        b.docker("network", "create", "--subnet", "10.89.252.0/24", "-o",
                 f"com.docker.network.bridge.name={name}", net)
        b.docker("run", "-d", "--name", "u1", "--network", net, "busybox", "sleep", "60")
        ns = json.loads(b.docker("inspect", "u1").stdout)[0]["NetworkSettings"]["Networks"][net]
        assert ns["Gateway"] == "10.89.252.1"
        assert addrs(name) == ["10.89.252.1/24"]
        assert gateway_answers(b, "u1", "10.89.252.1")
        b.docker("rm", "-f", "u1")
        b.docker("network", "rm", net)
    finally:
        b.docker("rm", "-f", "u1", check=False)
        b.docker("network", "rm", net, check=False)
        stop_berthd(b)
        if exists(name):
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def test_sigterm_takes_the_default_bridge_away(busybox_tar: str) -> None:
    """With no container left on it, a plain SIGTERM stop leaves no default bridge (Berth
    names a bridge after its data root, so a kept one would outlive that root); a running
    container (live restore) keeps it, and the next start uses it as it is."""
    b = start_berthd()
    try:
        b.docker("load", "-i", busybox_tar)
        b.docker("run", "--rm", "-p", "127.0.0.1::80", "busybox", "true")
        bridge = bridge_of(b)
        assert exists(bridge)
    finally:
        stop_berthd(b)
    assert not exists(bridge)
