"""Container networking (moby v20.10.24 daemon/container_operations.go: updateContainerNetworkSettings,
initializeNetworking, allocateNetwork, connectToNetwork, releaseNetwork, ConnectToNetwork,
DisconnectFromNetwork; daemon/network.go for the network API).

Berth owns network objects and IPAM (berth.network.store); netavark wires each (container,
network) pair into a namespace Berth creates (berth.network.netavark). Blocking work runs on
the daemon's I/O pool; these async functions are what the start path and API call.

For the LIFECYCLE start path:
    path = await initialize_networking(d, ctr)   # netns to join; None = host's namespace
    hosts = build_hosts(d, ctr); resolv = build_resolv_conf(d, ctr)   # file contents
    ...
    await release_network(d, ctr)                # at exit/stop/kill/removal; idempotent
At daemon start, after containers are loaded: `await restore_networking(d)`.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import subprocess
import threading
from typing import TYPE_CHECKING, Any

import msgspec

from .. import errdefs
from ..container.container import NetworkEndpoint
from ..network import etcfiles, hostsetup, keeper
from ..network.netavark import Netavark, network_config
from ..network.ports import PortAllocator, PortError, host_has_ipv6, plan
from ..network.store import Network, NetworkStore, now_go
from ..pkg.stringid import generate_random_id, truncate_id
from ..trace import traced
from ..types.container import NetworkingConfig
from . import links

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

log = logging.getLogger("berth.network")
DEFAULT_NETWORK = "bridge"
_INIT_LOCK = threading.Lock()


class Controller:
    """Per-daemon network state: the store, netavark, and published-port reservations."""

    def __init__(self, d: Daemon) -> None:
        self.store = NetworkStore(d.config, now_go)
        self.nv = Netavark(d.config.exec_root)
        self.ports = PortAllocator()
        self.lock = threading.RLock()
        self.closing = False


def drop_bridge(d: Daemon, n: Any) -> None:
    """The network is gone from Berth: take its bridge and firewall chains off the host
    (network/keeper.py says why they outlive its last container until now)."""
    if n.Driver != "bridge":
        return
    ctl = controller(d)
    with ctl.lock:
        if not icc_enabled(n):
            hostsetup.set_icc(n.Interface, True)
        keeper.drop(ctl.nv, network_config(n))
        if not os.path.exists(f"/sys/class/net/{n.Interface}"):  # live-restored containers keep it
            hostsetup.set_published_ports_accept(n.Interface, False)
        ctl.nv.sweep_leftovers()  # its port-forwarding chain, which netavark keeps


def create_bridge(d: Daemon, n: Any) -> None:
    """The bridge driver's CreateNetwork: the network's bridge (`ip link show <name>`
    works at once) and chains exist from now on, not from its first container; the
    addresses the throwaway attachment uses are reserved in IPAM meanwhile."""
    if n.Driver != "bridge":
        return
    ctl = controller(d)
    with ctl.lock:
        if d.config.iptables:
            ctl.nv.drop_other_networks(n.Id, [p.Subnet for p in n.Pools])
        if not keeper.kept(n.Interface, n.Id):  # a restarted daemon may find it kept
            eid = "keeper-" + generate_random_id()
            ips = [a for a, _, _ in ctl.store.allocate(n, eid)]
            try:
                keeper.make(ctl.nv, network_config(n), ips)
            finally:
                ctl.store.release_endpoint(n, eid)
        try:
            if not icc_enabled(n):
                hostsetup.set_icc(n.Interface, False)
            hostsetup.set_published_ports_accept(n.Interface, True)
        except OSError as e:
            raise errdefs.System(str(e)) from None


def icc_enabled(n: Any) -> bool:
    """com.docker.network.bridge.enable_icc, a strconv.ParseBool value (default true)."""
    return n.Options.get("com.docker.network.bridge.enable_icc", "true") not in ("0", "f", "F", "FALSE", "false",
                                                                                 "False")


def shutdown_networking(d: Daemon) -> None:
    """At daemon stop, leave nothing on the host for networks no container uses any more;
    a network with live-restored containers keeps its bridge until the last one leaves."""
    ctl = controller(d)
    with ctl.lock:
        ctl.closing = True  # the start's bridge making (make_bridges) stops here
    ctl.nv.close_netns()
    ctl.nv.wait_dying()
    for n in ctl.store.list():
        if n.Driver == "bridge" and keeper.has_keeper(n.Id):
            try:
                drop_bridge(d, n)
            except Exception:  # shutdown goes on; the next start finds it
                log.exception("dropping bridge of network %s", n.Name)


def controller(d: Daemon) -> Controller:
    ctl: Controller | None = d._berth_network
    if ctl is None:
        with _INIT_LOCK:
            ctl = d._berth_network
            if ctl is None:
                ctl = d._berth_network = Controller(d)
    return ctl


def network_name(d: Daemon, mode: str) -> str:
    if mode == "default":
        return DEFAULT_NETWORK
    return mode


@traced("updateContainerNetworkSettings", leaf=True)
def update_container_network_settings(d: Daemon, ctr: Container, nc: NetworkingConfig | None) -> None:
    hc = ctr.host_config
    if not hc.NetworkMode:
        hc.NetworkMode = "default"
    mode = hc.NetworkMode
    if ctr.Config.NetworkDisabled is True or mode.startswith("container:"):
        return
    name = network_name(d, mode)
    networks: dict[str, NetworkEndpoint] = {}
    if nc is not None and nc.EndpointsConfig:
        for key, ep in nc.EndpointsConfig.items():
            if ep is None:
                continue
            if key == "default" and mode == "default":  # only the default mode's own key moves
                key = DEFAULT_NETWORK
            networks[key] = msgspec.convert(msgspec.to_builtins(ep), NetworkEndpoint)
    else:
        networks[name] = NetworkEndpoint()
    ctr.NetworkSettings.Networks = networks


def emit(d: Daemon, n: Network, action: str, container_id: str = "") -> None:
    """LogNetworkEventWithAttributes: container (connect/disconnect), name, type."""
    attrs = {"container": container_id} if container_id else {}
    attrs.update(name=n.Name, type=n.Driver)
    d.events.log(action, "network", n.Id, attrs)


# -- start ------------------------------------------------------------------------------
@traced("initializeNetworking")
async def initialize_networking(d: Daemon, ctr: Container) -> str | None:
    """Set up the container's network before its spec is built. Returns the network
    namespace path the container joins: a fresh one Berth made (bridge networks, `none`),
    the other container's for `container:<id>`, or None for the host's namespace."""
    return await d.run_blocking(_initialize, d, ctr)


def _initialize(d: Daemon, ctr: Container) -> str | None:
    hc = ctr.host_config
    mode = hc.NetworkMode or "default"
    ns = ctr.NetworkSettings
    ctl = controller(d)
    ctl.nv.wait_dying(container_id=ctr.ID)  # the last run's veths are gone first
    if mode.startswith("container:"):
        target = d.get_container(mode.split(":", 1)[1])
        if not target.State.Running:
            raise errdefs.Conflict(f"cannot join network of a non running container: {target.ID}")
        if target.host_config.NetworkMode == "host":
            return None
        return target.NetworkSettings.SandboxKey or None
    # createSpec's setupLinkedContainers refuses a stopped link child; checked before
    # anything is set up so there is nothing to undo.
    links.setup_linked_containers(d, ctr)
    for name, ep in (ns.Networks or {}).items():
        _update_network_config(ctl, ctr, name, ep)
    ns.SandboxID = generate_random_id()
    ns.Ports = {}
    if mode == "host":
        ns.SandboxKey = os.path.join(ctl.nv.netns_dir, "default")
        for name, ep in (ns.Networks or {}).items():
            n = ctl.store.find(name)
            ep.NetworkID, ep.EndpointID = n.Id, generate_random_id()
            emit(d, n, "connect", ctr.ID)
        return None
    path = ctl.nv.take_netns(ns.SandboxID) or ctl.nv.create_netns(ns.SandboxID)  # made ahead, or now
    ns.SandboxKey = path
    ctr.next_if_index = 0  # a new sandbox names its interfaces from eth0 again
    # With one network, netavark's setup (the slowest step of a start) is left to
    # finish_networking, which the start runs while the runtime creates the container:
    # the addresses are Berth's own (IPAM), so the spec and /etc/hosts need nothing from it.
    nets = list((ns.Networks or {}).items())
    deferred: list[tuple[str, dict[str, Any]]] | None = [] if len(nets) == 1 else None
    try:
        first = True
        for name, ep in nets:
            _attach(d, ctl, ctr, name, ep, path, publish=first, deferred=deferred)
            first = False
        if deferred:
            ctr.network_pending = deferred
        else:
            _dns_redirect(d, ctr)
    except BaseException:
        _release(d, ctr)
        raise
    return path


@traced("allocateNetwork", network_action="allocate")
async def finish_networking(d: Daemon, ctr: Container) -> None:
    """The netavark setups initialize_networking left pending, then the embedded-DNS
    redirect that needs the container's interfaces. On error the start fails and its
    cleanup (release_network) undoes what was made."""
    pending = ctr.network_pending
    if not pending:
        return
    ctr.network_pending = None
    await d.run_blocking(_finish, d, ctr, pending)


def _finish(d: Daemon, ctr: Container, pending: list[tuple[str, dict[str, Any]]]) -> None:
    ctl = controller(d)
    for netns, opts in pending:
        ctl.nv.setup(netns, opts)
    _dns_redirect(d, ctr)


def _mac_for(ip: str) -> str:
    """genMAC: 02:42 then the IPv4 address."""
    b = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)


def _update_network_config(ctl: Controller, ctr: Container, name: str, ep: NetworkEndpoint) -> None:
    """updateNetworkConfig, before any sandbox is made: a user-defined network's endpoint
    gets the short ID as an alias (kept even if the start then fails), then
    validateNetworkingConfig refuses addresses the network cannot give."""
    n = _find_quiet(ctl, name, ep.NetworkID)
    if n is None or n.Driver != "bridge":
        return  # a missing network fails in _attach with dockerd's message
    if n.user_defined:
        short = truncate_id(ctr.ID)
        if short not in (ep.Aliases or []):
            ep.Aliases = [*(ep.Aliases or []), short]
    validate_networking_config(n, *_wanted_addresses(ep))


def _wanted_addresses(ep: NetworkEndpoint) -> tuple[str, str]:
    """The IPv4 and IPv6 addresses the endpoint's IPAMConfig asks for ("" for none)."""
    cfg = ep.IPAMConfig
    if cfg is None:
        return "", ""
    v4 = cfg.IPv4Address if isinstance(cfg.IPv4Address, str) else ""
    v6 = cfg.IPv6Address if isinstance(cfg.IPv6Address, str) else ""
    return v4, v6


