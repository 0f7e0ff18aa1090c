"""Network objects and their address allocations, persisted one file per network under
`<data-root>/network/<id>.json` (moby v20.10.24 libnetwork/controller.go NewNetwork,
network.go, daemon/network.go FindNetwork; bridge driver defaults from
daemon/daemon_unix.go initBridgeDriver).

Berth owns these objects; netavark only sees them when a container is attached
(netavark.py). The predefined `bridge` uses Berth's own Linux bridge (`--bridge`, default
`berth0`; never dockerd's `docker0`) and a subnet from `--bip` or the default pools.
"""
from __future__ import annotations

import builtins
import hashlib
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable

import msgspec

from .. import errdefs
from ..config import DaemonConfig
from ..pkg import atomicfile
from ..pkg.stringid import generate_random_id
from ..types import gojson
from . import bridgeaddr, ipam
from .types import IPAM, IPAMConfig, NetworkCreateRequest

log = logging.getLogger("berth.network")

PREDEFINED = ("bridge", "host", "none")
DEFAULT_DATA_ROOT = "/var/lib/berth"


class Pool(msgspec.Struct):
    """One effective subnet of a network: what IPAM hands out from."""

    Subnet: str
    Gateway: str = ""
    IPRange: str = ""
    Aux: list[str] = msgspec.field(default_factory=list)
    # chosen from the default pools, not given by the user (no PreferredPool): dockerd
    # refuses a user-specified address on such a subnet
    Auto: bool = False


class Network(msgspec.Struct):
    """A network as stored: the API fields, then Berth's own."""

    Name: str
    Id: str
    Created: str
    Driver: str
    EnableIPv6: bool = False
    IPAM: IPAM = msgspec.field(default_factory=IPAM)
    Internal: bool = False
    Attachable: bool = False
    Options: dict[str, str] = msgspec.field(default_factory=dict)
    Labels: dict[str, str] = msgspec.field(default_factory=dict)
    Interface: str = ""
    Pools: list[Pool] = msgspec.field(default_factory=list)
    # address -> endpoint ID holding it
    Allocated: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def predefined(self) -> bool:
        if self.Driver in ("host", "null"):
            return True
        return self.Options.get("com.docker.network.bridge.default_bridge") == "true"

    @property
    def user_defined(self) -> bool:
        return not self.predefined


