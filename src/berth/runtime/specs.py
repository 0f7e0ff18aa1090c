"""The OCI runtime spec as msgspec Structs (opencontainers/runtime-spec specs-go/config.go).

Only the Linux parts dockerd 20.10 fills are transcribed. Fields are declared in Go order so
that `config.json` keys come out in the order runc's and containerd's bundles have them, and
`omit_defaults=True` plays Go's `omitempty`: a pointer field that Go writes even when zero
(`cpu.shares: 0`, `oomScoreAdj: 0`) is `T | None = None` here, so 0 is written and None is not.
Python attribute names are snake_case; `rename="camel"` gives the wire names, with explicit
`name=` where specs-go's JSON tag is not plain camel case (`disableOOMKiller`, `blockIO`).
"""
from __future__ import annotations

import msgspec

VERSION = "1.0.2-dev"  # specs-go Version as vendored by moby 20.10 (and runc 1.1)


class _Base(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """camelCase wire names; omitempty for fields with a default. Fields Go always writes
    have no default (kw_only lets them sit anywhere, keeping Go order)."""


class User(_Base, kw_only=True):
    uid: int
    gid: int
    umask: int | None = None
    additional_gids: list[int] = []
    username: str = ""


class Box(_Base, kw_only=True):
    height: int = 0
    width: int = 0


class LinuxCapabilities(_Base, kw_only=True):
    bounding: list[str] = []
    effective: list[str] = []
    inheritable: list[str] = []
    permitted: list[str] = []
    ambient: list[str] = []


class POSIXRlimit(_Base, kw_only=True):
    type: str
    hard: int
    soft: int


class Process(_Base, kw_only=True):
    terminal: bool = False
    console_size: Box | None = None
    user: User
    args: list[str] = []
    command_line: str = ""
    env: list[str] = []
    cwd: str
    capabilities: LinuxCapabilities | None = None
    rlimits: list[POSIXRlimit] = []
    no_new_privileges: bool = False
    apparmor_profile: str = ""
    oom_score_adj: int | None = None
    selinux_label: str = ""


class Root(_Base, kw_only=True):
    path: str
    readonly: bool = False


class Mount(_Base, kw_only=True):
    destination: str
    type: str = ""
    source: str = ""
    options: list[str] = []


class Hook(_Base, kw_only=True):
    path: str
    args: list[str] = []
    env: list[str] = []
    timeout: int | None = None


class Hooks(_Base, kw_only=True):
    prestart: list[Hook] = []
    create_runtime: list[Hook] = []
    create_container: list[Hook] = []
    start_container: list[Hook] = []
    poststart: list[Hook] = []
    poststop: list[Hook] = []


class LinuxIDMapping(_Base, kw_only=True):
    container_id: int = msgspec.field(name="containerID")
    host_id: int = msgspec.field(name="hostID")
    size: int


class LinuxDeviceCgroup(_Base, kw_only=True):
    allow: bool
    type: str = ""
    major: int | None = None
    minor: int | None = None
    access: str = ""


class LinuxMemory(_Base, kw_only=True):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = msgspec.field(default=None, name="kernelTCP")
    swappiness: int | None = None
    disable_oom_killer: bool | None = msgspec.field(default=None, name="disableOOMKiller")
    use_hierarchy: bool | None = None


class LinuxCPU(_Base, kw_only=True):
    shares: int | None = None
    quota: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str = ""
    mems: str = ""


class LinuxPids(_Base, kw_only=True):
    limit: int


class LinuxWeightDevice(_Base, kw_only=True):
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


class LinuxThrottleDevice(_Base, kw_only=True):
    major: int
    minor: int
    rate: int


class LinuxBlockIO(_Base, kw_only=True):
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: list[LinuxWeightDevice] = []
    throttle_read_bps_device: list[LinuxThrottleDevice] = []
    throttle_write_bps_device: list[LinuxThrottleDevice] = []
    throttle_read_iops_device: list[LinuxThrottleDevice] = msgspec.field(
        default_factory=list, name="throttleReadIOPSDevice")
    throttle_write_iops_device: list[LinuxThrottleDevice] = msgspec.field(
        default_factory=list, name="throttleWriteIOPSDevice")


class LinuxHugepageLimit(_Base, kw_only=True):
    page_size: str
    limit: int


class LinuxResources(_Base, kw_only=True):
    devices: list[LinuxDeviceCgroup] = []
    memory: LinuxMemory | None = None
    cpu: LinuxCPU | None = None
    pids: LinuxPids | None = None
    block_io: LinuxBlockIO | None = msgspec.field(default=None, name="blockIO")
    hugepage_limits: list[LinuxHugepageLimit] = []
    unified: dict[str, str] = {}


class LinuxNamespace(_Base, kw_only=True):
    type: str
    path: str = ""


class LinuxDevice(_Base, kw_only=True):
    path: str
    type: str
    major: int
    minor: int
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class LinuxSeccompArg(_Base, kw_only=True):
    index: int
    value: int
    value_two: int = 0
    op: str


class LinuxSyscall(_Base, kw_only=True):
    names: list[str]
    action: str
    errno_ret: int | None = None
    args: list[LinuxSeccompArg] = []


class LinuxSeccomp(_Base, kw_only=True):
    default_action: str
    default_errno_ret: int | None = None
    architectures: list[str] = []
    flags: list[str] = []
    listener_path: str = ""
    listener_metadata: str = ""
    syscalls: list[LinuxSyscall] = []


class Linux(_Base, kw_only=True):
    uid_mappings: list[LinuxIDMapping] = msgspec.field(default_factory=list, name="uidMappings")
    gid_mappings: list[LinuxIDMapping] = msgspec.field(default_factory=list, name="gidMappings")
    sysctl: dict[str, str] = {}
    resources: LinuxResources | None = None
    cgroups_path: str = ""
    namespaces: list[LinuxNamespace] = []
    devices: list[LinuxDevice] = []
    seccomp: LinuxSeccomp | None = None
    rootfs_propagation: str = ""
    masked_paths: list[str] = []
    readonly_paths: list[str] = []
    mount_label: str = ""


class Spec(_Base, kw_only=True):
    oci_version: str = msgspec.field(name="ociVersion")
    process: Process | None = None
    root: Root | None = None
    hostname: str = ""
    mounts: list[Mount] = []
    hooks: Hooks | None = None
    annotations: dict[str, str] = {}
    linux: Linux | None = None


class State(msgspec.Struct):
    """`runc state` output (runtime-spec specs-go/state.go, plus runc's extra fields)."""

    ociVersion: str = ""  # wire name
    id: str = ""
    status: str = ""
    pid: int = 0
    bundle: str = ""
    annotations: dict[str, str] | None = None


def encode(spec: Spec) -> bytes:
    """`config.json` bytes for a bundle."""
    return msgspec.json.encode(spec)


def decode(data: bytes) -> Spec:
    return msgspec.json.decode(data, type=Spec)
