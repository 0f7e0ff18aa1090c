"""The daemon as its operations see it: the Daemon protocol, below every operation module
(create.py, start.py, ...), so that an operation names the daemon without importing the
class that composes the operations (daemon.py). moby's daemon is one Go struct with a
method per operation; here each operation is a function of this narrow view, and the
Daemon class (which satisfies it, checked by mypy wherever it hands itself over) calls them."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from ..config import DaemonConfig
    from ..container.container import Container
    from ..distribution.service import DistributionService
    from ..events import Events
    from ..image.service import ImageService
    from ..layer import LayerStore
    from ..logger.pump import LogPumps
    from ..logger.rotate import RotationWatcher
    from ..pkg.registrar import Registrar
    from ..pkg.truncindex import TruncIndex
    from ..volume.service import VolumeService
    from .sysinfo import SysInfo

T = TypeVar("T")


class Daemon(Protocol):
    config: DaemonConfig  # the daemon's configuration (flags and daemon.json)
    root: str  # --data-root
    repository: str  # <data-root>/containers
    tmp_dir: str  # <data-root>/tmp: spooled uploads, pulls and pushes
    containers: dict[str, Container]  # every container by ID
    names: Registrar  # container names (and link names) to IDs
    ids: TruncIndex  # ID prefixes to IDs
    sysinfo: SysInfo  # the host's cgroup capabilities
    systemd_cgroup: bool  # the systemd cgroup driver is in use
    cgroup_driver: str  # "systemd" or "cgroupfs"
    events: Events  # the event log and its subscribers
    layers: LayerStore  # layers of images and containers
    images: ImageService  # images and their references
    volumes: VolumeService  # volumes
    default_runtime: str  # the OCI runtime of a container that names none
    runtimes: set[str]  # the OCI runtimes a container may name
    shutting_down: bool  # shutdown began: an exit now is no user's stop
    log_rotation: RotationWatcher | None  # json-file/local rotation of running logs
    log_pumps: LogPumps | None  # the pumps of json-file and shipping drivers
    _distribution: DistributionService | None  # pull/push transfers
    _exec_commands: dict[str, Any]  # live exec instances by ID (exec.ExecConfig, above this module)
    _berth_network: Any  # networks, netavark, ports (network.Controller, above this module)
    _berth_bridges_task: asyncio.Task[None] | None  # the bridges made at start

    @property
    def lifecycle(self) -> Any: ...  # the OCI runtimes and the OOM watch (runtimes.Runtimes)
    @property
    def engine_id(self) -> str: ...
    @property
    def cgroup_v2(self) -> bool: ...

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T: ...
    def log_container_event(self, ctr: Container, action: str, extra: dict[str, str] | None = None) -> None: ...
    def get_container(self, prefix_or_name: str) -> Container: ...
    def register(self, ctr: Container) -> None: ...
    def unregister(self, ctr: Container) -> None: ...
    def containers_using_image(self, image_id: str) -> list[tuple[str, bool]]: ...
    def wait_condition(self, ctr: Container, condition: str) -> Any: ...
    def on_container_removed(self, ctr: Container) -> None: ...
    async def kill_for_removal(self, ctr: Container) -> None: ...
    async def start_container(self, ctr: Container, reset_restart_manager: bool) -> None: ...
    async def container_rm(self, name: str, force: bool, remove_volume: bool, remove_link: bool) -> None: ...
    async def container_pause(self, name: str) -> None: ...
    async def container_unpause(self, name: str) -> None: ...
