"""The Daemon: owns the stores and services; start (restore) and shutdown
(moby/daemon/daemon.go). Operations live in their own modules.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .. import errdefs, trace
from ..config import DaemonConfig
from ..container.container import Container, NetworkEndpoint, from_disk
from ..distribution.service import clean_temp
from ..events import Events
from ..image.service import ImageService
from ..layer import LayerStore
from ..logger.rotate import RotationWatcher
from ..network.types import NetworkCreateRequest, NetworkResource
from ..pkg import atomicfile
from ..pkg.registrar import Registrar
from ..pkg.truncindex import AmbiguousPrefix, TruncIndex
from ..types.filters import Args
from ..volume.service import VolumeService
from . import apparmor, cgroupdriver, sysinfo
from . import archive as _archive
from . import attach as _attach
from . import changes as _changes
from . import commit as _commit
from . import create as _create
from . import delete as _delete
from . import disk_usage as _disk_usage
from . import exec as _exec
from . import image_distribution as _image_distribution
from . import info as _info
from . import inspect as _inspect
from . import inspect_legacy as _inspect_legacy
from . import kill as _kill
from . import list as _list
from . import logs as _logs
from . import monitor as _monitor
from . import names as _names
from . import network_ops as _network_ops
from . import pause as _pause
from . import prune as _prune
from . import rename as _rename
from . import restart as _restart
from . import runtimes as _runtimes
from . import start as _start
from . import stats as _stats
from . import stop as _stop
from . import top as _top
from . import update as _update
from . import wait as _wait

if TYPE_CHECKING:
    from ..distribution.service import DistributionService
    from ..logger.pump import LogPumps
    from .exec import ExecConfig
    from .network import Controller
    from .runtimes import Runtimes

log = logging.getLogger("berth.daemon")
T = TypeVar("T")


class Daemon:
    """State owner. Nobody else mutates the container map, names or ID index."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.root = config.data_root
        self.repository = os.path.join(self.root, "containers")
        self.tmp_dir = os.path.join(self.root, "tmp")
        for d in (self.root, self.repository, self.tmp_dir):
            os.makedirs(d, mode=0o710 if d == self.root else 0o700, exist_ok=True)
        clean_temp(self.tmp_dir)  # blobs of pulls and pushes a stopped daemon left (prepareTempDir)
        self.containers: dict[str, Container] = {}
        self.names = Registrar()
        self.ids = TruncIndex()
        self.sysinfo = sysinfo.probe()
        # The cgroup driver (daemon/cgroupdriver.py): systemd by default on a v2 host run by systemd.
        self.systemd_cgroup = cgroupdriver.using_systemd(config.exec_opts, self.sysinfo.cgroup_v2)
        self.cgroup_driver = cgroupdriver.SYSTEMD if self.systemd_cgroup else cgroupdriver.CGROUPFS
        self.events = Events()
        driver = config.storage_driver or "overlay2"
        self.layers = LayerStore(os.path.join(self.root, "image", driver, "layerdb"), driver, graph_root=self.root)
        self.images = ImageService(os.path.join(self.root, "image", driver), self.layers, emit=self._image_event,
                                   tmp_dir=self.tmp_dir)
        self.volumes = VolumeService(os.path.join(self.root, "volumes"), emit=self._volume_event)
        self.default_runtime = config.default_runtime or "runc"
        self.runtimes: set[str] = {"runc", "crun", *config.runtimes.keys()}
        # Blocking disk work goes here, bounded, as trio's to_thread limiter.
        # What a step sends here runs in its context: the steps it runs there nest under it.
        self.executor = trace.ContextExecutor(max_workers=16, thread_name_prefix="berth-io")
        # Services made on first use or by init_lifecycle; None until then.
        self.shutting_down = False  # shutdown_lifecycle began: an exit now is no user's stop
        self._lifecycle: Runtimes | None = None  # the OCI runtimes and the OOM watch (lifecycle)
        self.log_rotation: RotationWatcher | None = None  # json-file/local rotation of running logs
        self.log_pumps: LogPumps | None = None  # the pumps of json-file and shipping drivers (logs.pumps)
        self._distribution: DistributionService | None = None  # pull/push transfers (distribution_service)
        self._exec_commands: dict[str, ExecConfig] = {}  # execCommands: live exec instances by ID
        self._berth_network: Controller | None = None  # networks, netavark, ports (network.controller)
        self._berth_bridges_task: asyncio.Task[None] | None = None  # the bridges made at start

    # -- plumbing -----------------------------------------------------------------
    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking `fn` on the I/O pool; the awaiting task waits for it even when
        cancelled, so an undo never races the work it undoes."""
        fut = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            await asyncio.wait([fut])
            raise

    def _image_event(self, action: str, image_id: str, attributes: dict[str, str]) -> None:
        self.events.log(action, "image", image_id, attributes)

    def _volume_event(self, action: str, name: str, attributes: dict[str, str]) -> None:
        self.events.log(action, "volume", name, attributes)

    def log_container_event(self, ctr: Container, action: str, extra: dict[str, str] | None = None) -> None:
        """LogContainerEventWithAttributes: labels, then image, then name, then extras."""
        attrs: dict[str, str] = dict(ctr.Config.Labels or {})
        if ctr.Config.Image:
            attrs["image"] = ctr.Config.Image
        attrs["name"] = ctr.name_without_slash()
        if extra:
            attrs.update(extra)
        self.events.log(action, "container", ctr.ID, attrs)

    # -- lookup ---------------------------------------------------------------------
    @trace.touches
    def get_container(self, prefix_or_name: str) -> Container:
        """GetContainer: full ID, then exact name, then unique ID prefix."""
        if not prefix_or_name:
            raise errdefs.InvalidParameter('invalid name or ID supplied: ""')
        ctr = self.containers.get(prefix_or_name)
        if ctr is not None:
            return ctr
        name = prefix_or_name if prefix_or_name.startswith("/") else "/" + prefix_or_name
        id_ = self.names.get(name)
        if id_ is not None and id_ in self.containers:
            return self.containers[id_]
        try:
            id_ = self.ids.get(prefix_or_name)
        except AmbiguousPrefix:
            raise errdefs.Untyped(f"Multiple IDs found with provided prefix: {prefix_or_name}") from None
        if id_ is None or id_ not in self.containers:
            raise errdefs.NotFound(f"No such container: {prefix_or_name}")
        return self.containers[id_]

    @trace.traced("Register", leaf=True)
    def register(self, ctr: Container) -> None:
        """Make a container visible: in the map and the ID index (its name is reserved already)."""
        trace.touch(ctr.ID)
        self.containers[ctr.ID] = ctr
        self.ids.add(ctr.ID)

    def unregister(self, ctr: Container) -> None:
        self.containers.pop(ctr.ID, None)
        self.ids.delete(ctr.ID)
        # cleanupContainer: linkIndex.delete gives the links this container is the
        # parent of, and their `/parent/alias` names are released with its own.
        for link_name in self.names.children(ctr.Name):
            self.names.release(link_name)
        self.names.delete(ctr.ID)

    def containers_using_image(self, image_id: str) -> list[tuple[str, bool]]:
        """(container ID, running) of each container made from the image, for image delete."""
        return [(c.ID, c.State.Running) for c in self.containers.values() if c.Image == image_id]

    # -- start and stop -------------------------------------------------------------
    async def restore(self) -> None:
        """Load every container from disk (daemon.go restore), in one thread hop."""
        self.events.bind_loop()
        loaded = await self.run_blocking(self._load_all)
        for ctr in loaded:
            name = ctr.Name
            if not name:
                ctr.Name = _names.generate_new_name(self, ctr.ID)
            else:
                try:
                    self.names.reserve(name, ctr.ID)
                except Exception:
                    log.error("container %s: name %s already in use; skipped", ctr.ID, name)
                    continue
            if not ctr.host_config.LogConfig.Type:
                ctr.host_config.LogConfig.Type = self.config.log_driver
            self.register(ctr)
            for mp in ctr.MountPoints.values():
                if mp.Type == "volume" and mp.Name:
                    try:
                        self.volumes.acquire(mp.Name, ctr.ID)
                    except errdefs.DockerError:
                        log.warning("container %s: volume %s is missing", ctr.ID, mp.Name)

    def _load_all(self) -> list[Container]:
        out = []
        for entry in os.listdir(self.repository):
            root = os.path.join(self.repository, entry)
            if not os.path.exists(os.path.join(root, "config.v2.json")):
                # A create that died before its first write: nothing was acknowledged.
                log.info("removing incomplete container directory %s", root)
                shutil.rmtree(root, ignore_errors=True)
                try:
                    self.layers.remove_rw_layer(entry)
                except Exception:
                    pass
                continue
            try:
                ctr = from_disk(root)
            except Exception as e:
                log.error("failed to load container %s: %s", entry, e)
                continue
            if entry != ctr.ID:
                log.error("Container %s is stored at %s", ctr.ID, entry)
                continue
            if ctr.Driver != self.layers.driver_name:
                log.error("container %s uses storage driver %s; skipped", ctr.ID, ctr.Driver)
                continue
            out.append(ctr)
        return out

    async def shutdown(self) -> None:
        self.executor.shutdown(wait=True)
        self.layers.close()

    # -- the backend the API routers call (api/backend.py) ---------------------------
    @property
    def cgroup_v2(self) -> bool:
        return self.sysinfo.cgroup_v2

    @property
    def engine_id(self) -> str:
        """A stable ID for /info, made once per data root (dockerd's engine-id file)."""
        path = os.path.join(self.root, "engine-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            value = str(uuid.uuid4())
            atomicfile.write_file(path, value.encode(), 0o600)
            return value

    async def container_create(self, params: Any) -> Any:
        return await _create.container_create(self, params)

    async def list_containers(self, all_: bool, limit: int, size: bool, filters: Any) -> list[Any]:
        return await _list.containers(self, all_, limit, size, filters)

    async def container_inspect(self, name: str, size: bool) -> Any:
        return await _inspect.container_inspect_cached(self, name, size)

    async def container_inspect_legacy(self, name: str, pre120: bool) -> bytes:
        return await _inspect_legacy.container_inspect_legacy(self, name, pre120)

    async def container_rm(self, name: str, force: bool, remove_volume: bool, remove_link: bool) -> None:
        await _delete.container_rm(self, name, force, remove_volume, remove_link)

    async def container_rename(self, old: str, new: str) -> None:
        await _rename.container_rename(self, old, new)

    async def containers_prune(self, filters: Any) -> tuple[list[str], int]:
        return await _prune.containers_prune(self, filters)

    async def system_info(self) -> Any:
        return await self.run_blocking(_info.system_info, self)

    async def system_version(self, api_version: str, min_version: str) -> Any:
        return _info.system_version(self, api_version, min_version)

    async def system_disk_usage(self, anonymous_label: bool = False) -> Any:
        return await _disk_usage.system_disk_usage(self, anonymous_label)

    # ---- networks (daemon/network_ops.py, blocking: on the I/O pool) ----
    async def network_list(self, filters: Args) -> list[NetworkResource]:
        return await self.run_blocking(_network_ops.list_networks, self, filters)

    async def network_inspect(self, term: str) -> NetworkResource:
        return await self.run_blocking(_network_ops.inspect_network, self, term)

    async def network_create(self, req: NetworkCreateRequest) -> tuple[str, str]:
        return await self.run_blocking(_network_ops.create_network, self, req)

    async def network_connect(self, term: str, container: str, config: NetworkEndpoint | None) -> None:
        await self.run_blocking(_network_ops.connect, self, term, container, config)

    async def network_disconnect(self, term: str, container: str, force: bool) -> None:
        await self.run_blocking(_network_ops.disconnect, self, term, container, force)

    async def network_remove(self, term: str) -> None:
        await self.run_blocking(_network_ops.remove_network, self, term)

    async def networks_prune(self, filters: Args) -> list[str] | None:
        return await self.run_blocking(_network_ops.prune_networks, self, filters)

    # ---- registries: pull, push, login, search (daemon/image_distribution.py) ----
    async def pull_image(self, image: str, tag: str, platform: str, auth: Any, meta_headers: dict[str, str],
                         upstream_ua: str, write: Any) -> None:
        await _image_distribution.pull_image(self, image, tag, platform, auth, meta_headers, upstream_ua, write)

    async def push_image(self, image: str, tag: str, auth: Any, meta_headers: dict[str, str], upstream_ua: str,
                         write: Any) -> None:
        await _image_distribution.push_image(self, image, tag, auth, meta_headers, upstream_ua, write)

    async def auth(self, auth: Any, upstream_ua: str) -> tuple[str, str]:
        return await _image_distribution.authenticate_to_registry(self, auth, upstream_ua)

    async def distribution_inspect(self, name: str, auth: Any, meta_headers: dict[str, str],
                                   upstream_ua: str) -> dict[str, Any]:
        return await _image_distribution.get_repository_info(self, name, auth, meta_headers, upstream_ua)

    async def search_registry(self, term: str, limit: int | None, filters: Any, auth: Any,
                              meta_headers: dict[str, str], upstream_ua: str) -> list[dict[str, Any]]:
        return await _image_distribution.search_registry_for_images(self, term, limit, filters, auth, meta_headers, upstream_ua)

    async def kill_for_removal(self, ctr: Container) -> None:
        """Kill a running container for a forced removal; the caller holds ctr.lock."""
        await _kill.kill_for_removal(self, ctr)

    def on_container_removed(self, ctr: Container) -> None:
        """Wake the `removed` waiters (wait endpoint)."""
        _wait.notify_removed(ctr)

    # ==== LIFECYCLE helper: runtimes, start/stop/kill/restart/pause/wait/logs =========
    # (daemon/start.py, stop.py, kill.py, restart.py, pause.py, wait.py, logs.py, monitor.py)
    @property
    def lifecycle(self) -> Any:
        """The daemon's Runtimes (daemon/runtimes.py), made on first use."""
        rts = self._lifecycle
        if rts is None:
            rts = self._lifecycle = _runtimes.Runtimes(self)
        return rts

    async def init_lifecycle(self) -> None:
        """At daemon start, after restore(): choose the default runtime by probing, then
        re-attach running containers and apply restart policies (monitor.restore_containers)."""
        # NewDaemon: ensureDefaultAppArmorProfile, a failure only logged (a start that
        # needs the profile tries again and fails with the reason).
        try:
            await self.run_blocking(apparmor.ensure_default_profile)
        except RuntimeError as e:
            log.error("%s", e)
        self.default_runtime = await self.lifecycle.probe()
        self.runtimes |= set(self.lifecycle.paths)
        # LOGS: the log rotation watcher (berth.logger.rotate); made first so that the
        # containers restore re-attaches are watched too (monitor.watch).
        self.log_rotation = RotationWatcher(self)
        await _monitor.restore_containers(self)
        self.log_rotation.start()

    async def container_start(self, name: str, checkpoint: str = "", checkpoint_dir: str = "") -> None:
        await _start.container_start(self, name, checkpoint, checkpoint_dir)

    async def start_container(self, ctr: Container, reset_restart_manager: bool) -> None:
        """containerStart of a container in hand (the restart policy's, monitor.py)."""
        await _start.start_container(self, ctr, reset_restart_manager)

    async def container_stop(self, name: str, timeout: int | None, signal: str = "") -> None:
        await _stop.container_stop(self, name, timeout, signal)

    async def container_kill(self, name: str, signal: str) -> None:
        await _kill.container_kill(self, name, signal)

    async def container_restart(self, name: str, timeout: int | None, signal: str = "") -> None:
        await _restart.container_restart(self, name, timeout, signal)

    async def container_pause(self, name: str) -> None:
        await _pause.container_pause(self, name)

    async def container_unpause(self, name: str) -> None:
        await _pause.container_unpause(self, name)

    async def container_wait(self, name: str, condition: str) -> Any:
        """Look up now (errors before headers), return an awaitable StateStatus."""
        return await _wait.container_wait(self, name, condition)

    def wait_condition(self, ctr: Container, condition: str) -> Any:
        return _wait.wait_condition(ctr, condition)

    async def container_logs(self, name: str, config: Any) -> Any:
        return await _logs.container_logs(self, name, config)

    def shutdown_timeout(self) -> int:
        """ShutdownTimeout: the configured shutdown-timeout, raised to any container's stop
        timeout plus 5 s of grace; -1 (wait for ever) when either is negative."""
        timeout = self.config.shutdown_timeout
        if timeout < 0:
            return -1
        for ctr in self.containers.values():
            stop = _stop.stop_timeout(ctr)
            if stop < 0:
                return -1
            timeout = max(timeout, stop + 5)
        return timeout

    async def shutdown_lifecycle(self) -> None:
        """Live restore (the default): leave containers running, stop our monitor and health
        tasks. Without it, stop every running container first, as dockerd's Shutdown does."""
        self.shutting_down = True
        if not self.config.live_restore:
            running = [c for c in self.containers.values() if c.State.Running]
            await asyncio.gather(*(_stop.container_stop_inner(self, c, _stop.stop_timeout(c)) for c in running),
                                 return_exceptions=True)
        rotation = self.log_rotation  # LOGS: stop the rotation watcher
        if rotation is not None:
            await rotation.stop()
        pumps = self.log_pumps  # LOGS: the pumps stop where they are
        if pumps is not None:
            await pumps.stop_all()
        for ctr in self.containers.values():
            for task in (ctr.monitor_task, ctr.health_task):
                if task is not None:
                    task.cancel()
        await _monitor.await_all_runtime_cleanups(self)
    # ==== end LIFECYCLE helper ========================================================

    # ==== STREAMS helper: attach, exec, archive, export, changes, top, stats, update ====
    # (daemon/attach.py, exec.py, archive.py, changes.py, top.py, stats.py, update.py)
    async def container_attach(self, name: str, config: Any) -> None:
        await _attach.container_attach(self, name, config)

    async def container_resize(self, name: str, height: int, width: int) -> None:
        await _attach.container_resize(self, name, height, width)

    async def container_exec_create(self, name: str, config: Any) -> str:
        return _exec.container_exec_create(self, name, config)

    async def exec_exists(self, name: str) -> bool:
        return _exec.exec_exists(self, name)

    async def container_exec_start(self, name: str, get_streams: Any, multiplexed: bool,
                                   console: list[int] | None = None) -> None:
        await _exec.container_exec_start(self, name, get_streams, multiplexed, console)

    async def container_exec_inspect(self, id_: str) -> Any:
        return _exec.container_exec_inspect(self, id_)

    async def container_exec_resize(self, name: str, height: int, width: int) -> None:
        await _exec.container_exec_resize(self, name, height, width)
    async def container_stat_path(self, name: str, path: str) -> Any:
        return await _archive.container_stat_path(self, name, path)

    async def container_archive_path(self, name: str, path: str) -> Any:
        return await _archive.container_archive_path(self, name, path)

    async def container_extract_to_dir(self, name: str, path: str, copy_uid_gid: bool,
                                       no_overwrite_dir_non_dir: bool, body: Any) -> None:
        await _archive.container_extract_to_dir(self, name, path, copy_uid_gid, no_overwrite_dir_non_dir, body)

    async def container_export(self, name: str) -> Any:
        return await _archive.container_export(self, name)

    async def container_changes(self, name: str) -> Any:
        return await _changes.container_changes(self, name)

    async def container_top(self, name: str, ps_args: str) -> Any:
        return await _top.container_top(self, name, ps_args)

    async def container_stats(self, name: str, stream: bool, one_shot: bool) -> Any:
        return await _stats.container_stats(self, name, stream, one_shot)

    async def container_commit(self, name: str, config: Any) -> str:
        return await _commit.create_image_from_container(self, name, config)

    async def container_update(self, name: str, body: Any) -> Any:
        return await _update.container_update(self, name, body)
    # ==== end STREAMS helper ==========================================================
