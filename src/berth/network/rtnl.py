"""A container's veth on a bridge that is already set up, made over rtnetlink in-process.

netavark's setup of one container on a bridge network is three things: the veth pair (the
host end on the bridge, the other end `eth0` in the container's namespace with its address
and default route), the network's firewall chains and rules, and the port forwards. On a
network whose bridge and chains Berth keeps (network/keeper.py) the second is a no-op that
still costs netavark 1.4 about twenty iptables processes (each rule is checked with
`iptables -C` before it would be appended): 30 ms of CPU per start here, where the veth
itself is a few netlink messages. Setting the veth up is what dockerd's bridge driver does
per endpoint too (libnetwork drivers/bridge CreateEndpoint/Join: veth, address, routes; the
network's iptables rules were made once, at network creation).

This module makes exactly what netavark's bridge driver makes for an IPv4 endpoint
(netavark v1.4.0 src/network/bridge.rs create_veth_pair, core_utils.rs add_default_routes,
netlink.rs): the pair with the container end named and given its MAC address, the host end
on the bridge and up; in the namespace IPv6 autoconf off, each address with its broadcast,
the link up, and a default route through the gateway with metric 100 (not for `internal`
networks). It is taken down by deleting the host end, which takes the pair.

Namespaces belong to threads on Linux: the namespace side is done from a short-lived thread
that joins the container's namespace (setns) and ends, as network/netns.py does.
"""
from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable

from ..pkg import stringid

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)

CLONE_NEWNET = 0x40000000

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_LOCAL, IFA_BROADCAST = 2, 4
RTA_DST, RTA_GATEWAY, RTA_PRIORITY = 1, 5, 6
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1
IFF_UP = 0x1
DEFAULT_METRIC = 100  # netavark's constants::DEFAULT_METRIC

_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NLHDR = struct.Struct("=IHHII")


class NetlinkError(OSError):
    pass


def _attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return struct.pack("=HH", n, kind) + data + b"\0" * (-n % 4)


def _str(s: str) -> bytes:
    return s.encode() + b"\0"


class _Socket:
    """A NETLINK_ROUTE socket in the namespace of the thread that made it; every request
    is acknowledged, an error raised as NetlinkError with the kernel's errno."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> None:
        self.seq += 1
        self.sock.send(_NLHDR.pack(_NLHDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK | flags,
                                   self.seq, 0) + body)
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + _NLHDR.size <= len(data):
                length, kind, _, seq, _ = _NLHDR.unpack_from(data, off)
                if kind == NLMSG_ERROR and seq == self.seq:
                    (code,) = struct.unpack_from("=i", data, off + _NLHDR.size)
                    if code:
                        raise NetlinkError(-code, f"{what}: {os.strerror(-code)}")
                    return
                off += (length + 3) & ~3 if length else len(data)


def host_veth_name() -> str:
    """A new host-side name as dockerd's (`veth` and 7 hex digits)."""
    return "veth" + stringid.generate_random_id()[:7]


def _ifindex(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise NetlinkError(errno.ENODEV, f"link {name} not found") from None


def add_veth(netns: str, bridge: str, host_name: str, ifname: str, mac: str, mtu: int,
             addresses: list[ipaddress.IPv4Interface], gateway: str | None) -> None:
    """The veth pair `host_name` (on `bridge`, up) / `ifname` (in the namespace at `netns`,
    MAC `mac`), the addresses on `ifname` and, with a `gateway`, the default route. On an
    error nothing is left: the pair is deleted."""
    master = _ifindex(bridge)
    peer = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _str(ifname))
    if mac:
        peer += _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
    if mtu:
        peer += _attr(IFLA_MTU, struct.pack("=I", mtu))
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    host = _Socket()
    try:
        peer += _attr(IFLA_NET_NS_FD, struct.pack("=I", fd))
        linkinfo = _attr(IFLA_INFO_KIND, _str("veth")) + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer))
        body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + _attr(IFLA_IFNAME, _str(host_name))
                + _attr(IFLA_MASTER, struct.pack("=I", master)) + _attr(IFLA_LINKINFO, linkinfo))
        if mtu:
            body += _attr(IFLA_MTU, struct.pack("=I", mtu))
        try:
            host.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, "create veth pair")
        except NetlinkError as e:
            if e.errno == errno.EEXIST:
                raise NetlinkError(e.errno, f"create veth pair: interface {ifname} already exists on container "
                                            "namespace") from None
            raise
        try:
            _in_netns(fd, lambda: _configure_inside(ifname, addresses, gateway))
        except BaseException:
            _delete(host, host_name)
            raise
    finally:
        host.close()
        os.close(fd)


def delete_veth(host_name: str) -> None:
    """Delete a pair by its host end (gone already: nothing to do)."""
    host = _Socket()
    try:
        _delete(host, host_name)
    finally:
        host.close()


def _delete(host: _Socket, host_name: str) -> None:
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _str(host_name))
    try:
        host.request(RTM_DELLINK, 0, body, f"delete {host_name}")
    except NetlinkError as e:
        if e.errno != errno.ENODEV:
            raise


def _configure_inside(ifname: str, addresses: list[ipaddress.IPv4Interface], gateway: str | None) -> None:
    """In the container's namespace (the calling thread's): what netavark does there."""
    try:  # disable_ipv6_autoconf; a host without IPv6 has no such file
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/autoconf", "w") as f:
            f.write("0")
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.EROFS:
            raise
    index = _ifindex(ifname)
    ns = _Socket()
    try:
        for a in addresses:
            body = (_IFADDR.pack(socket.AF_INET, a.network.prefixlen, 0, 0, index)
                    + _attr(IFA_BROADCAST, a.network.broadcast_address.packed) + _attr(IFA_LOCAL, a.ip.packed))
            ns.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, "add ip addr to container veth")
        ns.request(RTM_NEWLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP),
                   "set container veth up")
        if gateway:
            body = (_RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE,
                                RTN_UNICAST, 0)
                    + _attr(RTA_DST, bytes(4)) + _attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
                    + _attr(RTA_PRIORITY, struct.pack("=I", DEFAULT_METRIC)))
            ns.request(RTM_NEWROUTE, NLM_F_CREATE, body, "add default route")
    finally:
        ns.close()


def _in_netns(fd: int, fn: Callable[[], None]) -> None:
    """Run `fn` in a thread that joined the namespace open at `fd`; its error is raised here."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns: {os.strerror(err)}")
            fn()
        except BaseException as e:  # reported to the caller; this thread ends either way
            errors.append(e)

    t = threading.Thread(target=run, name="netns-veth")
    t.start()
    t.join()
    if errors:
        raise errors[0]
