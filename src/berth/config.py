"""Daemon configuration: flags and daemon.json (moby/daemon/config).

Imports nothing else from berth, so every layer may read it.
"""
from __future__ import annotations

import msgspec


class Runtime(msgspec.Struct):
    path: str
    runtimeArgs: list[str] | None = None


class DaemonConfig(msgspec.Struct, rename={
    "hosts": "hosts", "data_root": "data-root", "exec_root": "exec-root", "pidfile": "pidfile",
    "log_level": "log-level", "storage_driver": "storage-driver", "tlsverify": "tlsverify",
    "tlscacert": "tlscacert", "tlscert": "tlscert", "tlskey": "tlskey", "default_runtime": "default-runtime",
    "runtimes": "runtimes", "log_driver": "log-driver", "log_opts": "log-opts",
    "default_shm_size": "default-shm-size", "default_ipc_mode": "default-ipc-mode",
    "default_cgroupns_mode": "default-cgroupns-mode", "live_restore": "live-restore",
    "no_new_privileges": "no-new-privileges", "group": "group", "debug": "debug",
    "bridge": "bridge", "bip": "bip", "init": "init", "experimental": "experimental",
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
    init: bool = False
    experimental: bool = False

    @property
    def pidfile_path(self) -> str:
        return self.pidfile or f"{self.exec_root}/berthd.pid"
