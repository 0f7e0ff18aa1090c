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


# The daemon.json keys dockerd 20.10.24 knows (findConfigurationConflicts: its flags' names,
# the names of its named options, and skipValidateOptions); cmd/dockerd/config*.go, options.go.
DOCKERD_KEYS = frozenset({
    "add-runtime", "allow-nondistributable-artifacts", "api-cors-header", "authorization-plugin",
    "authorization-plugins", "bip", "bridge", "builder", "cgroup-parent", "cluster-advertise", "cluster-store",
    "cluster-store-opt", "cluster-store-opts", "config-file", "containerd", "containerd-namespace",
    "containerd-plugins-namespace", "cpu-rt-period", "cpu-rt-runtime", "cri-containerd", "data-root", "debug",
    "default-address-pool", "default-address-pools", "default-cgroupns-mode", "default-gateway",
    "default-gateway-v6", "default-ipc-mode", "default-runtime", "default-shm-size", "default-ulimit",
    "default-ulimits", "deprecated-key-path", "dns", "dns-opt", "dns-opts", "dns-search", "exec-opt",
    "exec-opts", "exec-root", "experimental", "features", "fixed-cidr", "fixed-cidr-v6", "graph", "group",
    "help", "host", "host-gateway-ip", "hosts", "icc", "init", "init-path", "insecure-registries",
    "insecure-registry", "ip", "ip-forward", "ip-masq", "ip6tables", "iptables", "ipv6", "label", "labels",
    "live-restore", "log-driver", "log-level", "log-opt", "log-opts", "max-concurrent-downloads",
    "max-concurrent-uploads", "max-download-attempts", "metrics-addr", "mtu", "network-control-plane-mtu",
    "network-diagnostic-port", "no-new-privileges", "node-generic-resource", "node-generic-resources",
    "oom-score-adjust", "pidfile", "raw-logs", "registry-mirror", "registry-mirrors", "restart", "rootless",
    "runtimes", "seccomp-profile", "selinux-enabled", "shutdown-timeout", "storage-driver", "storage-opt",
    "storage-opts", "swarm-default-advertise-addr", "tls", "tlscacert", "tlscert", "tlskey", "tlsverify",
    "userland-proxy", "userland-proxy-path", "userns-remap", "version",
})


def config_file_keys() -> frozenset[str]:
    """The daemon.json keys Berth reads (DaemonConfig's names)."""
    return frozenset(f.encode_name for f in msgspec.structs.fields(DaemonConfig))


def check_file_keys(keys: list[str]) -> None:
    """ValueError for a key dockerd does not know (its own words), then for one it knows
    but Berth does not implement: refused, never read and ignored."""
    unknown = [k for k in keys if k not in DOCKERD_KEYS and not k.startswith("berth-")]
    if unknown:
        raise ValueError("the following directives don't match any configuration option: " + ", ".join(unknown))
    known = config_file_keys()
    unsupported = [k for k in keys if k not in known]
    if unsupported:
        raise ValueError("the following directives are not supported by Berth: " + ", ".join(unsupported))


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
    "exec_opts": "exec-opts", "cgroup_parent": "cgroup-parent", "labels": "labels",
    "shutdown_timeout": "shutdown-timeout",
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
    # --label / "labels": the engine's labels (`docker info` Labels), `key=value`
    labels: list[str] = msgspec.field(default_factory=list)
    # --shutdown-timeout / "shutdown-timeout": the least time the daemon's shutdown may take
    # before it gives up waiting for its containers (-1: wait for ever)
    shutdown_timeout: int = 15

    @property
    def pidfile_path(self) -> str:
        return self.pidfile or f"{self.exec_root}/berthd.pid"


# Runtimes the daemon knows without configuration (dockerd's builtinRuntimes; Berth's
# own are the runc and crun found on PATH).
BUILTIN_RUNTIMES = frozenset({"runc", "crun"})
STOCK_RUNTIME_NAME = "runc"


def validate_label(val: str) -> None:
    """opts.ValidateLabel (ValueError with its text)."""
    if val.count("=") < 1:
        raise ValueError(f"bad attribute format: {val}")
    lowered = val.lower()
    if lowered.startswith(("com.docker.", "io.docker.", "org.dockerproject.")):
        raise ValueError(f"label {val} is not allowed: the namespaces com.docker.*, io.docker.*, and "
                         "org.dockerproject.* are reserved for internal use")


def conflict_free_labels(labels: list[str]) -> list[str]:
    """config.GetConflictFreeLabels: one `key=value` per key (a label without `=` is
    dropped); two values for one key are refused. dockerd returns them in Go's map order
    (random); here in the order of each key's first appearance."""
    by_key: dict[str, str] = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if sep:
            old = by_key.get(key)
            if old is not None and old != value:
                raise ValueError(f"conflict labels for {key}={value} and {key}={old}")
            by_key[key] = value
    return [f"{k}={v}" for k, v in by_key.items()]


def validate(cfg: DaemonConfig, set_keys: set[str] | frozenset[str]) -> None:
    """config.Validate for what Berth reads: ValueError with dockerd's text. `set_keys` are
    the keys the configuration sets (the defaults of the others are always valid)."""
    for label in cfg.labels:
        validate_label(label)
    if cfg.max_concurrent_downloads < 0:
        raise ValueError(f"invalid max concurrent downloads: {cfg.max_concurrent_downloads}")
    if cfg.max_concurrent_uploads < 0:
        raise ValueError(f"invalid max concurrent uploads: {cfg.max_concurrent_uploads}")
    if "max-download-attempts" in set_keys and cfg.max_download_attempts <= 0:
        raise ValueError(f"invalid max download attempts: {cfg.max_download_attempts}")
    if STOCK_RUNTIME_NAME in cfg.runtimes:
        raise ValueError(f"runtime name '{STOCK_RUNTIME_NAME}' is reserved")
    if cfg.default_runtime and cfg.default_runtime not in BUILTIN_RUNTIMES and cfg.default_runtime not in cfg.runtimes:
        raise ValueError(f"specified default runtime '{cfg.default_runtime}' does not exist")
    # ValidatePlatformConfig: verifyDefaultIpcMode, verifyDefaultCgroupNsMode
    ipc = cfg.default_ipc_mode
    hint = 'use "shareable" or "private"'
    if not (ipc in ("", "host", "private", "none", "shareable") or ipc.startswith("container:")):
        raise ValueError(f"default IPC mode setting ({ipc}) is invalid; {hint}")
    if ipc not in ("", "private", "shareable"):
        raise ValueError(f'IPC mode "{ipc}" is not supported as default value; {hint}')
    if cfg.default_cgroupns_mode not in ("", "host", "private"):
        raise ValueError(f'default cgroup namespace mode ({cfg.default_cgroupns_mode}) is invalid; '
                         'use "host" or "private"')
