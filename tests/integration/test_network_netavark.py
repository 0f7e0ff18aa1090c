"""Netavark plumbing without the runtime: namespaces Berth creates, user networks with DNS,
published ports from 127.0.0.1, port conflicts, and that release leaves nothing behind.

Needs root, netavark and aardvark-dns. Traffic goes only to loopback and to addresses in
namespaces these tests create. A fake daemon stands in for berth.daemon.daemon.Daemon.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from typing import Any

import pytest

from berth import errdefs
from berth.config import DaemonConfig
from berth.container.container import Container, NetworkEndpoint
from berth.daemon import network as dn
from berth.daemon import network_ops as napi
from berth.network.netavark import _CANDIDATES, _find
from berth.network.types import IPAM, IPAMConfig, NetworkCreateRequest
from berth.pkg.stringid import generate_random_id
from berth.types.container import Config, HostConfig, PortBinding

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(_find(_CANDIDATES, "netavark") is None, reason="needs netavark"),
]


class _Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict[str, str]]] = []

    def log(self, action: str, typ: str, actor: str, attrs: Any) -> None:
        self.seen.append((action, typ, actor, dict(attrs or {})))


class _Names:
    def children(self, parent: str) -> dict[str, str]:
        return {}


class FakeDaemon:
    def __init__(self, tmp: str) -> None:
        self.config = DaemonConfig(data_root=os.path.join(tmp, "root"), exec_root=os.path.join(tmp, "exec"))
        os.makedirs(self.config.exec_root, exist_ok=True)
        self.events = _Events()
        self.containers: dict[str, Container] = {}
        self.names = _Names()
        self._berth_network: Any = None  # the Daemon's network controller, made on first use

    async def run_blocking(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def get_container(self, term: str) -> Container:
        for c in self.containers.values():
            if c.ID.startswith(term) or c.Name == "/" + term:
                return c
        raise errdefs.NotFound(f"No such container: {term}")


def make_ctr(d: FakeDaemon, tmp: str, name: str, mode: str = "default", ports: dict[str, Any] | None = None,
             aliases: list[str] | None = None) -> Container:
    cid = generate_random_id()
    root = os.path.join(tmp, "containers", cid)
    os.makedirs(root)
    hc = HostConfig(NetworkMode=mode, PortBindings={k: [PortBinding(**b) for b in v] for k, v in (ports or {}).items()}
                    or None)
    ctr = Container(ID=cid, Name="/" + name, Config=Config(Hostname=cid[:12])).attach(root, hc)
    net = "bridge" if mode == "default" else mode
    ctr.NetworkSettings.Networks = {net: NetworkEndpoint(Aliases=aliases)} if mode != "host" else {
        "host": NetworkEndpoint()}
    ctr.State.Running = True
    d.containers[cid] = ctr
    return ctr


def run(coro: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coro)


def start_net(d: Any, ctr: Any) -> Any:
    """What a start does: initialize_networking, then the netavark setup it may leave
    pending (finish_networking, run beside the runtime's create in a real start)."""
    async def both() -> Any:
        path = await dn.initialize_networking(d, ctr)
        await dn.finish_networking(d, ctr)
        return path
    return run(both())


def in_ns(path: str, code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["nsenter", f"--net={path}", sys.executable, "-c", code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(); print("ready", flush=True)
for _ in range(%d):
    c, a = s.accept(); c.sendall(b"hello from %s"); c.close()
"""


def dns_query(ns: str, name: str) -> str:
    """An A query to 127.0.0.11 from inside the namespace; returns the first address."""
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    code = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto({q!r}, ("127.0.0.11", 53)); r = s.recv(512)
an = int.from_bytes(r[6:8], "big")
print(".".join(str(b) for b in r[-4:]) if an else "NXDOMAIN")
"""
    p = in_ns(ns, code)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err.decode()
    return out.decode().strip()


@pytest.fixture
def env() -> Any:
    tmp = tempfile.mkdtemp(prefix="bt-net-test-")
    d = FakeDaemon(tmp)
    yield d, tmp
    for c in list(d.containers.values()):
        run(dn.release_network(d, c))
    ctl = dn.controller(d)
    for n in ctl.store.list():
        if n.user_defined:
            ctl.store.remove(n)
            dn.drop_bridge(d, n)
    dn.shutdown_networking(d)  # what a daemon stop does: bridges and chains leave the host
    shutil.rmtree(tmp, ignore_errors=True)


def _chains() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


def test_user_network_dns_and_cleanup(env: Any) -> None:
    d, tmp = env
    nid, _ = napi.create_network(d, NetworkCreateRequest(
        Name="nhtest", IPAM=IPAM(Config=[IPAMConfig(Subnet="10.231.7.0/24")]), Labels={"t": "1"}))
    a = make_ctr(d, tmp, "web", mode="nhtest", aliases=["www"])
    b = make_ctr(d, tmp, "client", mode="nhtest")
    pa = start_net(d, a)
    pb = start_net(d, b)
    ea, eb = a.NetworkSettings.Networks["nhtest"], b.NetworkSettings.Networks["nhtest"]
    assert (ea.IPAddress, ea.Gateway, ea.IPPrefixLen) == ("10.231.7.2", "10.231.7.1", 24)
    assert eb.IPAddress == "10.231.7.3" and ea.NetworkID == nid and len(ea.EndpointID) == 64
    assert ea.MacAddress == "02:42:0a:e7:07:02"
    assert ea.Aliases == ["www", a.ID[:12]]
    assert pa == a.NetworkSettings.SandboxKey == os.path.join(d.config.exec_root, "netns", a.NetworkSettings.SandboxID[:12])
    # DNS by name, alias and short ID through 127.0.0.11, as dockerd's embedded DNS answers.
    assert dns_query(pb, "web") == "10.231.7.2"
    assert dns_query(pb, "www") == "10.231.7.2"
    assert dns_query(pb, a.ID[:12]) == "10.231.7.2"
    # Container to container over the bridge.
    srv = in_ns(pa, SERVER % (1, "web"))
    assert srv.stdout.readline().strip() == b"ready"
    # (by address: nsenter keeps the host's /etc/resolv.conf, so getaddrinfo would not use 127.0.0.11)
    cli = in_ns(pb, f"import socket; print(socket.create_connection(('{ea.IPAddress}', 80), timeout=3).recv(100).decode())")
    try:
        out, err = cli.communicate(timeout=10)
        srv.wait(timeout=5)
    finally:
        srv.kill()
    assert out.decode().strip() == "hello from web", err
    assert "nameserver 127.0.0.11" in dn.build_resolv_conf(d, b)
    assert dn.build_hosts(d, a).endswith(f"10.231.7.2\t{a.ID[:12]}\n")
    inspected = napi.inspect_network(d, "nhtest")
    assert set(inspected.Containers) == {a.ID, b.ID}
    assert inspected.Containers[a.ID].IPv4Address == "10.231.7.2/24"
    # Removal refused while in use.
    with pytest.raises(errdefs.Forbidden, match="has active endpoints"):
        napi.remove_network(d, "nhtest")
    bridge = dn.controller(d).store.find("nhtest").Interface
    for c in (a, b):
        run(dn.release_network(d, c))
        c.State.Running = False
    assert os.listdir(os.path.join(d.config.exec_root, "netns")) == []
    assert os.listdir(os.path.join(d.config.exec_root, "netavark", "endpoints")) == []
    assert ea.IPAddress == "" and ea.EndpointID == "" and ea.NetworkID == nid
    assert dn.controller(d).store.find("nhtest").Allocated == {}
    # As dockerd's, the bridge and its rules stay while the network exists (network/keeper.py)...
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
    napi.remove_network(d, "nhtest")
    # ...and leave with it.
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0
    assert "10.231.7.0/24" not in _chains()
    actions = [(e[0], e[3].get("name")) for e in d.events.seen]
    assert ("create", "nhtest") in actions and ("connect", "nhtest") in actions
    assert ("disconnect", "nhtest") in actions and ("destroy", "nhtest") in actions


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_published_port_from_loopback_and_conflicts(env: Any) -> None:
    d, tmp = env
    port = _free_port()
    a = make_ctr(d, tmp, "pub", ports={"80/tcp": [{"HostIp": "", "HostPort": str(port)}]})
    pa = start_net(d, a)
    ep = a.NetworkSettings.Networks["bridge"]
    assert ep.IPAddress and ep.Gateway and not ep.Aliases
    shown = a.NetworkSettings.Ports["80/tcp"]
    assert shown[0] == {"HostIp": "0.0.0.0", "HostPort": str(port)}
    srv = in_ns(pa, SERVER % (1, "pub"))
    assert srv.stdout.readline().strip() == b"ready"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            assert s.recv(100) == b"hello from pub"
        srv.wait(timeout=5)
    finally:
        srv.kill()
    # The same host port for a second container: dockerd's message, nothing left behind.
    b = make_ctr(d, tmp, "clash", ports={"80/tcp": [{"HostIp": "", "HostPort": str(port)}]})
    with pytest.raises(errdefs.DockerError) as ei:
        start_net(d, b)
    assert str(ei.value).startswith("driver failed programming external connectivity on endpoint clash (")
    assert str(ei.value).endswith(f"): Bind for 0.0.0.0:{port} failed: port is already allocated")
    assert not os.path.exists(b.NetworkSettings.SandboxKey)
    # A host process holding the port.
    busy = socket.socket()
    busy.bind(("0.0.0.0", _free_port()))
    busy.listen()
    c = make_ctr(d, tmp, "busy", ports={"81/tcp": [{"HostIp": "", "HostPort": str(busy.getsockname()[1])}]})
    with pytest.raises(errdefs.DockerError, match="Error starting userland proxy: listen tcp4 0.0.0.0:"
                       f"{busy.getsockname()[1]}: bind: address already in use"):
        start_net(d, c)
    busy.close()
    run(dn.release_network(d, a))
    assert f"dpt:{port}" not in subprocess.run(["iptables", "-t", "nat", "-L", "-n"], capture_output=True,
                                                 text=True).stdout
    assert a.NetworkSettings.Ports == {}


def test_none_and_host_modes(env: Any) -> None:
    d, tmp = env
    a = make_ctr(d, tmp, "lonely", mode="none")
    pa = start_net(d, a)
    out = subprocess.run(["nsenter", f"--net={pa}", "ip", "-o", "link"], capture_output=True, text=True).stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    assert "state UNKNOWN" in out or "UP" in out
    ep = a.NetworkSettings.Networks["none"]
    assert ep.NetworkID == dn.controller(d).store.find("none").Id and ep.EndpointID and not ep.IPAddress
    h = make_ctr(d, tmp, "hosty", mode="host")
    assert start_net(d, h) is None
    assert h.NetworkSettings.SandboxKey.endswith("/netns/default")
    run(dn.release_network(d, a))
    assert not os.path.exists(pa)