def _attach(d: Daemon, ctl: Controller, ctr: Container, name: str, ep: NetworkEndpoint, netns: str,
            publish: bool, deferred: list[tuple[str, dict[str, Any]]] | None = None) -> None:
    """Allocate the endpoint and attach the namespace to network `name`; with `deferred`,
    netavark's part is appended there for finish_networking instead of run now."""
    n = ctl.store.find(name)
    if n.Driver == "null":
        ep.NetworkID, ep.EndpointID = n.Id, generate_random_id()
        emit(d, n, "connect", ctr.ID)
        return
    if n.Driver != "bridge":
        raise errdefs.InvalidParameter(f"container cannot be connected to network {n.Name} of driver {n.Driver}")
    eid = generate_random_id()
    want4, want6 = _wanted_addresses(ep)
    validate_networking_config(n, want4, want6)  # again: `network connect` comes here directly
    allocs = ctl.store.allocate(n, eid, want4, want6)
    try:
        v4 = next((a for a in allocs if ":" not in a[0]), None)
        v6 = next((a for a in allocs if ":" in a[0]), None)
        cfg_mac = ctr.Config.MacAddress
        mac = ep.MacAddress or (cfg_mac if publish and isinstance(cfg_mac, str) else "")
        if not mac and v4:
            mac = _mac_for(v4[0])
        short = truncate_id(ctr.ID)
        aliases: list[str] = list(ep.Aliases or [])
        if n.user_defined:
            for extra in (short, ctr.Config.Hostname):
                if extra and extra not in aliases:
                    aliases.append(extra)
        per_net: dict[str, Any] = {
            "static_ips": [a[0] for a in allocs],
            "interface_name": _free_interface(ctl, ctr),
            "static_mac": mac,
        }
        if n.user_defined:
            # netavark writes container_name first itself; a repeat of it here would make
            # aardvark-dns answer each query for the name twice. The names others gave this
            # container with --link go to DNS only (inspect shows them on the linker).
            name = ctr.name_without_slash()
            dns_names = [*aliases, *_linked_as(d, n, ctr)]
            per_net["aliases"] = list(dict.fromkeys(a for a in dns_names if a != name))
        opts: dict[str, Any] = {
            "container_id": ctr.ID,
            "container_name": ctr.name_without_slash(),
            "networks": {n.Id: per_net},
            "network_info": {n.Id: network_config(n)},
        }
        if publish and n.Driver == "bridge":
            opts["port_mappings"] = _publish(
                ctl, ctr, eid, n.Options.get("com.docker.network.bridge.host_binding_ipv4") or "0.0.0.0")
        if deferred is None:
            ctl.nv.setup(netns, opts)
        else:
            deferred.append((netns, opts))
    except BaseException:
        ctl.store.release_endpoint(n, eid)
        if publish:
            ctl.ports.release(ctr.ID)
        raise
    if n.user_defined and ep.Links:
        _publish_link_aliases(d, ctl, n, ep.Links)
    ep.NetworkID, ep.EndpointID = n.Id, eid
    ep.Aliases = aliases or None
    ep.MacAddress = mac
    ep.IPAddress, ep.IPPrefixLen, ep.Gateway = (v4[0], v4[1], v4[2]) if v4 else ("", 0, "")
    ep.GlobalIPv6Address, ep.GlobalIPv6PrefixLen, ep.IPv6Gateway = (v6[0], v6[1], v6[2]) if v6 else ("", 0, "")
    emit(d, n, "connect", ctr.ID)


