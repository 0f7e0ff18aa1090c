"""Container API types (moby/api/types/container/config.go, host_config.go,
moby/api/types/network/network.go, moby/api/types/strslice).

Fields are in Go declaration order with Go's wire names: msgspec writes them in
that order, and `docker inspect` shows the raw body, so key order is visible.
Go's `omitempty` is written as a default of `UNSET` (msgspec never writes UNSET);
`normalize_omitempty` turns empty values back into UNSET before encoding.
"""
from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

from .gojson import GoType, StrSlice
from .gostruct import Duration, GoStruct, Int64, Uint16, Uint64
from .mount import Mount


class HealthConfig(GoStruct):
    """container.HealthConfig; every field omitempty; durations in nanoseconds."""

    _go_name = "container.HealthConfig"
    Test: list[str] | None | UnsetType = UNSET
    Interval: Duration | UnsetType = UNSET
    Timeout: Duration | UnsetType = UNSET
    StartPeriod: Duration | UnsetType = UNSET
    # API 1.44 (moby 25); the routers drop it below 1.44 (api/versions.py health_start_interval).
    StartInterval: Duration | UnsetType = UNSET
    Retries: int | UnsetType = UNSET


class Config(GoStruct):
    """container.Config: the portable part of a container's configuration."""

    _go_name = "container.Config"
    _omitempty_ptr = frozenset({"Healthcheck", "StopTimeout"})
    Hostname: str = ""
    Domainname: str = ""
    User: str = ""
    AttachStdin: bool = False
    AttachStdout: bool = False
    AttachStderr: bool = False
    ExposedPorts: Annotated[dict[str, Any] | None, GoType("nat.PortSet")] | UnsetType = UNSET
    Tty: bool = False
    OpenStdin: bool = False
    StdinOnce: bool = False
    Env: list[str] | None = None
    Cmd: StrSlice = None
    Healthcheck: HealthConfig | None | UnsetType = UNSET
    ArgsEscaped: bool | UnsetType = UNSET
    Image: str = ""
    Volumes: dict[str, Any] | None = None
    WorkingDir: str = ""
    Entrypoint: StrSlice = None
    NetworkDisabled: bool | UnsetType = UNSET
    MacAddress: str | UnsetType = UNSET
    OnBuild: list[str] | None = None
    Labels: dict[str, str] | None = None
    StopSignal: str | UnsetType = UNSET
    StopTimeout: int | None | UnsetType = UNSET
    Shell: StrSlice | UnsetType = UNSET


class LogConfig(GoStruct):
    _go_name = "container.LogConfig"
    Type: str = ""
    Config: dict[str, str] | None = None


class RestartPolicy(GoStruct):
    _go_name = "container.RestartPolicy"
    Name: str = ""
    MaximumRetryCount: int = 0


class PortBinding(GoStruct):
    _go_name = "nat.PortBinding"
    HostIp: str = ""
    HostPort: str = ""


class WeightDevice(GoStruct):
    _go_name = "blkiodev.WeightDevice"
    Path: str = ""
    Weight: Uint16 = 0


class ThrottleDevice(GoStruct):
    _go_name = "blkiodev.ThrottleDevice"
    Path: str = ""
    Rate: Uint64 = 0


class DeviceMapping(GoStruct):
    _go_name = "container.DeviceMapping"
    PathOnHost: str = ""
    PathInContainer: str = ""
    CgroupPermissions: str = ""


class DeviceRequest(GoStruct):
    _go_name = "container.DeviceRequest"
    Driver: str = ""
    Count: int = 0
    DeviceIDs: list[str] | None = None
    Capabilities: list[list[str]] | None = None
    Options: dict[str, str] | None = None


class Ulimit(GoStruct):
    _go_name = "units.Ulimit"
    Name: str = ""
    Hard: Int64 = 0
    Soft: Int64 = 0