class NetworkStore:
    """All networks of one daemon; thread-safe."""

    def __init__(self, config: DaemonConfig, now: Callable[[], str]) -> None:
        self.config = config
        self.root = os.path.join(config.data_root, "network")
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.lock = threading.RLock()
        self._now = now
        self.networks: dict[str, Network] = {}
        for entry in os.listdir(self.root):
            if not entry.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.root, entry), "rb") as f:
                    n = msgspec.json.decode(f.read(), type=Network)
                self.networks[n.Id] = n
            except (OSError, msgspec.DecodeError) as e:
                log.error("failed to load network %s: %s", entry, e)
        self._init_predefined()

    # -- persistence ------------------------------------------------------------------
    def save(self, n: Network, durable: bool = True) -> None:
        atomicfile.write_file(os.path.join(self.root, f"{n.Id}.json"), msgspec.json.encode(n), 0o600,
                              durable=durable)

    def _delete_file(self, n: Network) -> None:
        try:
            os.unlink(os.path.join(self.root, f"{n.Id}.json"))
        except FileNotFoundError:
            pass

    # -- predefined networks ------------------------------------------------------------
    def default_bridge_name(self) -> str:
        """`--bridge`, else berth0; a daemon on another data root gets its own name so two
        berthds never share a bridge."""
        if self.config.bridge:
            return self.config.bridge
        if os.path.abspath(self.config.data_root) == DEFAULT_DATA_ROOT:
            return "berth0"
        return "berth-" + hashlib.sha256(os.path.abspath(self.config.data_root).encode()).hexdigest()[:8]

    def _pool_offset(self) -> int:
        """Where this daemon starts in the default pools: 0 for the default data root."""
        root = os.path.abspath(self.config.data_root)
        if root == DEFAULT_DATA_ROOT:
            return 0
        return int(hashlib.sha256(root.encode()).hexdigest()[:8], 16)

    def _by_name(self, name: str) -> Network | None:
        for n in self.networks.values():
            if n.Name == name:
                return n
        return None

    def _init_predefined(self) -> None:
        with self.lock:
            for name, driver in (("none", "null"), ("host", "host")):
                if self._by_name(name) is None:
                    n = Network(Name=name, Id=generate_random_id(), Created=self._now(), Driver=driver,
                                IPAM=IPAM(Config=[]))
                    self.networks[n.Id] = n
                    self.save(n)
            br = self._by_name("bridge")
            iface = self.default_bridge_name()
            if br is not None and (br.Interface != iface or (self.config.bip and br.Pools[0].Gateway + "/" +
                                   str(ipaddress.ip_network(br.Pools[0].Subnet).prefixlen) != self.config.bip)):
                if any(br.Allocated.values()):
                    log.warning("default bridge settings changed while endpoints exist; keeping old settings")
                    return
                del self.networks[br.Id]
                self._delete_file(br)
                br = None
            adopted = None if self.config.bip else self._adoptable(iface, br)
            if br is not None and adopted is not None:
                # dockerd makes the default network again at every start, from the
                # bridge's address: with no endpoint on the record, take that address
                log.info("default bridge %s holds %s: the bridge network takes it", iface, adopted[0])
                br.Pools = [Pool(Subnet=adopted[0], Gateway=adopted[1])]
                br.IPAM = IPAM(Config=[IPAMConfig(Subnet=adopted[0], Gateway=adopted[1])])
                self.save(br)
            if br is None:
                if self.config.bip:
                    iface_net = ipaddress.ip_interface(self.config.bip)
                    subnet, gateway = iface_net.network, str(iface_net.ip)
                    cfg = IPAMConfig(Subnet=str(subnet), Gateway=gateway)
                elif adopted is not None:
                    log.info("default bridge %s holds %s: the bridge network takes it", iface, adopted[0])
                    subnet, gateway = ipaddress.ip_network(adopted[0]), adopted[1]
                    cfg = IPAMConfig(Subnet=adopted[0], Gateway=gateway)
                else:
                    subnet = ipam.choose_pool(self._in_use(), self._pool_offset())
                    gateway = str(subnet.network_address + 1)
                    # initBridgeDriver gives the default network its bridge's address as
                    # Gateway (inspect shows it, as the reference's docker0 network does)
                    cfg = IPAMConfig(Subnet=str(subnet), Gateway=gateway)
                br = Network(
                    Name="bridge", Id=generate_random_id(), Created=self._now(), Driver="bridge",
                    IPAM=IPAM(Config=[cfg]), Interface=iface,
                    Options={
                        "com.docker.network.bridge.default_bridge": "true",
                        "com.docker.network.bridge.enable_icc": "true",
                        "com.docker.network.bridge.enable_ip_masquerade": "true",
                        "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                        "com.docker.network.bridge.name": iface,
                        "com.docker.network.driver.mtu": "1500",
                    },
                    Pools=[Pool(Subnet=str(subnet), Gateway=gateway)],
                )
                self.networks[br.Id] = br
                self.save(br)

    def _adoptable(self, iface: str, br: Network | None) -> tuple[str, str] | None:
        """The (subnet, gateway) an existing kernel bridge `iface` holds, when the default
        network should take it (bridgeaddr.py): the record, if any, has no endpoint and
        another address, and no other network has the subnet."""
        if br is not None and any(br.Allocated.values()):
            return None  # live endpoints use the record's gateway: the bridge is fixed instead
        got = bridgeaddr.elect_ipv4(iface)
        if got is None or not got[1]:
            return None
        if br is not None and br.Pools and (br.Pools[0].Subnet, br.Pools[0].Gateway) == got:
            return None
        subnet = ipaddress.ip_network(got[0])
        if any(subnet.overlaps(ipaddress.ip_network(p.Subnet)) for n in self.networks.values()
               if n is not br for p in n.Pools if ipaddress.ip_network(p.Subnet).version == 4):
            return None
        return got

    def _in_use(self) -> list[ipam.Net]:
        return [ipaddress.ip_network(p.Subnet) for n in self.networks.values() for p in n.Pools]

    # -- lookup (daemon/network.go FindNetwork, api network_routes.go getNetwork) -------------
    def find(self, term: str, route_style: bool = False) -> Network:
        with self.lock:
            n = self.networks.get(term)
            if n is not None:
                return n
            by_name = [n for n in self.networks.values() if n.Name == term]
            if len(by_name) == 1:
                return by_name[0]
            if len(by_name) > 1:
                raise _ambiguous(term, len(by_name), "name", route_style)
            by_prefix = [n for n in self.networks.values() if term and n.Id.startswith(term)]
            if len(by_prefix) == 1:
                return by_prefix[0]
            if len(by_prefix) > 1:
                raise _ambiguous(term, len(by_prefix), "ID prefix", route_style)
            raise errdefs.NotFound(f"network {term} not found")

    def list(self) -> list[Network]:
        with self.lock:
            return list(self.networks.values())

    # -- create and remove ---------------------------------------------------------------
    def create(self, req: NetworkCreateRequest) -> tuple[Network, str]:
        """daemon/network.go createNetwork: returns the network and a warning."""
        driver = req.Driver or "bridge"
        if req.Name in PREDEFINED and not req.ConfigOnly:
            raise errdefs.Forbidden(f"operation is not permitted on predefined {req.Name} network ")
        if driver != "bridge":
            if driver in ("host", "null"):
                raise errdefs.Forbidden(f"only one instance of \"{driver}\" network is allowed")
            raise errdefs.NotFound(f'plugin "{driver}" not found')
        if not req.Name:
            raise errdefs.Untyped(f"invalid name: {req.Name}")
        with self.lock:
            warning = ""
            same = self._by_name(req.Name)
            if same is not None:
                if req.CheckDuplicate:
                    raise errdefs.Conflict(f"network with name {req.Name} already exists")
                warning = f"Network with name {req.Name} (id : {same.Id}) already exists"
            nid = generate_random_id()
            cfgs = list((req.IPAM.Config if req.IPAM and req.IPAM.Config else []) or [])
            pools = self._pools(cfgs, req.EnableIPv6)
            shown = list(cfgs)
            if not any(ipaddress.ip_network(c.Subnet, strict=False).version == 4 for c in cfgs if c.Subnet):
                shown.insert(0, IPAMConfig(Subnet=pools[0].Subnet, Gateway=pools[0].Gateway))
            opts = dict(req.Options or {})
            iface = opts.get("com.docker.network.bridge.name") or f"br-{nid[:12]}"
            n = Network(
                Name=req.Name, Id=nid, Created=self._now(), Driver=driver, EnableIPv6=req.EnableIPv6,
                IPAM=IPAM(Driver=(req.IPAM.Driver if req.IPAM and req.IPAM.Driver else "default"),
                          Options=req.IPAM.Options if req.IPAM else None, Config=shown),
                Internal=req.Internal, Attachable=req.Attachable, Options=opts, Labels=dict(req.Labels or {}),
                Interface=iface, Pools=pools,
            )
            self.networks[nid] = n
            self.save(n)
            return n, warning

    def _pools(self, cfgs: builtins.list[IPAMConfig], ipv6: bool) -> builtins.list[Pool]:
        pools: builtins.list[Pool] = []
        in_use = self._in_use()
        for c in cfgs:
            if not c.Subnet:
                continue
            subnet = ipam.parse_subnet(c.Subnet)
            if any(subnet.version == u.version and subnet.overlaps(u) for u in in_use):
                raise errdefs.Forbidden("Pool overlaps with other one on this address space")
            rng = ipam.parse_subnet(c.IPRange) if c.IPRange else None
            gw = c.Gateway
            if gw:
                ip = ipam.parse_ip(gw)
                if ip is None or ip not in subnet:
                    raise errdefs.Untyped(f"failed to allocate gateway ({gw}): Requested address is out of range")
            aux = list((c.AuxiliaryAddresses or {}).values())
            if not gw:
                # the IPAM hands the gateway the first free address of the range, as to
                # any endpoint (dockerd: 10.0.5.0 for --ip-range 10.0.5.0/24; fd00::1
                # for an IPv6 subnet, the containers getting ::2 on)
                gw = ipam.first_free(subnet, rng, set(aux)) or str(subnet.network_address + 1)
            pools.append(Pool(Subnet=str(subnet), Gateway=gw, IPRange=str(rng) if rng else "", Aux=aux))
            in_use.append(subnet)
        if not any(ipaddress.ip_network(p.Subnet).version == 4 for p in pools):
            subnet = ipam.choose_pool(in_use, self._pool_offset())
            pools.insert(0, Pool(Subnet=str(subnet), Gateway=str(subnet.network_address + 1), Auto=True))
        if ipv6 and not any(ipaddress.ip_network(p.Subnet).version == 6 for p in pools):
            raise errdefs.NotFound("could not find an available, non-overlapping IPv6 address pool among the "
                                   "defaults to assign to the network")
        return pools

    def remove(self, n: Network) -> None:
        with self.lock:
            self.networks.pop(n.Id, None)
            self._delete_file(n)

    # -- IPAM ----------------------------------------------------------------------------
    def allocate(self, n: Network, endpoint_id: str, want4: str = "", want6: str = "") -> builtins.list[tuple[str, int, str]]:
        """Reserve one address per pool family: [(address, prefix length, gateway)]."""
        out: builtins.list[tuple[str, int, str]] = []
        with self.lock:
            done: set[int] = set()
            try:
                for p in n.Pools:
                    subnet = ipaddress.ip_network(p.Subnet)
                    if subnet.version in done:
                        continue
                    want = want4 if subnet.version == 4 else want6
                    reserved = set(n.Allocated) | set(p.Aux) | ({p.Gateway} if p.Gateway else set())
                    if want:
                        # libnetwork endpoint.go assignAddressVersion / ipam RequestAddress:
                        # the network and broadcast addresses are allocated bits too.
                        ip = ipam.parse_ip(want)
                        if ip is None or ip not in subnet:
                            raise errdefs.Untyped(f"Invalid address {want}: It does not belong to any of this "
                                                  "network's subnets")
                        if want in reserved or ip == subnet.network_address or (
                                subnet.version == 4 and ip == subnet.broadcast_address):
                            raise errdefs.Forbidden("Address already in use")
                        addr = want
                    else:
                        got = ipam.first_free(subnet, ipaddress.ip_network(p.IPRange) if p.IPRange else None,
                                              reserved)
                        if got is None:
                            raise errdefs.Untyped(f"no available IPv{subnet.version} addresses on this network's "
                                                  "address pools: " + n.Name + " (" + n.Id + ")")
                        addr = got
                    n.Allocated[addr] = endpoint_id
                    out.append((addr, subnet.prefixlen, p.Gateway))
                    done.add(subnet.version)
            except errdefs.DockerError:
                for addr, _, _ in out:
                    n.Allocated.pop(addr, None)
                raise
            try:
                self.save(n)
            except OSError as e:  # a full data root: libnetwork's endpoint store update fails so
                for addr, _, _ in out:
                    n.Allocated.pop(addr, None)
                raise errdefs.System("failed to update store for object type *libnetwork.endpoint: "
                                     + errdefs.os_error_text(e)) from None
        return out

    def release_endpoint(self, n: Network, endpoint_id: str) -> None:
        with self.lock:
            gone = [a for a, e in n.Allocated.items() if e == endpoint_id]
            for a in gone:
                del n.Allocated[a]
            if gone and n.Id in self.networks:
                # Renamed into place but not synced: a record that still names the address
                # after a crash names an endpoint no container has, which the daemon's
                # next start drops (restore_networking), as it drops any stale one.
                self.save(n, durable=False)


def _ambiguous(term: str, count: int, how: str, route_style: bool) -> errdefs.DockerError:
    if route_style:
        return errdefs.InvalidParameter(f"{count} matches found based on {how}: network {term} is ambiguous")
    return errdefs.InvalidParameter(f"network {term} is ambiguous ({count} matches found based on {how})")


def now_go() -> str:
    return gojson.format_go_time(time.time_ns())