# -- links on user-defined networks ---------------------------------------------------------
# dockerd gives a linking container's endpoint an alias for each link (libnetwork's
# CreateOptionAlias) that its own sandbox resolver answers. aardvark-dns has no per-client
# names, so Berth gives the alias to the linked container's DNS entry on that network:
# the linker resolves it as in dockerd; other containers on the network resolve it too.
def _link_targets(links: list[str]) -> list[tuple[str, str]]:
    """`name:alias` link specs as (name, alias); an alias defaults to the name."""
    out = []
    for spec in links:
        name, _, alias = spec.partition(":")
        name = name.lstrip("/")
        if name:
            out.append((name, alias or name))
    return out


def _link_target(d: Daemon, name: str) -> Container | None:
    """The container a link names, found as dockerd finds one (GetContainer), if any."""
    try:
        return d.get_container(name)
    except errdefs.DockerError:
        return None


def _linked_as(d: Daemon, n: Network, ctr: Container) -> list[str]:
    """The aliases containers on `n` gave `ctr` with links, for its DNS entry at attach."""
    out = []
    for other in list(d.containers.values()):
        ep = (other.NetworkSettings.Networks or {}).get(n.Name)
        if other is ctr or ep is None or not ep.Links:
            continue
        out += [alias for name, alias in _link_targets(ep.Links) if _link_target(d, name) is ctr]
    return out


