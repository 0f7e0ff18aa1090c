"""The default OCI spec pieces dockerd 20.10 starts from, and the builders that adjust them.

Follows moby oci/defaults.go (`DefaultLinuxSpec`), oci/caps/ (`TweakCapabilities`,
`NormalizeLegacyCapabilities`, `GetAllCapabilities`), oci/oci.go (`SetCapabilities`),
oci/devices_linux.go (`AppendDevicePermissionsFromCgroupRules`) and the spec options in
daemon/oci_linux.go (`WithMounts`, `WithRlimits`, `WithCommonOptions` sysctls). The values are
the ones dockerd 20.10.24 actually writes to `config.json`, checked against a bundle captured
from the reference daemon (tests/unit/data/runtime_golden/): no `inheritable` capability set
(dropped in 20.10.14) and no `rw` mount option. Pure functions; the daemon composes them in
daemon/oci.py. Nothing here knows a Container.
"""
from __future__ import annotations

import os
import re
import resource
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from berth import errdefs
from berth.runtime import specs
from berth.runtime.seccomp import default_seccomp_profile, load_profile, setup_seccomp

__all__ = [
    "CAPABILITIES", "all_capabilities", "default_capabilities", "normalize_legacy_capabilities",
    "tweak_capabilities", "daemon_capabilities", "capabilities_for_user", "default_mounts",
    "default_masked_paths", "default_readonly_paths", "default_namespaces",
    "default_device_cgroup_rules", "append_device_permissions_from_cgroup_rules",
    "default_linux_spec", "with_mounts", "default_sysctls", "merge_sysctls", "rlimits",
    "daemon_hard_limits", "default_seccomp_profile", "load_profile", "setup_seccomp",
]

# Every capability by number (linux/capability.h). moby takes gocapability's list, cut at
# the kernel's /proc/sys/kernel/cap_last_cap (oci/caps/utils.go init).
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
    "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

_DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

_ALL = "ALL"


def _cap_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(CAPABILITIES) - 1


def all_capabilities(last_cap: int | None = None) -> list[str]:
    """Every capability the kernel knows, in number order (caps.GetAllCapabilities)."""
    last = _cap_last_cap() if last_cap is None else last_cap
    return list(CAPABILITIES[: last + 1])


def default_capabilities() -> list[str]:
    """dockerd's 14 default capabilities, in its order (oci/caps/defaults.go)."""
    return list(_DEFAULT_CAPABILITIES)


def normalize_legacy_capabilities(caps: Iterable[str], valid: Sequence[str] | None = None) -> list[str]:
    """Upper-case and `CAP_`-prefix CapAdd/CapDrop entries; keep `ALL`.

    Raises errdefs.InvalidParameter `unknown capability: "CAP_X"` as moby does.
    """
    valids = set(all_capabilities() if valid is None else valid)
    out: list[str] = []
    for c in caps:
        c = c.upper()
        if c == _ALL:
            out.append(c)
            continue
        if not c.startswith("CAP_"):
            c = "CAP_" + c
        if c not in valids:
            raise errdefs.InvalidParameter(f'unknown capability: "{c}"')
        out.append(c)
    return out


def tweak_capabilities(
    base: Sequence[str],
    adds: Sequence[str] | None,
    drops: Sequence[str] | None,
    privileged: bool,
    available: Sequence[str] | None = None,
) -> list[str]:
    """Apply CapAdd/CapDrop/Privileged to `base` (caps.TweakCapabilities).

    `available` is the daemon's own bounding set. Where moby grants "all capabilities"
    (privileged, or CapAdd ALL) we grant all that the daemon holds: a runtime cannot give a
    container a capability its parent lacks, and dockerd on such a host fails every
    privileged start with "unable to apply caps: operation not permitted". Explicitly named
    adds are passed through unchanged, so asking for a capability we lack fails at start as
    it does with dockerd.
    """
    everything = all_capabilities()
    if available is not None:
        held = set(available)
        everything = [c for c in everything if c in held]
    if privileged:
        return everything
    if not adds and not drops:
        return list(base)
    cap_drop = normalize_legacy_capabilities(drops or ())
    cap_add = normalize_legacy_capabilities(adds or ())
    if _ALL in cap_add:
        return [c for c in everything if c not in cap_drop]
    if _ALL in cap_drop:
        return cap_add
    return [c for c in base if c not in cap_drop] + cap_add


