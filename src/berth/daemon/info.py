"""GET /info, GET /version, GET /system/df (moby/daemon/info.go, info_unix.go, disk_usage.go)."""
from __future__ import annotations

import os
import platform as _platform
import socket
import time
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Struct

from .. import ENGINE_VERSION
from ..types import gojson
from . import apparmor
from .image_distribution import distribution_service

if TYPE_CHECKING:
    from .core import Daemon
    from .sysinfo import SysInfo

GIT_COMMIT = "berth"
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


class Commit(Struct):
    ID: str
    Expected: str


class IndexInfo(Struct):
    Name: str
    Mirrors: list[str]
    Secure: bool
    Official: bool


class RegistryConfig(Struct):
    AllowNondistributableArtifactsCIDRs: list[str]
    AllowNondistributableArtifactsHostnames: list[str]
    InsecureRegistryCIDRs: list[str]
    IndexConfigs: dict[str, IndexInfo]
    Mirrors: list[str]


def _registry_config(d: Any) -> RegistryConfig:
    """registry.ServiceConfig() of the daemon's registry settings."""
    doc = distribution_service(d).registry.info()
    return RegistryConfig(
        AllowNondistributableArtifactsCIDRs=list(doc["AllowNondistributableArtifactsCIDRs"]),
        AllowNondistributableArtifactsHostnames=list(doc["AllowNondistributableArtifactsHostnames"]),
        InsecureRegistryCIDRs=list(doc["InsecureRegistryCIDRs"]),
        IndexConfigs={k: IndexInfo(**v) for k, v in doc["IndexConfigs"].items()},
        Mirrors=list(doc["Mirrors"]),
    )


class SwarmInfo(Struct):
    NodeID: str = ""
    NodeAddr: str = ""
    LocalNodeState: str = "inactive"
    ControlAvailable: bool = False
    Error: str = ""
    RemoteManagers: Any = None


class PluginsInfo(Struct):
    Volume: list[str]
    Network: list[str]
    Authorization: list[str] | None
    Log: list[str]


class Info(Struct):
    ID: str
    Containers: int
    ContainersRunning: int
    ContainersPaused: int
    ContainersStopped: int
    Images: int
    Driver: str
    DriverStatus: list[list[str]]
    Plugins: PluginsInfo
    MemoryLimit: bool
    SwapLimit: bool
    KernelMemory: bool
    KernelMemoryTCP: bool
    CpuCfsPeriod: bool
    CpuCfsQuota: bool
    CPUShares: bool
    CPUSet: bool
    PidsLimit: bool
    IPv4Forwarding: bool
    BridgeNfIptables: bool
    BridgeNfIp6tables: bool
    Debug: bool
    NFd: int
    OomKillDisable: bool
    NGoroutines: int
    SystemTime: str
    LoggingDriver: str
    CgroupDriver: str
    CgroupVersion: str
    NEventsListener: int
    KernelVersion: str
    OperatingSystem: str
    OSVersion: str
    OSType: str
    Architecture: str
    IndexServerAddress: str
    RegistryConfig: RegistryConfig
    NCPU: int
    MemTotal: int
    GenericResources: Any
    DockerRootDir: str
    HttpProxy: str
    HttpsProxy: str
    NoProxy: str
    Name: str
    Labels: list[str]
    ExperimentalBuild: bool
    ServerVersion: str
    Runtimes: dict[str, dict[str, Any]]
    DefaultRuntime: str
    Swarm: SwarmInfo
    LiveRestoreEnabled: bool
    Isolation: str
    InitBinary: str
    ContainerdCommit: Commit
    RuncCommit: Commit
    InitCommit: Commit
    SecurityOptions: list[str]
    Warnings: list[str] | None


def _os_release() -> tuple[str, str]:
    name, version = "Linux", ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                v = v.strip('"')
                if k == "PRETTY_NAME":
                    name = v
                elif k == "VERSION_ID":
                    version = v
    except OSError:
        pass
    return name, version


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _driver_status(d: Daemon) -> list[list[str]]:
    if d.layers.driver_name != "overlay2":
        return []
    return [["Backing Filesystem", _backing_fs(d.root)], ["Supports d_type", "true"],
            ["Native Overlay Diff", "true"], ["userxattr", "false"]]