def _publish_link_aliases(d: Daemon, ctl: Controller, n: Network, links: list[str]) -> None:
    """A linker attaches after its link targets: add its aliases to their DNS entries."""
    for name, alias in _link_targets(links):
        target = _link_target(d, name)
        if target is None or not target.State.Running:
            continue  # it gets the alias when it attaches (_linked_as)
        if n.Name in (target.NetworkSettings.Networks or {}):
            ctl.nv.add_dns_names(n.Id, target.ID, [alias])


def rename_endpoints(d: Daemon, ctr: Container, old: str) -> None:
    """ContainerRename's sandbox.Rename: a running container's DNS entry on each
    user-defined network answers to its new name instead of `old` (blocking)."""
    if not ctr.State.Running or not ctr.NetworkSettings.SandboxID:
        return
    ctl = controller(d)
    with ctl.lock:
        for name, ep in (ctr.NetworkSettings.Networks or {}).items():
            n = _find_quiet(ctl, name, ep.NetworkID)
            if n is not None and n.user_defined and ep.EndpointID:
                ctl.nv.rename_dns_name(n.Id, ctr.ID, old.lstrip("/"), ctr.name_without_slash())


def validate_networking_config(n: Network, want4: str, want6: str) -> None:
    """validateNetworkingConfig: a user-specified address needs a user-defined network
    whose subnet of that family the user configured."""
    if not (want4 or want6):
        return
    if not n.user_defined:
        raise errdefs.InvalidParameter("user specified IP address is supported on user defined networks only")
    for want, version in ((want4, 4), (want6, 6)):
        if want and not any(not p.Auto and ipaddress.ip_network(p.Subnet).version == version for p in n.Pools):
            raise errdefs.InvalidParameter("user specified IP address is supported only when connecting to networks "
                                           "with user configured subnets")


