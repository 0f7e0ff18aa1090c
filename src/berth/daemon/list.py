"""GET /containers/json (moby/daemon/list.go, v20.10)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

from .. import errdefs
from ..container.container import Container
from ..container.state import VALID_HEALTH, VALID_STATES, state_status
from ..types import gojson
from ..types.container import EndpointIPAMConfig, EndpointSettings
from ..types.filters import Args, invalid_filter
from ..types.mount import MountPoint as APIMountPoint
from .inspect import _sizes, container_mounts

if TYPE_CHECKING:
    from .core import Daemon

ACCEPTED_FILTERS = {
    "ancestor", "before", "exited", "health", "id", "label", "name", "status", "since", "volume",
    "network", "is-task", "publish", "expose", "isolation",
}


class Port(Struct, omit_defaults=True):
    IP: str = ""
    PrivatePort: int = 0
    PublicPort: int = 0
    Type: str = ""


class SummaryHostConfig(Struct):
    NetworkMode: str


class SummaryNetworkSettings(Struct):
    Networks: dict[str, EndpointSettings]


class ContainerSummary(Struct):
    Id: str
    Names: list[str]
    Image: str
    ImageID: str
    Command: str
    Created: int
    Ports: list[Port]
    SizeRw: int | UnsetType = UNSET
    SizeRootFs: int | UnsetType = UNSET
    Labels: dict[str, str] | None = None
    State: str = ""
    Status: str = ""
    HostConfig: SummaryHostConfig | None = None
    NetworkSettings: SummaryNetworkSettings | None = None
    Mounts: list[APIMountPoint] = msgspec.field(default_factory=list)


def _parse_port(p: str, kind: str, raw: str) -> int:
    if not (p.isascii() and p.isdigit()) or int(p) > 65535:
        raise errdefs.Untyped(f'error while looking up for {kind} {raw}: strconv.ParseUint: parsing "{p}": invalid syntax')
    return int(p)


def _port_set(values: list[str], kind: str) -> set[tuple[int, str]]:
    out: set[tuple[int, str]] = set()
    for raw in values:
        port, _, proto = raw.partition("/")
        proto = proto or "tcp"
        lo, sep, hi = port.partition("-")
        start = _parse_port(lo, kind, raw)
        end = _parse_port(hi, kind, raw) if sep else start
        for n in range(start, end + 1):
            out.add((n, proto))
    return out


async def containers(d: Daemon, all_: bool, limit: int, size: bool, filters: Args) -> list[ContainerSummary]:
    filters.validate(ACCEPTED_FILTERS)
    exited: list[int] = []
    for v in filters.get("exited"):
        try:
            exited.append(int(v))
        except ValueError:
            raise errdefs.Untyped(f'strconv.Atoi: parsing "{v}": invalid syntax') from None
    for v in filters.get("status"):
        if v not in VALID_STATES:
            raise errdefs.InvalidParameter(f"Invalid filter 'status={v}'")
        all_ = True
    for v in filters.get("health"):
        if v not in VALID_HEALTH:
            raise errdefs.InvalidParameter(f"Unrecognised filter value for health: {v}")
    is_task = filters.get_bool_or_default("is-task", False) if filters.contains("is-task") else None
    before = since = None
    for v in filters.get("before"):
        before = _lookup(d, v)
    for v in filters.get("since"):
        since = _lookup(d, v)
    publish = _port_set(filters.get("publish"), "publish") if filters.contains("publish") else None
    expose = _port_set(filters.get("expose"), "expose") if filters.contains("expose") else None
    ancestors: set[str] | None = None
    if filters.contains("ancestor"):
        ancestors = set()
        for a in filters.get("ancestor"):
            try:
                ancestors.add(d.images.get_image(a).id)
            except errdefs.DockerError:
                continue
    names = d.names.all_names()
    image_id = _image_ids(d)
    out: list[ContainerSummary] = []
    now = time.time_ns()
    ordered = sorted(d.containers.values(), key=_created_unix_ns, reverse=True)
    before_seen = before is None
    for ctr in ordered:
        st = ctr.State
        if not st.Running and not all_ and limit <= 0 and before is None and since is None:
            continue
        # The container's own name, with and without its leading "/" (`^web$` is the usual
        # idiom); never its link names (/parent/alias), as in dockerd's includeContainerInList.
        if filters.contains("name") and not (filters.match("name", ctr.Name)
                                             or filters.match("name", ctr.Name.lstrip("/"))):
            continue
        if not filters.match("id", ctr.ID):
            continue
        if not filters.match_kv_list("label", ctr.Config.Labels):
            continue
        if filters.contains("isolation") and not filters.exact_match("isolation", ctr.host_config.Isolation or "default"):
            continue
        if not before_seen:
            if before is None or ctr.ID == before.ID:
                before_seen = True
            continue
        if since is not None and ctr.ID == since.ID:
            break
        if limit > 0 and len(out) == limit:
            break
        # only containers that have run can have exited (StartedAt non-zero)
        if exited and (st.Running or st.ExitCode not in exited or st.StartedAt == gojson.GO_ZERO_TIME):
            continue
        if not filters.match("status", st.state_string()):
            continue
        if filters.contains("health"):
            h = st.Health.Status if st.Health is not None else "none"
            if not filters.exact_match("health", h):
                continue
        if ancestors is not None and ctr.Image not in ancestors:
            continue
        if is_task is not None and is_task:
            continue
        if filters.contains("volume") and not _match_volume(filters, ctr):
            continue
        if filters.contains("network") and not any(
            filters.exact_match("network", n) or filters.exact_match("network", ep.NetworkID)
            for n, ep in (ctr.NetworkSettings.Networks or {}).items()
        ):
            continue
        if (publish is not None or expose is not None) and not _port_matches(ctr, publish, expose):
            continue
        out.append(await _transform(d, ctr, names, size, now, image_id))
    return out


def _created_unix_ns(ctr: Container) -> int:
    cached = ctr.created_ns
    if cached is None:
        cached = ctr.created_ns = gojson.parse_go_time(ctr.Created)
    return cached


def _lookup(d: Daemon, v: str) -> Container:
    try:
        return d.get_container(v)
    except errdefs.NotFound:
        raise errdefs.Untyped(f"no such container {v}") from None


def _match_volume(filters: Args, ctr: Container) -> bool:
    for mp in ctr.MountPoints.values():
        if filters.exact_match("volume", mp.Name) or filters.exact_match("volume", mp.Destination) or (
            mp.Source and filters.exact_match("volume", mp.Source)
        ):
            return True
    return False


def _port_matches(ctr: Container, publish: set[tuple[int, str]] | None,
                  expose: set[tuple[int, str]] | None) -> bool:
    """list.go: the snapshot's Ports (from NetworkSettings.Ports, empty until started)
    must hold a published port in `publish` or a container port in `expose`."""
    return any((p.PublicPort, p.Type) in (publish or ()) or (p.PrivatePort, p.Type) in (expose or ()) for p in _summary_ports(ctr))


def _command(ctr: Container) -> str:
    if ctr.Args:
        return ctr.Path + " " + " ".join(f"'{a}'" if " " in a else a for a in ctr.Args)
    return ctr.Path


def _summary_ports(ctr: Container) -> list[Port]:
    out = []
    for port, bindings in (ctr.NetworkSettings.Ports or {}).items():
        num, _, proto = port.partition("/")
        p = int(num) if num.isdigit() else 0
        if not bindings:
            out.append(Port(PrivatePort=p, Type=proto))
            continue
        for b in bindings:
            hp = b.get("HostPort", "") if isinstance(b, dict) else ""
            out.append(Port(IP=b.get("HostIp", "") if isinstance(b, dict) else "", PrivatePort=p,
                            PublicPort=int(hp) if hp.isdigit() else 0, Type=proto))
    return out


def _image_ids(d: Daemon) -> Callable[[str], str | None]:
    """Resolve image references to IDs, memoised for one listing: thousands of
    containers usually name a handful of images."""
    memo: dict[str, str | None] = {}

    def resolve(ref: str) -> str | None:
        if ref not in memo:
            try:
                memo[ref] = d.images.get_image(ref).id
            except errdefs.DockerError:
                memo[ref] = None
        return memo[ref]

    return resolve


def _created_unix(ctr: Container) -> int:
    """Created as Unix seconds, parsed once per container."""
    cached = ctr.created_unix
    if cached is None:
        cached = ctr.created_unix = _created_unix_ns(ctr) // 1_000_000_000
    return cached


async def _transform(d: Daemon, ctr: Container, names: dict[str, list[str]], size: bool, now: int,
                     image_id: Callable[[str], str | None]) -> ContainerSummary:
    image = ctr.Config.Image
    if image != ctr.Image and image_id(image) != ctr.Image:
        image = ctr.Image
    nets: dict[str, EndpointSettings] = {}
    for name, ep in (ctr.NetworkSettings.Networks or {}).items():
        ipam = None
        if ep.IPAMConfig is not None:
            ipam = EndpointIPAMConfig(IPv4Address=ep.IPAMConfig.IPv4Address, IPv6Address=ep.IPAMConfig.IPv6Address)
        nets[name] = EndpointSettings(
            IPAMConfig=ipam, NetworkID=ep.NetworkID, EndpointID=ep.EndpointID, Gateway=ep.Gateway,
            IPAddress=ep.IPAddress, IPPrefixLen=ep.IPPrefixLen, IPv6Gateway=ep.IPv6Gateway,
            GlobalIPv6Address=ep.GlobalIPv6Address, GlobalIPv6PrefixLen=ep.GlobalIPv6PrefixLen,
            MacAddress=ep.MacAddress,
        )
    s = ContainerSummary(
        Id=ctr.ID, Names=list(names.get(ctr.ID) or []), Image=image, ImageID=ctr.Image, Command=_command(ctr),
        Created=_created_unix(ctr), Ports=_summary_ports(ctr),
        Labels=ctr.Config.Labels, State=ctr.State.state_string(),
        Status=state_status(ctr.State, now, gojson.parse_go_time),
        HostConfig=SummaryHostConfig(NetworkMode=ctr.host_config.NetworkMode),
        NetworkSettings=SummaryNetworkSettings(Networks=nets), Mounts=container_mounts(ctr),
    )
    if size:
        size_rw, size_root = await d.run_blocking(_sizes, d, ctr)
        # types.Container: both are `json:",omitempty"`
        if size_rw:
            s.SizeRw = size_rw
        if size_root:
            s.SizeRootFs = size_root
    return s


__all__ = ["containers", "invalid_filter", "Any"]
