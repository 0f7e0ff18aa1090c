"""The network API operations (moby v20.10.24 daemon/network.go, daemon/prune.go
NetworksPrune, api/server/router/network/network_routes.go filtering and buildNetworkResource,
daemon/container_operations.go ConnectToNetwork / DisconnectFromNetwork).

Blocking functions: the Daemon runs them on its I/O pool (Daemon.network_*).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errdefs
from ..container.container import NetworkEndpoint
from ..network.store import Network
from ..network.types import (
    ConfigReference,
    EndpointResource,
    NetworkCreateRequest,
    NetworkResource,
)
from ..trace import traced
from ..types import gojson
from ..types.filters import Args
from ..types.timestamp import get_timestamp, parse_timestamps
from . import network as dn

if TYPE_CHECKING:
    from .core import Daemon

LIST_FILTERS = {"driver", "id", "label", "name", "scope", "type", "dangling"}
PRUNE_FILTERS = {"label", "label!", "until"}


def _endpoints(d: Daemon, n: Network) -> dict[str, EndpointResource]:
    out: dict[str, EndpointResource] = {}
    for ctr in d.containers.values():
        if not ctr.State.Running:
            continue
        for _name, ep in (ctr.NetworkSettings.Networks or {}).items():
            if ep.NetworkID == n.Id and ep.EndpointID:
                v4 = f"{ep.IPAddress}/{ep.IPPrefixLen}" if ep.IPAddress else ""
                v6 = f"{ep.GlobalIPv6Address}/{ep.GlobalIPv6PrefixLen}" if ep.GlobalIPv6Address else ""
                out[ctr.ID] = EndpointResource(Name=ctr.name_without_slash(), EndpointID=ep.EndpointID,
                                               MacAddress=ep.MacAddress, IPv4Address=v4, IPv6Address=v6)
    return out


def resource(d: Daemon, n: Network, containers: bool = True) -> NetworkResource:
    return NetworkResource(
        Name=n.Name, Id=n.Id, Created=n.Created, Scope="local", Driver=n.Driver, EnableIPv6=n.EnableIPv6,
        IPAM=n.IPAM, Internal=n.Internal, Attachable=n.Attachable, Ingress=False,
        ConfigFrom=ConfigReference(), ConfigOnly=False,
        Containers=_endpoints(d, n) if containers else {}, Options=dict(n.Options), Labels=dict(n.Labels),
    )


def list_networks(d: Daemon, filters: Args) -> list[NetworkResource]:
    filters.validate(LIST_FILTERS)
    for t in filters.get("type"):
        if t not in ("custom", "builtin"):
            raise errdefs.Untyped(f"invalid filter: 'type'='{t}'")
    dangling: bool | None = None
    if filters.contains("dangling"):
        vals = filters.get("dangling")
        if any(v not in ("true", "1", "false", "0") for v in vals):
            raise errdefs.InvalidParameter(
                "invalid value for filter 'dangling', must be \"true\" (or \"1\"), or \"false\" (or \"0\")")
        dangling = vals[0] in ("true", "1")
    store = dn.controller(d).store
    out = []
    for n in sorted(store.list(), key=lambda n: n.Created):
        if filters.contains("driver") and not filters.exact_match("driver", n.Driver):
            continue
        if filters.contains("name") and not filters.match("name", n.Name):
            continue
        if filters.contains("id") and not filters.match("id", n.Id):
            continue
        if filters.contains("label") and not filters.match_kv_list("label", n.Labels):
            continue
        if filters.contains("scope") and not filters.exact_match("scope", "local"):
            continue
        if filters.contains("type"):
            t = "builtin" if n.predefined else "custom"
            if not filters.exact_match("type", t):
                continue
        r = resource(d, n)
        if dangling is not None:
            is_dangling = not n.predefined and not r.Containers
            if is_dangling != dangling:
                continue
        r.Containers = {}
        out.append(r)
    return out


def inspect_network(d: Daemon, term: str) -> NetworkResource:
    n = dn.controller(d).store.find(term, route_style=True)
    return resource(d, n)


def create_network(d: Daemon, req: NetworkCreateRequest) -> tuple[str, str]:
    masq = (req.Options or {}).get("com.docker.network.bridge.enable_ip_masquerade", "true")
    if (req.Driver or "bridge") == "bridge" and masq in ("0", "f", "F", "FALSE", "false", "False"):
        # refused rather than ignored: netavark masquerades every bridge network
        raise errdefs.InvalidParameter("com.docker.network.bridge.enable_ip_masquerade=false is not supported")
    n, warning = dn.controller(d).store.create(req)
    try:
        dn.create_bridge(d, n)  # the bridge exists from `network create` on, as in dockerd
    except errdefs.DockerError:
        dn.controller(d).store.remove(n)
        dn.drop_bridge(d, n)
        raise
    dn.emit(d, n, "create")
    return n.Id, warning


def remove_network(d: Daemon, term: str) -> None:
    store = dn.controller(d).store
    n = store.find(term)
    if n.predefined:
        raise errdefs.Forbidden(f"{n.Name} is a pre-defined network and cannot be removed")
    if _endpoints(d, n):
        raise errdefs.Forbidden(f"error while removing network: network {n.Name} id {n.Id} has active endpoints")
    store.remove(n)
    dn.drop_bridge(d, n)
    dn.emit(d, n, "destroy")


def prune_networks(d: Daemon, filters: Args) -> list[str] | None:
    filters.validate(PRUNE_FILTERS)
    until_ns: int | None = None
    for v in filters.get("until"):
        try:
            ts = get_timestamp(v)
        except Exception as e:  # dockerd returns it untyped (500)
            raise errdefs.Untyped(str(e)) from None
        sec, nsec = parse_timestamps(ts, 0)
        until_ns = sec * 1_000_000_000 + nsec
    deleted: list[str] = []
    store = dn.controller(d).store
    for n in sorted(store.list(), key=lambda n: n.Created):
        if n.predefined or _endpoints(d, n):
            continue
        if until_ns is not None and gojson.parse_go_time(n.Created) >= until_ns:
            continue
        if not filters.match_kv_list("label", n.Labels):
            continue
        if any(_kv(f, n.Labels) for f in filters.get("label!")):
            continue
        store.remove(n)
        dn.drop_bridge(d, n)
        dn.emit(d, n, "destroy")
        deleted.append(n.Name)
    d.events.log("prune", "network", "", {"reclaimed": "0"})
    return deleted or None


def _kv(f: str, labels: dict[str, str]) -> bool:
    k, sep, v = f.partition("=")
    return k in labels and (not sep or labels[k] == v)


# -- connect / disconnect ------------------------------------------------------------------
@traced("ConnectContainerToNetwork", network_action="connect")
def connect(d: Daemon, term: str, container: str, config: NetworkEndpoint | None) -> None:
    """ConnectToNetwork: a stopped container only records the settings; a running one is
    attached now, its /etc/hosts and /etc/resolv.conf rewritten."""
    ctl = dn.controller(d)
    ctr = d.get_container(container)
    n = ctl.store.find(term)
    mode = ctr.host_config.NetworkMode or "default"
    if n.Driver == "host" or mode == "host":
        raise errdefs.InvalidParameter("container cannot be disconnected from host network or connected to host network")
    if mode.startswith("container:"):
        raise errdefs.Forbidden("container sharing network namespace with another container or host cannot be "
                                "connected to any other network")
    if mode == "none" or n.Driver == "null":
        raise errdefs.Forbidden("container cannot be connected to multiple networks with one of the networks in "
                                "private (none) mode")
    with ctl.lock:
        nets = ctr.NetworkSettings.Networks
        if nets is None:
            nets = ctr.NetworkSettings.Networks = {}
        for name, ep in nets.items():
            if name == n.Name or (ep.NetworkID and ep.NetworkID == n.Id):
                raise errdefs.Forbidden(f"endpoint with name {ctr.name_without_slash()} already exists in network "
                                        f"{n.Name}")
        ep = config or NetworkEndpoint()
        if not ctr.State.Running:
            nets[n.Name] = ep
            ctr.to_disk()
            return
        dn._attach(d, ctl, ctr, n.Name, ep, ctr.NetworkSettings.SandboxKey, publish=False)
        nets[n.Name] = ep
        dn._dns_redirect(d, ctr)
        dn.rewrite_etc_files(d, ctr)
        ctr.to_disk()


@traced("DisconnectContainerFromNetwork")
def disconnect(d: Daemon, term: str, container: str, force: bool) -> None:
    ctl = dn.controller(d)
    ctr = d.get_container(container)
    n = ctl.store.find(term)
    mode = ctr.host_config.NetworkMode or "default"
    if n.Driver == "host" and mode == "host":
        raise errdefs.InvalidParameter("container cannot be disconnected from host network or connected to host network")
    with ctl.lock:
        nets = ctr.NetworkSettings.Networks or {}
        name = next((k for k, ep in nets.items() if k == n.Name or (ep.NetworkID and ep.NetworkID == n.Id)), None)
        if name is None:
            raise errdefs.System(f"container {ctr.ID} is not connected to network {term}")
        ep = nets[name]
        if ctr.State.Running and ep.EndpointID:
            ctl.nv.teardown(ctr.ID, n.Id)
            ctl.store.release_endpoint(n, ep.EndpointID)
            dn.emit(d, n, "disconnect", ctr.ID)
        del nets[name]
        if ctr.State.Running:
            dn.rewrite_etc_files(d, ctr)
            dn._dns_redirect(d, ctr)
        ctr.to_disk()