def _free_interface(ctl: Controller, ctr: Container) -> str:
    """The next interface name of the container's sandbox: libnetwork's osl counts
    `nextIfIndex` up and never gives a name back while the sandbox lives, so a
    disconnect and connect gives eth1, not eth0 again. The count lives with the sandbox
    (reset by _initialize); after a daemon restart it is taken from the interfaces the
    container has."""
    used = -1
    for nid in ctl.nv.attached(ctr.ID):
        try:
            with open(os.path.join(ctl.nv.ep_dir, f"{ctr.ID}-{nid}.json")) as f:
                for pn in json.load(f)["opts"]["networks"].values():
                    name = pn["interface_name"]
                    if name.startswith("eth") and name[3:].isdigit():
                        used = max(used, int(name[3:]))
        except (OSError, ValueError, KeyError):
            pass
    i = max(ctr.next_if_index, used + 1)
    ctr.next_if_index = i + 1
    return f"eth{i}"


def _publish(ctl: Controller, ctr: Container, eid: str, default_ip: str = "0.0.0.0") -> list[dict[str, Any]]:
    """Reserve host ports and fill NetworkSettings.Ports; returns netavark port mappings.
    A binding without a host address takes `default_ip`, the network's
    host_binding_ipv4 (allocatePorts' defHostIP): only the unspecified one adds `::`."""
    hc = ctr.host_config
    exposed = ctr.Config.ExposedPorts if isinstance(ctr.Config.ExposedPorts, dict) else None
    bindings = msgspec.to_builtins(hc.PortBindings) if hc.PortBindings else None
    ports: dict[str, Any] = {}
    mappings: list[dict[str, Any]] = []
    v6 = host_has_ipv6()
    try:
        for key, pairs in plan(exposed, bindings, bool(hc.PublishAllPorts)):
            cport, proto = int(key.split("/")[0]), key.split("/")[1]
            if not pairs:
                ports[key] = None
                continue
            shown = []
            for host_ip, host_port in pairs:
                lo, _, hi = (host_port or "").partition("-")
                want, want_end = (int(lo) if lo else 0), (int(hi) if hi else 0)
                ips = [host_ip] if host_ip else ([default_ip, "::"] if v6 and default_ip == "0.0.0.0"
                                                 else [default_ip])
                got = 0
                for ip in ips:
                    if ip == "::" and got:
                        try:
                            got6 = ctl.ports.allocate(ctr.ID, proto, ip, got, 0)
                        except PortError:
                            continue  # dockerd skips the IPv6 binding when its port is taken
                        shown.append({"HostIp": ip, "HostPort": str(got6)})
                        continue
                    got = ctl.ports.allocate(ctr.ID, proto, ip, want, want_end)
                    shown.append({"HostIp": ip, "HostPort": str(got)})
                    if proto in ("tcp", "udp", "sctp"):
                        mappings.append({"host_ip": "" if ip == "0.0.0.0" else ip, "container_port": cport,
                                         "host_port": got, "range": 1, "protocol": proto})
            ports[key] = shown
    except PortError as e:
        ctl.ports.release(ctr.ID)
        raise errdefs.System(f"driver failed programming external connectivity on endpoint "
                             f"{ctr.name_without_slash()} ({eid}): {e}") from None
    ctr.NetworkSettings.Ports = ports
    return mappings