def _backing_fs(path: str) -> str:
    """The filesystem type of `path`, from the longest matching mount point."""
    best, fs = "", "unknown"
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                mp = parts[1]
                if (real == mp or real.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                    best, fs = mp, parts[2]
    except OSError:
        pass
    return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(fs, fs)


def system_info(d: Daemon) -> Info:
    si = d.sysinfo
    running = sum(1 for c in d.containers.values() if c.State.Running and not c.State.Paused)
    paused = sum(1 for c in d.containers.values() if c.State.Paused)
    total = len(d.containers)
    os_name, os_version = _os_release()
    info = Info(
        ID=d.engine_id, Containers=total, ContainersRunning=running, ContainersPaused=paused,
        ContainersStopped=total - running - paused, Images=len(d.images.list_images(all=True)),
        Driver=d.layers.driver_name, DriverStatus=_driver_status(d),
        Plugins=PluginsInfo(Volume=["local"], Network=["bridge", "host", "null"], Authorization=None,
                            Log=["fluentd", "gelf", "journald", "json-file", "local", "none", "syslog"]),
        MemoryLimit=si.memory_limit, SwapLimit=si.swap_limit, KernelMemory=si.kernel_memory,
        KernelMemoryTCP=si.kernel_memory_tcp, CpuCfsPeriod=si.cpu_cfs, CpuCfsQuota=si.cpu_cfs,
        CPUShares=si.cpu_shares, CPUSet=si.cpuset, PidsLimit=si.pids_limit,
        IPv4Forwarding=not si.ipv4_forwarding_disabled_now(),
        BridgeNfIptables=_read("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
        BridgeNfIp6tables=_read("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1",
        Debug=d.config.debug, NFd=len(os.listdir("/proc/self/fd")), OomKillDisable=si.oom_kill_disable,
        NGoroutines=len(os.listdir("/proc/self/task")), SystemTime=gojson.format_go_time(time.time_ns()),
        LoggingDriver=d.config.log_driver, CgroupDriver=d.cgroup_driver, CgroupVersion="2" if si.cgroup_v2 else "1",
        NEventsListener=d.events.subscribers_count(),
        KernelVersion=os.uname().release, OperatingSystem=os_name, OSVersion=os_version, OSType="linux",
        Architecture=os.uname().machine, IndexServerAddress="https://index.docker.io/v1/",
        RegistryConfig=_registry_config(d),
        NCPU=os.cpu_count() or 1, MemTotal=_mem_total(), GenericResources=None, DockerRootDir=d.root,
        HttpProxy=os.environ.get("HTTP_PROXY", ""), HttpsProxy=os.environ.get("HTTPS_PROXY", ""),
        NoProxy=os.environ.get("NO_PROXY", ""), Name=socket.gethostname(), Labels=list(d.config.labels), ExperimentalBuild=False,
        ServerVersion=ENGINE_VERSION,
        Runtimes=_runtimes(d), DefaultRuntime=d.default_runtime,
        Swarm=SwarmInfo(), LiveRestoreEnabled=d.config.live_restore, Isolation="", InitBinary="docker-init",
        ContainerdCommit=Commit(ID="", Expected=""), RuncCommit=Commit(ID="", Expected=""),
        InitCommit=Commit(ID="", Expected=""), SecurityOptions=_security_options(d), Warnings=None,
    )
    info.Warnings = _platform_warnings(info, si) or None
    return info


def _runtimes(d: Daemon) -> dict[str, dict[str, Any]]:
    """Runtimes: a configured runtime with its path and arguments (as daemon.json gave
    them), the built-in ones by name."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(d.runtimes):
        rt = d.config.runtimes.get(name)
        if rt is None:
            out[name] = {"path": name}
        else:
            out[name] = {"path": rt.path, **({"runtimeArgs": rt.runtimeArgs} if rt.runtimeArgs else {})}
    return out


def _security_options(d: Daemon) -> list[str]:
    """fillSecurityOptions: apparmor, seccomp, then cgroupns when containers get their own."""
    out = ["name=apparmor"] if apparmor.enabled() else []
    out.append("name=seccomp,profile=default")
    si = d.sysinfo
    default_ns = d.config.default_cgroupns_mode or ("private" if si.cgroup_v2 else "host")
    if si.cgroup_namespaces and default_ns == "private":
        out.append("name=cgroupns")
    return out


def _platform_warnings(v: Info, si: SysInfo) -> list[str]:
    """fillPlatformInfo's warnings (20.10.24): what cgroup v1 cannot do is not warned
    about on v2 and the other way round; v2 names its io.max keys."""
    w: list[str] = []
    v2 = v.CgroupVersion == "2"
    if not v.MemoryLimit:
        w.append("WARNING: No memory limit support")
    if not v.SwapLimit:
        w.append("WARNING: No swap limit support")
    if not v.KernelMemoryTCP and not v2:
        w.append("WARNING: No kernel memory TCP limit support")
    if not v.OomKillDisable and not v2:
        w.append("WARNING: No oom kill disable support")
    if not v.CpuCfsQuota:
        w.append("WARNING: No cpu cfs quota support")
    if not v.CpuCfsPeriod:
        w.append("WARNING: No cpu cfs period support")
    if not v.CPUShares:
        w.append("WARNING: No cpu shares support")
    if not v.CPUSet:
        w.append("WARNING: No cpuset support")
    if not si.blkio_weight and v2:
        w.append("WARNING: No io.weight support")
    if not si.blkio_weight_device and v2:
        w.append("WARNING: No io.weight (per device) support")
    for ok, key, v1name in ((si.blkio_read_bps, "rbps", "read_bps_device"),
                            (si.blkio_write_bps, "wbps", "write_bps_device"),
                            (si.blkio_read_iops, "riops", "read_iops_device"),
                            (si.blkio_write_iops, "wiops", "write_iops_device")):
        if not ok:
            w.append(f"WARNING: No io.max ({key}) support" if v2 else f"WARNING: No blkio throttle.{v1name} support")
    if not v.IPv4Forwarding:
        w.append("WARNING: IPv4 forwarding is disabled")
    if not v.BridgeNfIptables:
        w.append("WARNING: bridge-nf-call-iptables is disabled")
    if not v.BridgeNfIp6tables:
        w.append("WARNING: bridge-nf-call-ip6tables is disabled")
    return w


class ComponentVersion(Struct):
    Name: str
    Version: str
    Details: dict[str, str] | None = None


class PlatformName(Struct):
    Name: str


class Version(Struct):
    Platform: PlatformName
    Components: list[ComponentVersion]
    Version: str
    ApiVersion: str
    MinAPIVersion: str
    GitCommit: str
    GoVersion: str
    Os: str
    Arch: str
    KernelVersion: str
    BuildTime: str


def system_version(d: Daemon, api_version: str, min_version: str) -> Version:
    kernel = os.uname().release
    py = "python" + _platform.python_version()
    return Version(
        Platform=PlatformName(Name="Berth"),
        Components=[ComponentVersion(Name="Engine", Version=ENGINE_VERSION, Details={
            "ApiVersion": api_version, "Arch": GO_ARCH, "BuildTime": "", "Experimental": "false",
            "GitCommit": GIT_COMMIT, "GoVersion": py, "KernelVersion": kernel, "MinAPIVersion": min_version,
            "Os": "linux",
        })],
        Version=ENGINE_VERSION, ApiVersion=api_version, MinAPIVersion=min_version, GitCommit=GIT_COMMIT,
        GoVersion=py, Os="linux", Arch=GO_ARCH, KernelVersion=kernel, BuildTime="",
    )


__all__ = ["system_info", "system_version", "msgspec"]
