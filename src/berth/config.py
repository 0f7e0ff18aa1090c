"""Daemon configuration: flags and daemon.json (moby/daemon/config).

Imports nothing else from berth, so every layer may read it.
"""
from __future__ import annotations

import msgspec


class Runtime(msgspec.Struct):
    path: str
    runtimeArgs: list[str] | None = None


class Ulimit(msgspec.Struct):
    """go-units Ulimit, as a `default-ulimits` value in daemon.json."""

    Name: str = ""
    Hard: int = 0
    Soft: int = 0


# go-units ulimitNameMapping: the names ParseUlimit accepts.
ULIMIT_NAMES = frozenset({"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                          "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"})


def _parse_int64(s: str) -> int:
    """strconv.ParseInt(s, 10, 64) with its error text."""
    body = s[1:] if s[:1] in "+-" else s
    if not body or not (body.isascii() and body.isdigit()):
        raise ValueError(f'strconv.ParseInt: parsing "{s}": invalid syntax')
    v = int(s)
    if not -(1 << 63) <= v < (1 << 63):
        raise ValueError(f'strconv.ParseInt: parsing "{s}": value out of range')
    return v


def parse_ulimit(val: str) -> Ulimit:
    """go-units ParseUlimit: `name=soft[:hard]` (hard defaults to soft). ValueError with
    go-units' messages."""
    name, sep, limits = val.partition("=")
    if not sep:
        raise ValueError(f"invalid ulimit argument: {val}")
    if name not in ULIMIT_NAMES:
        raise ValueError(f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise ValueError(f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`")
    hard = _parse_int64(parts[1]) if len(parts) == 2 else None
    soft = _parse_int64(parts[0])
    if hard is None:
        hard = soft
    if hard != -1 and soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return Ulimit(Name=name, Hard=hard, Soft=soft)


class DaemonConfig(msgspec.Struct, rename={
    "hosts": "hosts", "data_root": "data-root", "exec_root": "exec-root", "pidfile": "pidfile",
    "log_level": "log-level", "storage_driver": "storage-driver", "tlsverify": "tlsverify",
    "tlscacert": "tlscacert", "tlscert": "tlscert", "tlskey": "tlskey", "default_runtime": "default-runtime",
    "runtimes": "runtimes", "log_driver": "log-driver", "log_opts": "log-opts",
    "default_shm_size": "default-shm-size", "default_ipc_mode": "default-ipc-mode",
    "default_cgroupns_mode": "default-cgroupns-mode", "live_restore": "live-restore",
    "no_new_privileges": "no-new-privileges", "group": "group", "debug": "debug",
    "bridge": "bridge", "bip": "bip", "init": "init", "experimental": "experimental",
    "default_ulimits": "default-ulimits", "metrics_addr": "metrics-addr",
    "host_gateway_ip": "host-gateway-ip",
    "ip_forward": "ip-forward", "iptables": "iptables", "ip_masq": "ip-masq", "icc": "icc",
    "userland_proxy": "userland-proxy",
    "insecure_registries": "insecure-registries", "registry_mirrors": "registry-mirrors",
    "allow_nondistributable_artifacts": "allow-nondistributable-artifacts",
    "max_concurrent_downloads": "max-concurrent-downloads", "max_concurrent_uploads": "max-concurrent-uploads",
    "max_download_attempts": "max-download-attempts", "berth_registry_mirrors": "berth-registry-mirrors",
    "berth_certs_dirs": "berth-certs-dirs", "berth_download_stall_timeout": "berth-download-stall-timeout",
    "exec_opts": "exec-opts", "cgroup_parent": "cgroup-parent",
}, forbid_unknown_fields=False):
    hosts: list[str] = msgspec.field(default_factory=list)
    data_root: str = "/var/lib/berth"
    exec_root: str = "/run/berth"
    pidfile: str = ""
    log_level: str = "info"
    storage_driver: str = ""
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    default_runtime: str = ""
    runtimes: dict[str, Runtime] = msgspec.field(default_factory=dict)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = msgspec.field(default_factory=dict)
    default_shm_size: int = 67108864
    default_ipc_mode: str = "private"
    default_cgroupns_mode: str = ""
    live_restore: bool = True
    no_new_privileges: bool = False
    group: str = "docker"
    debug: bool = False
    bridge: str = ""
    bip: str = ""
    # --host-gateway-ip: what `--add-host name:host-gateway` resolves to ("" = the
    # default bridge's gateway)
    host_gateway_ip: str = ""
    # the bridge driver's host set-up (network/hostsetup.py); Berth serves only the
    # defaults of the last four (load_config refuses the others)
    ip_forward: bool = True
    iptables: bool = True
    ip_masq: bool = True
    icc: bool = True
    userland_proxy: bool = True
    init: bool = False
    experimental: bool = False
    # --default-ulimit / "default-ulimits": applied to a container without a ulimit of
    # that name (daemon/oci_linux.go mergeUlimits), keyed by name.
    default_ulimits: dict[str, Ulimit] = msgspec.field(default_factory=dict)
    # --metrics-addr: Prometheus metrics and the operations page (berth.trace); "" = nothing listens
    metrics_addr: str = ""
    # Registries (moby/registry/config.go ServiceOptions, daemon/config CommonConfig).
    insecure_registries: list[str] = msgspec.field(default_factory=list)
    registry_mirrors: list[str] = msgspec.field(default_factory=list)
    allow_nondistributable_artifacts: list[str] = msgspec.field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 5
    # Berth's own: mirrors for registries other than docker.io (moby#18818), host → mirror URLs,
    # and the certs.d roots (dockerd's /etc/docker/certs.d, then /etc/berth/certs.d).
    berth_registry_mirrors: dict[str, list[str]] = msgspec.field(default_factory=dict)
    berth_certs_dirs: list[str] = msgspec.field(default_factory=lambda: ["/etc/docker/certs.d", "/etc/berth/certs.d"])
    # seconds a blob download may receive nothing before it is retried (dockerd waits forever)
    berth_download_stall_timeout: float = 30.0
    # --exec-opt / "exec-opts": native.cgroupdriver=systemd|cgroupfs (daemon/cgroupdriver.py)
    exec_opts: list[str] = msgspec.field(default_factory=list)
    cgroup_parent: str = ""

    @property
    def pidfile_path(self) -> str:
        return self.pidfile or f"{self.exec_root}/berthd.pid"