def _dns_redirect(d: Daemon, ctr: Container) -> None:
    """Point 127.0.0.11:53 (dockerd's embedded DNS address) at aardvark-dns on the first
    user-defined network's gateway, with rules inside the container's own namespace
    (they vanish with it), as dockerd's resolver does."""
    ctl = controller(d)
    target = None
    for name, ep in (ctr.NetworkSettings.Networks or {}).items():
        if not ep.IPAddress or not ep.Gateway:
            continue
        try:
            n = ctl.store.find(name)
        except errdefs.DockerError:
            continue
        if n.user_defined:
            target = (ep.Gateway, ep.IPAddress)
            break
    if target is None and ctr.State.Running and _has_embedded_resolv(ctr):
        # Disconnected from its last user-defined network: dockerd's resolver stays in the
        # sandbox and keeps forwarding to the host's servers; do the same with the first
        # upstream IPv4 server (no container names resolve any more, as with dockerd).
        cip = next((ep.IPAddress for ep in (ctr.NetworkSettings.Networks or {}).values() if ep.IPAddress), "")
        hc = ctr.host_config
        up = etcfiles.build_resolv(etcfiles.read_host_resolv(), hc.Dns, hc.DnsSearch, hc.DnsOptions, False)
        ns4 = [a for a in etcfiles.nameservers(up) if ":" not in a]
        if cip and ns4:
            target = (ns4[0], cip)
    if target is None or not ctr.NetworkSettings.SandboxKey:
        return
    gw, cip = target
    rules = ["*nat", ":BERTH-DNS-OUT - [0:0]", ":BERTH-DNS-POST - [0:0]", "-F BERTH-DNS-OUT", "-F BERTH-DNS-POST"]
    for proto in ("udp", "tcp"):
        rules.append(f"-A BERTH-DNS-OUT -d {etcfiles.EMBEDDED_DNS}/32 -p {proto} --dport 53 "
                     f"-j DNAT --to-destination {gw}:53")
        rules.append(f"-A BERTH-DNS-POST -s 127.0.0.0/8 -d {gw}/32 -p {proto} --dport 53 -j SNAT --to-source {cip}")
    rules.append("COMMIT")
    script = (
        "for f in /proc/sys/net/ipv4/conf/*/route_localnet; do echo 1 > $f; done; "
        "iptables-restore --noflush <&0 && "
        "{ iptables -t nat -C OUTPUT -j BERTH-DNS-OUT 2>/dev/null || iptables -t nat -A OUTPUT -j BERTH-DNS-OUT; } && "
        "{ iptables -t nat -C POSTROUTING -j BERTH-DNS-POST 2>/dev/null || "
        "iptables -t nat -A POSTROUTING -j BERTH-DNS-POST; }"
    )
    r = subprocess.run(["nsenter", f"--net={ctr.NetworkSettings.SandboxKey}", "sh", "-c", script],
                       input=("\n".join(rules) + "\n").encode(), capture_output=True)
    if r.returncode != 0:
        log.warning("container %s: embedded DNS redirect: %s", ctr.ID[:12], r.stderr.decode().strip())


# -- stop -------------------------------------------------------------------------------------
@traced("releaseNetwork", network_action="release")
async def release_network(d: Daemon, ctr: Container) -> None:
    """Tear down what initialize_networking made (releaseNetwork); safe to call twice."""
    await d.run_blocking(_release, d, ctr)


@traced("releaseNetwork", network_action="release")
def release_network_blocking(d: Daemon, ctr: Container) -> None:
    """release_network in the calling thread (the exit's cleanup does it in the same
    thread hop as the checkpoint that follows). The namespace itself is removed by a
    background thread (netns.Retired)."""
    _release(d, ctr, netns_later=True)


def _release(d: Daemon, ctr: Container, netns_later: bool = False) -> None:
    ctl = controller(d)
    ns = ctr.NetworkSettings
    mode = ctr.host_config.NetworkMode or "default"
    # the namespace is removed below: a veth made in-process may go with it (Netavark
    # _teardown_veth says why and what waits for it)
    netns_going = (not mode.startswith("container:") and bool(ns.SandboxKey)
                   and os.path.basename(ns.SandboxKey) != "default")
    with ctl.lock:
        live = set(ctl.nv.attached(ctr.ID))
        for name, ep in (ns.Networks or {}).items():
            n = _find_quiet(ctl, name, ep.NetworkID)
            if n is not None and n.Id[:12] in live:
                ctl.nv.teardown(ctr.ID, n.Id, netns_going)
                live.discard(n.Id[:12])
            if n is not None:
                ctl.store.release_endpoint(n, ep.EndpointID)
                if ep.EndpointID:
                    emit(d, n, "disconnect", ctr.ID)
            _clear_endpoint(ep)
        for nid in live:  # a network no longer in the settings (disconnected while down)
            n = _find_quiet(ctl, "", nid)
            ctl.nv.teardown(ctr.ID, n.Id if n else nid)
        ctl.ports.release(ctr.ID)
        if netns_going:
            ctl.nv.remove_netns(ns.SandboxKey, later=netns_later)
        ns.Ports = {}


def wait_released(d: Daemon, ctr: Container) -> None:
    """Until the host ends of the container's last endpoints are gone (a removal, a new
    start: nothing of the last run is left on a bridge), blocking."""
    controller(d).nv.wait_dying(container_id=ctr.ID)


def _clear_endpoint(ep: NetworkEndpoint) -> None:
    """cleanOperationalData: keep NetworkID, aliases and IPAM config; drop the rest."""
    ep.EndpointID = ep.Gateway = ep.IPAddress = ep.IPv6Gateway = ep.GlobalIPv6Address = ep.MacAddress = ""
    ep.IPPrefixLen = ep.GlobalIPv6PrefixLen = 0


