"""The container record (moby/container/container.go).

`Container` is the shape of `config.v2.json`, field for field; the HostConfig
lives beside it in `hostconfig.json`. Runtime-only attributes (root path, host
config, lock) hang off the instance (msgspec `dict=True`) and are never encoded.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from msgspec import Struct

from ..pkg import atomicfile
from ..runtime.conmon import ContainerProcess
from ..trace import traced
from ..types import gojson
from ..types.container import Config, EndpointSettings, HostConfig
from ..volume.mounts import MountPoint
from .restartmanager import RestartManager
from .state import ZERO_TIME, State

CONFIG_FILE = "config.v2.json"
HOST_CONFIG_FILE = "hostconfig.json"


class StreamConfig(Struct):
    """Always `{}` on disk: the stream objects are not serialisable."""


class NetworkEndpoint(EndpointSettings):
    """network.EndpointSettings as stored: the API struct plus IPAMOperational."""

    IPAMOperational: bool = False


class NetworkSettings(Struct):
    """daemon/network/settings.go Settings, as stored in config.v2.json."""

    Bridge: str = ""
    SandboxID: str = ""
    HairpinMode: bool = False
    LinkLocalIPv6Address: str = ""
    LinkLocalIPv6PrefixLen: int = 0
    Networks: dict[str, NetworkEndpoint] | None = None
    Service: Any = None
    Ports: dict[str, Any] | None = None
    SandboxKey: str = ""
    SecondaryIPAddresses: list[Any] | None = None
    SecondaryIPv6Addresses: list[Any] | None = None
    IsAnonymousEndpoint: bool = False
    HasSwarmEndpoint: bool = False


class LocalLogCacheMeta(Struct):
    HaveNotifyEnabled: bool = False


class RuntimeState:
    """What a container holds only while the daemon runs (never encoded: `Container` is a
    Struct with `dict=True`, and these live in the instance dict). `Container.attach` sets
    every one of them, so none is ever missing."""

    root: str  # <data-root>/containers/<id>
    host_config: HostConfig  # hostconfig.json, beside config.v2.json
    lock: asyncio.Lock  # container.Lock: one state change at a time
    revision: int  # bumped by each checkpoint; the inspect cache keys on it
    written_host_config: bytes | None  # hostconfig.json as last written (skip an unchanged write)
    process: ContainerProcess | None  # the running task's conmon, None when stopped
    started_monotonic: float | None  # time.monotonic() at the last start (restart back-off)
    monitor_task: asyncio.Task[None] | None  # waits on the conmon for the exit
    runtime_cleanup: asyncio.Task[None] | None  # the OCI runtime's `delete` after an exit
    rootfs_mounted: bool  # the overlay is mounted; cleanup unmounts it exactly once
    removing_now: bool  # a forced removal holds it: an exit must not restart it
    exiting: bool  # exit handling under way (waiters see the container still running)
    restart_manager: RestartManager | None  # the restart policy and its back-off
    health_task: asyncio.Task[None] | None  # the HEALTHCHECK probe loop
    pre_start_hooks: list[Callable[[Container], Awaitable[None]]]  # attach's: run before the task starts
    exec_ids: list[str]  # ExecIDs of this container's live exec instances
    inspect_cache: tuple[Any, bytes] | None  # (key, encoded inspect) for the fast path
    log_pending: tuple[Any, Any] | None  # (log spec, driver) prepared for the next start
    network_pending: list[tuple[str, dict[str, Any]]] | None  # endpoints to join after the first
    next_if_index: int  # the next ethN a connect names
    created_ns: int | None  # Created parsed once (list's since/before filters, sorting)
    created_unix: int | None  # Created in seconds, for the list summary
    wait_stop: list[asyncio.Future[Any]]  # waitStop: `docker wait` futures woken at the next stop
    wait_remove: list[asyncio.Future[Any]]  # waitRemove: futures woken when it is removed

    def init_runtime_state(self, root: str, host_config: HostConfig) -> None:
        self.root = root
        self.host_config = host_config
        self.lock = asyncio.Lock()
        self.revision = 0
        self.written_host_config = None
        self.process = None
        self.started_monotonic = None
        self.monitor_task = None
        self.runtime_cleanup = None
        self.rootfs_mounted = False
        self.removing_now = False
        self.exiting = False
        self.restart_manager = None
        self.health_task = None
        self.pre_start_hooks = []
        self.exec_ids = []
        self.inspect_cache = None
        self.log_pending = None
        self.network_pending = None
        self.next_if_index = 0
        self.created_ns = None
        self.created_unix = None
        self.wait_stop = []
        self.wait_remove = []


class Container(Struct, RuntimeState, dict=True):
    """One container, as persisted in `<root>/config.v2.json`."""

    StreamConfig: StreamConfig = msgspec.field(default_factory=StreamConfig)
    State: State = msgspec.field(default_factory=State)
    ID: str = ""
    Created: str = ZERO_TIME
    Managed: bool = False
    Path: str = ""
    Args: list[str] = msgspec.field(default_factory=list)
    Config: Config = msgspec.field(default_factory=Config)
    Image: str = ""
    NetworkSettings: NetworkSettings = msgspec.field(default_factory=NetworkSettings)
    LogPath: str = ""
    Name: str = ""
    Driver: str = ""
    OS: str = "linux"
    MountLabel: str = ""
    ProcessLabel: str = ""
    RestartCount: int = 0
    HasBeenStartedBefore: bool = False
    HasBeenManuallyStopped: bool = False
    MountPoints: dict[str, MountPoint] = msgspec.field(default_factory=dict)
    SecretReferences: Any = None
    ConfigReferences: Any = None
    AppArmorProfile: str = ""
    HostnamePath: str = ""
    HostsPath: str = ""
    ShmPath: str = ""
    ResolvConfPath: str = ""
    SeccompProfile: str = ""
    NoNewPrivileges: bool = False
    LocalLogCacheMeta: LocalLogCacheMeta = msgspec.field(default_factory=LocalLogCacheMeta)

    def attach(self, root: str, host_config: HostConfig) -> Container:
        """Set the runtime-only attributes; called once after creation or load."""
        self.init_runtime_state(root, host_config)
        return self

    def name_without_slash(self) -> str:
        return self.Name[1:] if self.Name.startswith("/") else self.Name

    @traced("ToDisk", leaf=True)
    def to_disk(self) -> None:
        """Write config.v2.json and hostconfig.json atomically (container.CheckpointTo).

        Blocking: both writes and their fsyncs happen in this one call, so the daemon
        pays one thread hop for a checkpoint. The directory is synced once at the end.
        Every checkpoint starts a new `revision` (what inspect's cache is keyed on: a change
        the daemon must persist is a change inspect must show).
        """
        self.revision += 1
        config = gojson.encode_stream(self)
        host = gojson.encode_stream(self.host_config)
        files = [(CONFIG_FILE, config, 0o600)]
        # most checkpoints (start, exit) leave the host config as it was: one file less
        if host != self.written_host_config:
            files.append((HOST_CONFIG_FILE, host, 0o644))
        atomicfile.write_files(self.root, files)
        self.written_host_config = host


_container_decoder = msgspec.json.Decoder(Container)
_host_config_decoder = msgspec.json.Decoder(HostConfig)


def from_disk(root: str) -> Container:
    """Load a container from its directory (daemon/container.go load + ReadHostConfig)."""
    with open(os.path.join(root, CONFIG_FILE), "rb") as f:
        ctr = _container_decoder.decode(f.read())
    try:
        with open(os.path.join(root, HOST_CONFIG_FILE), "rb") as f:
            hc = _host_config_decoder.decode(f.read())
    except FileNotFoundError:
        hc = HostConfig()
    # InitDNSHostConfig: nil DNS lists become empty ones after a restart.
    if hc.Dns is None:
        hc.Dns = []
    if hc.DnsSearch is None:
        hc.DnsSearch = []
    if hc.DnsOptions is None:
        hc.DnsOptions = []
    if not ctr.OS:
        ctr.OS = "linux"
    return ctr.attach(root, hc)
