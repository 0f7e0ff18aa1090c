"""GET /containers/{id}/json (moby/daemon/inspect.go ContainerInspectCurrent)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

from .. import errdefs
from ..container.container import Container, NetworkEndpoint
from ..container.state import ContainerState
from ..types import gojson
from ..types.container import Config, EndpointSettings, HostConfig
from ..types.mount import MountPoint as APIMountPoint
from ..volume.mounts import inspect_mount_point
from . import links, wait

if TYPE_CHECKING:
    from .core import Daemon


class GraphDriverData(Struct):
    Data: dict[str, str] | None
    Name: str


class NetworkSettingsJSON(Struct):
    """types.NetworkSettings: NetworkSettingsBase, then DefaultNetworkSettings, then Networks."""

    Bridge: str
    SandboxID: str
    HairpinMode: bool
    LinkLocalIPv6Address: str
    LinkLocalIPv6PrefixLen: int
    Ports: dict[str, Any] | None
    SandboxKey: str
    SecondaryIPAddresses: list[Any] | None
    SecondaryIPv6Addresses: list[Any] | None
    EndpointID: str
    Gateway: str
    GlobalIPv6Address: str
    GlobalIPv6PrefixLen: int
    IPAddress: str
    IPPrefixLen: int
    IPv6Gateway: str
    MacAddress: str
    Networks: dict[str, EndpointSettings]


class ContainerJSON(Struct):
    Id: str
    Created: str
    Path: str
    Args: list[str]
    State: ContainerState
    Image: str
    ResolvConfPath: str
    HostnamePath: str
    HostsPath: str
    LogPath: str
    Name: str
    RestartCount: int
    Driver: str
    Platform: str
    MountLabel: str
    ProcessLabel: str
    AppArmorProfile: str
    ExecIDs: list[str] | None
    HostConfig: HostConfig
    GraphDriver: GraphDriverData
    SizeRw: int | UnsetType = UNSET
    SizeRootFs: int | UnsetType = UNSET
    Mounts: list[APIMountPoint] = msgspec.field(default_factory=list)
    Config: Config | None = None
    NetworkSettings: NetworkSettingsJSON | None = None


def _api_endpoint(ep: NetworkEndpoint) -> EndpointSettings:
    return EndpointSettings(
        IPAMConfig=ep.IPAMConfig, Links=ep.Links, Aliases=ep.Aliases, NetworkID=ep.NetworkID,
        EndpointID=ep.EndpointID, Gateway=ep.Gateway, IPAddress=ep.IPAddress, IPPrefixLen=ep.IPPrefixLen,
        IPv6Gateway=ep.IPv6Gateway, GlobalIPv6Address=ep.GlobalIPv6Address,
        GlobalIPv6PrefixLen=ep.GlobalIPv6PrefixLen, MacAddress=ep.MacAddress, DriverOpts=ep.DriverOpts,
    )


def api_networks(ctr: Container) -> dict[str, EndpointSettings]:
    return {k: _api_endpoint(v) for k, v in (ctr.NetworkSettings.Networks or {}).items()}


def network_settings_json(ctr: Container) -> NetworkSettingsJSON:
    ns = ctr.NetworkSettings
    nets = api_networks(ctr)
    b = nets.get("bridge") or EndpointSettings()
    return NetworkSettingsJSON(
        Bridge=ns.Bridge, SandboxID=ns.SandboxID, HairpinMode=ns.HairpinMode,
        LinkLocalIPv6Address=ns.LinkLocalIPv6Address, LinkLocalIPv6PrefixLen=ns.LinkLocalIPv6PrefixLen,
        Ports=ns.Ports if ns.Ports is not None else {}, SandboxKey=ns.SandboxKey,
        SecondaryIPAddresses=ns.SecondaryIPAddresses, SecondaryIPv6Addresses=ns.SecondaryIPv6Addresses,
        EndpointID=b.EndpointID, Gateway=b.Gateway, GlobalIPv6Address=b.GlobalIPv6Address,
        GlobalIPv6PrefixLen=b.GlobalIPv6PrefixLen, IPAddress=b.IPAddress, IPPrefixLen=b.IPPrefixLen,
        IPv6Gateway=b.IPv6Gateway, MacAddress=b.MacAddress, Networks=nets,
    )


def container_mounts(ctr: Container) -> list[APIMountPoint]:
    out = []
    for mp in ctr.MountPoints.values():
        m = inspect_mount_point(mp)
        m.normalize_omitempty()
        out.append(m)
    return out


# BERTH_CHECK_INSPECT_CACHE=1 (tests, debugging): every cache hit is compared with a fresh
# answer and a difference is an error, so a mutation that skips the checkpoint shows up.
_CHECK_CACHE = os.environ.get("BERTH_CHECK_INSPECT_CACHE") == "1"


async def container_inspect_cached(d: Daemon, name: str, size: bool) -> ContainerJSON | bytes:
    """container_inspect, answered from the last encoding while nothing it shows changed.

    Inspect is the hottest read and its answer changes rarely. The key is the container's
    checkpoint revision (Container.to_disk: every persisted change), its State as a tuple
    (changed in memory between checkpoints: Running, Pid, Health...), its exec IDs and its
    links (other containers' renames). With `size`, or while an operation holds the
    container's lock, the answer is computed and not kept.
    """
    ctr = d.get_container(name)
    if wait.exit_in_progress(ctr):
        # dockerd's inspect takes the container lock, held by handleContainerExit: the
        # answer shows the exit once it is over (no address left, the state written).
        await wait.wait_condition(ctr, wait.NOT_RUNNING)
    if size:
        return await container_inspect(d, name, size)
    if ctr.lock.locked():
        # A start, stop, update... is under way: its in-memory changes (network settings
        # first, the checkpoint last) are not all covered by the key yet.
        return await container_inspect(d, name, size)
    key = (ctr.revision, msgspec.structs.astuple(ctr.State), ctr.Name, ctr.RestartCount,
           tuple(ctr.exec_ids), links.links_for(d, ctr))
    cached = ctr.inspect_cache
    if cached is not None and cached[0] == key:
        if _CHECK_CACHE:
            fresh = gojson.encode_response(await container_inspect(d, name, size))
            if fresh != cached[1]:
                raise errdefs.System(f"stale inspect cache for {ctr.ID}:\n{cached[1]!r}\n{fresh!r}")
        return cached[1]
    # Encoded here once, as WriteJSON writes it: the API layer sends bytes as they are.
    data = gojson.encode_response(await container_inspect(d, name, size))
    ctr.inspect_cache = (key, data)
    return data


async def container_inspect(d: Daemon, name: str, size: bool) -> ContainerJSON:
    ctr = d.get_container(name)
    hc = msgspec.structs.replace(ctr.host_config)
    hc.Links = links.links_for(d, ctr)
    hc.normalize_omitempty()
    cfg = msgspec.structs.replace(ctr.Config)
    cfg.normalize_omitempty()
    rw = d.layers.get_rw_layer(ctr.ID)
    size_rw: int | UnsetType = UNSET
    size_root: int | UnsetType = UNSET
    if size:
        size_rw, size_root = await d.run_blocking(_sizes, d, ctr)
    return ContainerJSON(
        Id=ctr.ID, Created=ctr.Created, Path=ctr.Path, Args=ctr.Args,
        State=ContainerState.from_state(ctr.State), Image=ctr.Image,
        ResolvConfPath=ctr.ResolvConfPath, HostnamePath=ctr.HostnamePath, HostsPath=ctr.HostsPath,
        LogPath=ctr.LogPath, Name=ctr.Name, RestartCount=ctr.RestartCount, Driver=ctr.Driver,
        Platform=ctr.OS or "linux", MountLabel=ctr.MountLabel, ProcessLabel=ctr.ProcessLabel,
        AppArmorProfile=ctr.AppArmorProfile, ExecIDs=ctr.exec_ids or None,
        HostConfig=hc, GraphDriver=GraphDriverData(Data=rw.graph_driver_data(), Name=ctr.Driver),
        SizeRw=size_rw, SizeRootFs=size_root, Mounts=container_mounts(ctr), Config=cfg,
        NetworkSettings=network_settings_json(ctr),
    )


def _sizes(d: Daemon, ctr: Container) -> tuple[int, int]:
    """getSize: the RW layer's own bytes, and those plus the image's."""
    rw = d.layers.get_rw_layer(ctr.ID)
    size_rw = rw.diff_size()
    root = size_rw
    if ctr.Image:
        try:
            root += d.images.get_image(ctr.Image).size
        except Exception:
            pass
    return size_rw, root