class HostConfig(GoStruct):
    """container.HostConfig with container.Resources inlined at its embedding position."""

    _go_name = "container.HostConfig"
    _omitempty_ptr = frozenset({"Init"})
    Binds: list[str] | None = None
    ContainerIDFile: str = ""
    LogConfig: LogConfig = msgspec.field(default_factory=LogConfig)
    NetworkMode: Annotated[str, GoType("container.NetworkMode", "string")] = ""
    PortBindings: Annotated[dict[str, Annotated[list[PortBinding] | None, GoType("[]nat.PortBinding")]] | None,
                            GoType("nat.PortMap")] = None
    RestartPolicy: RestartPolicy = msgspec.field(default_factory=RestartPolicy)
    AutoRemove: bool = False
    VolumeDriver: str = ""
    VolumesFrom: list[str] | None = None
    CapAdd: StrSlice = None
    CapDrop: StrSlice = None
    CgroupnsMode: Annotated[str, GoType("container.CgroupnsMode", "string")] = ""
    Dns: list[str] | None = None
    DnsOptions: list[str] | None = None
    DnsSearch: list[str] | None = None
    ExtraHosts: list[str] | None = None
    GroupAdd: list[str] | None = None
    IpcMode: Annotated[str, GoType("container.IpcMode", "string")] = ""
    Cgroup: Annotated[str, GoType("container.CgroupSpec", "string")] = ""
    Links: list[str] | None = None
    OomScoreAdj: int = 0
    PidMode: Annotated[str, GoType("container.PidMode", "string")] = ""
    Privileged: bool = False
    PublishAllPorts: bool = False
    ReadonlyRootfs: bool = False
    SecurityOpt: list[str] | None = None
    StorageOpt: dict[str, str] | None | UnsetType = UNSET
    Tmpfs: dict[str, str] | None | UnsetType = UNSET
    UTSMode: Annotated[str, GoType("container.UTSMode", "string")] = ""
    UsernsMode: Annotated[str, GoType("container.UsernsMode", "string")] = ""
    ShmSize: Int64 = 0
    Sysctls: dict[str, str] | None | UnsetType = UNSET
    Runtime: str | UnsetType = UNSET
    ConsoleSize: Annotated[list[int], GoType("[2]uint", "uint", 2)] = msgspec.field(default_factory=lambda: [0, 0])
    Isolation: Annotated[str, GoType("container.Isolation", "string")] = ""
    # Resources
    CpuShares: Int64 = 0
    Memory: Int64 = 0
    NanoCpus: Int64 = 0
    CgroupParent: str = ""
    BlkioWeight: Uint16 = 0
    BlkioWeightDevice: list[WeightDevice] | None = None
    BlkioDeviceReadBps: list[ThrottleDevice] | None = None
    BlkioDeviceWriteBps: list[ThrottleDevice] | None = None
    BlkioDeviceReadIOps: list[ThrottleDevice] | None = None
    BlkioDeviceWriteIOps: list[ThrottleDevice] | None = None
    CpuPeriod: Int64 = 0
    CpuQuota: Int64 = 0
    CpuRealtimePeriod: Int64 = 0
    CpuRealtimeRuntime: Int64 = 0
    CpusetCpus: str = ""
    CpusetMems: str = ""
    Devices: list[DeviceMapping] | None = None
    DeviceCgroupRules: list[str] | None = None
    DeviceRequests: list[DeviceRequest] | None = None
    KernelMemory: Int64 = 0
    KernelMemoryTCP: Int64 = 0
    MemoryReservation: Int64 = 0
    MemorySwap: Int64 = 0
    MemorySwappiness: Int64 | None = None
    OomKillDisable: bool | None = None
    PidsLimit: Int64 | None = None
    Ulimits: list[Ulimit] | None = None
    CpuCount: Int64 = 0
    CpuPercent: Int64 = 0
    IOMaximumIOps: Uint64 = 0
    IOMaximumBandwidth: Uint64 = 0
    # end of Resources
    Mounts: list[Mount] | None | UnsetType = UNSET
    MaskedPaths: list[str] | None = None
    ReadonlyPaths: list[str] | None = None
    Init: bool | None | UnsetType = UNSET


class EndpointIPAMConfig(GoStruct):
    _go_name = "network.EndpointIPAMConfig"
    IPv4Address: str | UnsetType = UNSET
    IPv6Address: str | UnsetType = UNSET
    LinkLocalIPs: list[str] | None | UnsetType = UNSET


class EndpointSettings(GoStruct):
    """network.EndpointSettings, as the API and inspect show it."""

    _go_name = "network.EndpointSettings"
    IPAMConfig: EndpointIPAMConfig | None = None
    Links: list[str] | None = None
    Aliases: list[str] | None = None
    NetworkID: str = ""
    EndpointID: str = ""
    Gateway: str = ""
    IPAddress: str = ""
    IPPrefixLen: int = 0
    IPv6Gateway: str = ""
    GlobalIPv6Address: str = ""
    GlobalIPv6PrefixLen: int = 0
    MacAddress: str = ""
    DriverOpts: dict[str, str] | None = None


class NetworkingConfig(GoStruct):
    _go_name = "network.NetworkingConfig"
    EndpointsConfig: dict[str, EndpointSettings | None] | None = None




class ContainerCreateCreatedBody(Struct):
    Id: str
    Warnings: list[str]


# -- structs embedding container.Resources (last: the type hints need every class above) --
def resources_fields() -> list[tuple[str, Any, Any]]:
    """container.Resources as (name, type, default) in Go order: the run of HostConfig
    between `# Resources` and `# end of Resources` above, for structs that embed it too
    (container.UpdateConfig)."""
    names = HostConfig.__struct_fields__
    first, last = names.index("CpuShares"), names.index("IOMaximumBandwidth")
    hints = typing.get_type_hints(HostConfig, include_extras=True)
    n_no_default = len(names) - len(HostConfig.__struct_defaults__)
    out = []
    for i in range(first, last + 1):
        out.append((names[i], hints[names[i]], HostConfig.__struct_defaults__[i - n_no_default]))
    return out


if TYPE_CHECKING:
    # For the type checker: HostConfig has every field of UpdateConfig (the Resources and
    # RestartPolicy), with the same types.
    UpdateConfig = HostConfig
else:
    UpdateConfig = msgspec.defstruct(
        "UpdateConfig",
        [*resources_fields(), ("RestartPolicy", RestartPolicy, msgspec.field(default_factory=RestartPolicy))],
        bases=(GoStruct,),
        module=__name__,
        namespace={
            "_go_name": "container.UpdateConfig",
            "__doc__": "container.UpdateConfig: Resources (embedded, Go order, the same fields as "
                       "HostConfig's) and RestartPolicy. Its own type, not HostConfig, so that decode "
                       "errors name `UpdateConfig.<field>` and the non-resource HostConfig keys of a "
                       "body are ignored as Go ignores them.",
        },
    )