def _find_quiet(ctl: Controller, name: str, nid: str) -> Network | None:
    for term in (nid, name):
        if not term:
            continue
        try:
            return ctl.store.find(term)
        except errdefs.DockerError:
            continue
    return None


async def restore_networking(d: Daemon) -> None:
    """At daemon start: keep running containers' networking (re-reserve their host ports),
    tear down what dead containers left (namespaces, netavark state, addresses)."""
    await d.run_blocking(_restore, d)
    # dockerd's bridge driver makes its bridges at start (docker0 is there before any
    # container; `host-gateway` answers at its address from any network). Berth does it
    # beside the first requests rather than before them: a start is not kept waiting,
    # and a container attaching meanwhile is safe (the setup's address is reserved).
    task = asyncio.get_running_loop().create_task(d.run_blocking(make_bridges, d))
    d._berth_bridges_task = task


def make_bridges(d: Daemon) -> None:
    ctl = controller(d)
    for n in ctl.store.list():
        with ctl.lock:
            if ctl.closing:
                return
            if n.Id not in ctl.store.networks:
                continue  # removed meanwhile
            try:
                create_bridge(d, n)
            except errdefs.DockerError as e:
                log.warning("network %s: bridge %s: %s", n.Name, n.Interface, e)


def _restore(d: Daemon) -> None:
    ctl = controller(d)
    # the bridge driver's start: ip_forward (and the FORWARD policy), br_netfilter
    pin = hostsetup.setup(d.config.ip_forward, d.config.iptables)
    if pin is not None:
        ctl.nv.after_setup = pin.restore
        d.sysinfo.ipv4_forwarding_pinned_off = pin.value == "0"
    d.sysinfo.ipv4_forwarding_disabled = not hostsetup.forwarding_enabled()  # what run warns about
    live_eps: set[str] = set()
    # one listing of the endpoint files, not one per container (10,000 at a restart)
    with_state = {cid for cid, _ in ctl.nv.all_attached()}
    for ctr in list(d.containers.values()):
        if ctr.State.Running:
            for ep in (ctr.NetworkSettings.Networks or {}).values():
                live_eps.add(ep.EndpointID)
            for key, bs in (ctr.NetworkSettings.Ports or {}).items():
                proto = key.split("/")[1]
                for b in bs or []:
                    try:
                        ctl.ports.allocate(ctr.ID, proto, b["HostIp"], int(b["HostPort"]), 0)
                    except (PortError, KeyError, ValueError) as e:
                        log.warning("container %s: cannot re-reserve %s: %s", ctr.ID[:12], key, e)
        elif ctr.NetworkSettings.SandboxKey or ctr.ID in with_state:
            _release(d, ctr)
    for cid, nid in ctl.nv.all_attached():
        c = d.containers.get(cid)
        if c is None or not c.State.Running:
            ctl.nv.teardown(cid, nid)
    for n in ctl.store.list():
        stale = [a for a, e in n.Allocated.items() if e not in live_eps]
        if stale:
            for a in stale:
                del n.Allocated[a]
            ctl.store.save(n)
    in_use = {c.NetworkSettings.SandboxKey for c in d.containers.values() if c.State.Running}
    for f in os.listdir(ctl.nv.netns_dir):
        path = os.path.join(ctl.nv.netns_dir, f)
        if path not in in_use:
            ctl.nv.remove_netns(path)


# -- /etc/hosts and /etc/resolv.conf ---------------------------------------------------------
def build_hosts(d: Daemon, ctr: Container) -> str:
    """The content of the container's /etc/hosts (buildHostsFile + updateHostsFile), after
    initialize_networking. `host` mode copies the host's file. For `container:<id>` dockerd
    uses the other container's files (its HostsPath/ResolvConfPath): use those paths."""
    mode = ctr.host_config.NetworkMode or "default"
    if mode == "host":
        # a copy of the host's file, then the --add-host records (etchosts.Add)
        try:
            with open("/etc/hosts") as f:
                base = f.read()
        except OSError:
            base = etcfiles.DEFAULT_HOSTS
        if base and not base.endswith("\n"):
            base += "\n"
        for host, ip in extra_hosts(d, ctr):
            base += f"{ip}\t{host}\n"
        return base
    if mode.startswith("container:"):
        return build_hosts(d, d.get_container(mode.split(":", 1)[1]))
    extra = extra_hosts(d, ctr)
    if mode in ("default", "bridge"):
        extra += _link_records(d, ctr)
    ips = [ep.IPAddress for ep in (ctr.NetworkSettings.Networks or {}).values() if ep.IPAddress]
    return etcfiles.build_hosts(ips, ctr.Config.Hostname, ctr.Config.Domainname, extra)