def daemon_capabilities(kind: str = "CapBnd", status_path: str = "/proc/self/status") -> list[str]:
    """The capabilities in one of this process's sets ("CapBnd", "CapEff", ...), by name."""
    with open(status_path, encoding="ascii") as f:
        for line in f:
            if line.startswith(kind + ":"):
                mask = int(line.split()[1], 16)
                return [name for i, name in enumerate(CAPABILITIES) if mask >> i & 1]
    return []


def capabilities_for_user(caps: Sequence[str], uid: int) -> specs.LinuxCapabilities:
    """The process capability sets for `caps` (oci.SetCapabilities, 20.10.14+).

    root gets bounding, effective and permitted; other users only bounding, "to match what
    execve does". No inheritable set: 20.10.0-20.10.13 set it, which let non-root processes
    keep file capabilities (GHSA-2mm7-x5h6-5pvq).
    """
    lst = list(caps)
    if uid == 0:
        return specs.LinuxCapabilities(bounding=lst, effective=list(lst), permitted=list(lst))
    return specs.LinuxCapabilities(bounding=lst)


def default_mounts() -> list[specs.Mount]:
    """The mounts of DefaultLinuxSpec, before `/dev/shm` gets its size (WithMounts)."""
    def m(dest: str, typ: str, src: str, *opts: str) -> specs.Mount:
        return specs.Mount(destination=dest, type=typ, source=src, options=list(opts))
    return [
        m("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        m("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        m("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666",
          "mode=0620", "gid=5"),
        m("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        m("/sys/fs/cgroup", "cgroup", "cgroup", "ro", "nosuid", "noexec", "nodev"),
        m("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        m("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777"),
    ]


def default_masked_paths() -> list[str]:
    """oci/defaults.go MaskedPaths (also stored into HostConfig.MaskedPaths at create)."""
    return ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
            "/sys/firmware"]


def default_readonly_paths() -> list[str]:
    """oci/defaults.go ReadonlyPaths."""
    return ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_namespaces() -> list[specs.LinuxNamespace]:
    return [specs.LinuxNamespace(type=t) for t in ("mount", "network", "uts", "pid", "ipc")]


def default_device_cgroup_rules() -> list[specs.LinuxDeviceCgroup]:
    """Deny all, allow null/zero/full/random/urandom/tty/ptmx... deny `c 10:229` (/dev/net/tun).

    The runtime creates the default device nodes itself; these are only the cgroup rules.
    """
    def allow(major: int, minor: int) -> specs.LinuxDeviceCgroup:
        return specs.LinuxDeviceCgroup(allow=True, type="c", major=major, minor=minor, access="rwm")
    return [
        specs.LinuxDeviceCgroup(allow=False, access="rwm"),
        allow(1, 5), allow(1, 3), allow(1, 9), allow(1, 8), allow(5, 0), allow(5, 1),
        specs.LinuxDeviceCgroup(allow=False, type="c", major=10, minor=229, access="rwm"),
    ]


_DEVICE_CGROUP_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def append_device_permissions_from_cgroup_rules(
    perms: Sequence[specs.LinuxDeviceCgroup], rules: Iterable[str]
) -> list[specs.LinuxDeviceCgroup]:
    """Add HostConfig.DeviceCgroupRules (oci/devices_linux.go); `*` becomes -1.

    Raises ValueError with moby's message; its caller (WithDevices) returns it unwrapped,
    so at start it is a 500.
    """
    out = list(perms)
    for rule in rules:
        m = _DEVICE_CGROUP_RULE.match(rule)
        if m is None:
            raise ValueError(f"invalid device cgroup rule format: '{rule}'")
        major = -1 if m.group(2) == "*" else int(m.group(2))
        minor = -1 if m.group(3) == "*" else int(m.group(3))
        out.append(specs.LinuxDeviceCgroup(
            allow=True, type=m.group(1), major=major, minor=minor, access=m.group(4)))
    return out


def default_linux_spec() -> specs.Spec:
    """A fresh DefaultLinuxSpec (oci/defaults.go), as dockerd 20.10.24 writes it.

    `process.user`, `cwd`, `root.path` and the rest are filled by the daemon's spec options.
    """
    caps = default_capabilities()
    return specs.Spec(
        oci_version=specs.VERSION,
        process=specs.Process(
            user=specs.User(uid=0, gid=0),
            cwd="/",
            capabilities=capabilities_for_user(caps, 0),
        ),
        root=specs.Root(path=""),
        mounts=default_mounts(),
        linux=specs.Linux(
            masked_paths=default_masked_paths(),
            readonly_paths=default_readonly_paths(),
            namespaces=default_namespaces(),
            resources=specs.LinuxResources(devices=default_device_cgroup_rules()),
        ),
    )


_READONLY_EXEMPT = frozenset({"/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"})


def _without(options: Sequence[str], opt: str) -> list[str]:
    return [o for o in options if o != opt]


def with_mounts(
    defaults: Sequence[specs.Mount],
    user_mounts: Sequence[specs.Mount],
    *,
    shm_size: int,
    ipc_none: bool = False,
    readonly_rootfs: bool = False,
    privileged: bool = False,
    userns_remapped: bool = False,
) -> list[specs.Mount]:
    """Merge the default mounts with the container's own (daemon/oci_linux.go WithMounts).

    `user_mounts` are the container's mounts already in OCI form and sorted (binds, tmpfs,
    network files, IPC mounts). A user mount replaces the default at its destination; a user
    `/dev` removes every default under `/dev/`; IpcMode none drops `/dev/shm`, otherwise it
    gets `size=<ShmSize>`. Read-only rootfs adds `ro` to every non-user mount except /proc and
    the /dev ones; privileged clears `ro` from /sys, and privileged or userns remapping clears
    it from the cgroup mount. (Masked/readonly paths are cleared for privileged by the caller.)
    """
    user_dests = {m.destination for m in user_mounts}
    mount_dev = "/dev" in user_dests
    out: list[specs.Mount] = []
    for m in defaults:
        if m.destination in user_dests:
            continue
        if mount_dev and m.destination.startswith("/dev/"):
            continue
        opts = list(m.options)
        if m.destination == "/dev/shm":
            if ipc_none:
                continue
            opts.append(f"size={shm_size}")
        out.append(specs.Mount(destination=m.destination, type=m.type, source=m.source, options=opts))
    out.extend(specs.Mount(destination=m.destination, type=m.type, source=m.source,
                           options=list(m.options)) for m in user_mounts)
    if readonly_rootfs:
        for m in out:
            if m.destination in _READONLY_EXEMPT or m.destination in user_dests:
                continue
            if "ro" not in m.options:
                m.options.append("ro")
    if privileged:
        for m in out:
            if m.destination == "/sys":
                m.options = _without(m.options, "ro")
    if privileged or userns_remapped:
        for m in out:
            if m.type == "cgroup":
                m.options = _without(m.options, "ro")
    return out


def _sysctl_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/proc/sys", name.replace(".", "/")))


def default_sysctls(
    private_network: bool,
    *,
    userns: bool = False,
    in_userns: bool = False,
    exists: Callable[[str], bool] = _sysctl_exists,
) -> dict[str, str]:
    """The sysctls dockerd adds for a new network namespace (WithCommonOptions).

    Unprivileged ICMP echo sockets (not under a user namespace) and binding ports below 1024
    without CAP_NET_BIND_SERVICE; each only if the kernel has the sysctl, since runc fails on
    unknown ones. Nothing for host or `container:` networking.
    """
    out: dict[str, str] = {}
    if not private_network:
        return out
    if not userns and not in_userns and exists("net.ipv4.ping_group_range"):
        out["net.ipv4.ping_group_range"] = "0 2147483647"
    if exists("net.ipv4.ip_unprivileged_port_start"):
        out["net.ipv4.ip_unprivileged_port_start"] = "0"
    return out


def merge_sysctls(*layers: Mapping[str, str]) -> dict[str, str]:
    """Later layers win (HostConfig.Sysctls over the defaults, WithSysctls); keys sorted,
    because Go's encoding/json writes map keys sorted."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    return dict(sorted(merged.items()))


class UlimitLike(Protocol):
    """go-units Ulimit as in HostConfig.Ulimits: Name, Hard, Soft."""

    Name: str
    Hard: int
    Soft: int


# Linux RLIMIT_* numbers (asm-generic/resource.h); Python's resource module lacks some.
_RLIMITS: dict[str, int] = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
    "nofile": 7, "memlock": 8, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13,
    "rtprio": 14, "rttime": 15,
}

_U64 = (1 << 64) - 1


def _u64(v: int) -> int:
    """Go's uint64(int64) conversion: -1 (unlimited) becomes 2^64-1 = RLIM_INFINITY."""
    return v & _U64


def daemon_hard_limits(effective_caps: Sequence[str] | None = None) -> dict[str, int]:
    """This process's hard rlimits by ulimit name, as the ceiling a container can get.

    Empty when we hold CAP_SYS_RESOURCE (the runtime can then raise any limit).
    """
    eff = daemon_capabilities("CapEff") if effective_caps is None else effective_caps
    if "CAP_SYS_RESOURCE" in eff:
        return {}
    return {name: _u64(resource.getrlimit(res)[1]) for name, res in _RLIMITS.items()}


def rlimits(
    ulimits: Sequence[UlimitLike],
    *,
    defaults: Mapping[str, UlimitLike] | None = None,
    hard_limits: Mapping[str, int] | None = None,
    clamp: bool = False,
) -> list[specs.POSIXRlimit]:
    """`process.rlimits` from HostConfig.Ulimits plus daemon `--default-ulimit`s (WithRlimits).

    Container ulimits come first in their order, then daemon defaults for names not set
    (mergeUlimits, matching on the defaults' keys; Go iterates that map randomly, we sort).
    With `hard_limits` (see daemon_hard_limits), a container's own hard limit above the
    daemon's is refused with errdefs.System (dockerd lets runc fail with "error setting
    rlimit type N: operation not permitted"), or lowered to it when `clamp` (soft too if
    needed). A daemon default is always lowered: the daemon's own configuration must not
    make every start fail.
    """
    merged: list[tuple[UlimitLike, bool]] = [(u, clamp) for u in ulimits]
    seen = {u.Name for u in ulimits}
    for name in sorted(defaults or {}):
        if name not in seen:
            merged.append(((defaults or {})[name], True))
    out: list[specs.POSIXRlimit] = []
    for ul, may_clamp in merged:
        soft, hard = _u64(ul.Soft), _u64(ul.Hard)
        ceiling = (hard_limits or {}).get(ul.Name.lower())
        if ceiling is not None and hard > ceiling:
            if not may_clamp:
                raise errdefs.System(
                    f"cannot set ulimit {ul.Name}: hard limit {_fmt_limit(hard)} is above the "
                    f"daemon's own hard limit {_fmt_limit(ceiling)} (operation not permitted)")
            hard, soft = ceiling, min(soft, ceiling)
        out.append(specs.POSIXRlimit(type="RLIMIT_" + ul.Name.upper(), hard=hard, soft=soft))
    return out


def _fmt_limit(v: int) -> str:
    return "unlimited" if v == _U64 else str(v)