HOST_GATEWAY_NAME = "host-gateway"


def host_gateway_ip(d: Daemon) -> str:
    """config.HostGatewayIP: `--host-gateway-ip`, else the default bridge's gateway, as
    dockerd sets it when its network controller starts ("" without a default bridge)."""
    if d.config.host_gateway_ip:
        return d.config.host_gateway_ip
    try:
        br = controller(d).store.find(DEFAULT_NETWORK)
    except errdefs.DockerError:
        return ""
    pools = [p for p in br.Pools if ":" not in p.Subnet] or br.Pools
    return pools[0].Gateway if pools else ""


def extra_hosts(d: Daemon, ctr: Container) -> list[tuple[str, str]]:
    """buildSandboxOptions: the --add-host records, `host-gateway` replaced by the
    daemon's HostGatewayIP (how `host.docker.internal:host-gateway` works on Linux)."""
    out: list[tuple[str, str]] = []
    for h in ctr.host_config.ExtraHosts or []:
        host, _, ip = h.partition(":")
        if ip == HOST_GATEWAY_NAME:
            ip = host_gateway_ip(d)
            if not ip:
                raise errdefs.Untyped("unable to derive the IP value for host-gateway")
        out.append((host, ip))
    return out


def _link_records(d: Daemon, ctr: Container) -> list[tuple[str, str]]:
    out = []
    for link_name, child_id in sorted(d.names.children(ctr.Name).items()):
        child = d.containers.get(child_id)
        if child is None:
            continue
        ep = (child.NetworkSettings.Networks or {}).get(DEFAULT_NETWORK)
        if ep is None or not ep.IPAddress:
            continue
        alias = link_name.rsplit("/", 1)[-1]
        names = f"{alias} {child.Config.Hostname}"
        if alias != child.name_without_slash():
            names += " " + child.name_without_slash()
        out.append((names, ep.IPAddress))
    return out


def uses_embedded_dns(d: Daemon, ctr: Container) -> bool:
    ctl = controller(d)
    for name in (ctr.NetworkSettings.Networks or {}):
        n = _find_quiet(ctl, name, "")
        if n is not None and n.Driver == "bridge" and n.user_defined:
            return True
    return False


def _has_embedded_resolv(ctr: Container) -> bool:
    """The running container's resolv.conf names the embedded server: once a sandbox has
    it dockerd keeps it, even after the last user-defined network is disconnected."""
    if not ctr.ResolvConfPath:
        return False
    try:
        with open(ctr.ResolvConfPath) as f:
            return etcfiles.nameservers(f.read()) == [etcfiles.EMBEDDED_DNS]
    except OSError:
        return False


def build_resolv_conf(d: Daemon, ctr: Container) -> str:
    """The content of the container's /etc/resolv.conf (setupDNS / rebuildDNS)."""
    mode = ctr.host_config.NetworkMode or "default"
    if mode.startswith("container:"):
        return build_resolv_conf(d, d.get_container(mode.split(":", 1)[1]))
    host = etcfiles.read_host_resolv()
    hc = ctr.host_config
    if mode == "host" and not (hc.Dns or hc.DnsSearch or hc.DnsOptions):
        return host
    embedded = uses_embedded_dns(d, ctr) or (ctr.State.Running and _has_embedded_resolv(ctr))
    return etcfiles.build_resolv(host, hc.Dns, hc.DnsSearch, hc.DnsOptions, embedded)


def rewrite_etc_files(d: Daemon, ctr: Container) -> None:
    """After a live connect/disconnect: rewrite in place, since the files are bind-mounted
    into the running container (a rename would leave it the old inode)."""
    for path, fn in ((ctr.HostsPath, build_hosts), (ctr.ResolvConfPath, build_resolv_conf)):
        if path and os.path.exists(path):
            try:
                data = fn(d, ctr)  # before the truncating open: it may read the old file
                with open(path, "w") as f:
                    f.write(data)
            except OSError as e:
                log.warning("container %s: rewrite %s: %s", ctr.ID[:12], path, e)

