"""Container creation (moby/daemon/create.go), step for step.

container_create → verify_container_settings → verify_networking_config →
adapt_container_settings → create → get_image → merge_and_verify_config →
merge_and_verify_log_config → new_container (generate_id_and_name) →
set_security_options → create_layer, container root, checkpoints → set_host_config
(register_mount_points, register_links) → create_container_os_specific_settings →
update_container_network_settings → to_disk → register → "create" event.

Where Berth deviates: dockerd writes the two JSON files twice (setHostConfig and
Register); Berth writes them once, in the same thread hop that makes the layer and
directories, before the container becomes visible (so a 201 is always on disk).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import time
from typing import TYPE_CHECKING, Any

from .. import errdefs
from ..container.container import Container, NetworkSettings
from ..pkg import symlink
from ..trace import traced
from ..types import gojson
from ..types.backend import ContainerCreateConfig
from ..types.container import (
    Config,
    ContainerCreateCreatedBody,
    HostConfig,
    NetworkingConfig,
)
from . import links, merge, names, network, platform, volumes
from .inspect import container_inspect_cached
from .merge import merge_and_verify_config, merge_and_verify_log_config
from .verify import verify_container_settings

if TYPE_CHECKING:
    from ..image.service import Image
    from .core import Daemon

log = logging.getLogger("berth.daemon")

DEFAULT_MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}.get(
    os.uname().machine, os.uname().machine
)


@traced("containerCreate", action="create")
async def container_create(d: Daemon, params: ContainerCreateConfig) -> ContainerCreateCreatedBody:
    """containerCreate: the checks, in dockerd's order, then create."""
    if params.config is None:
        raise errdefs.InvalidParameter("Config cannot be empty in order to create a container")
    img: Image | None = None
    if params.config.Image:
        try:
            img = d.images.get_image(params.config.Image, params.platform)
        except errdefs.DockerError:
            img = None
    warnings = verify_container_settings(
        params.host_config, params.config, d.sysinfo, d.default_runtime, d.runtimes,
        systemd_cgroup=d.systemd_cgroup)
    if img is not None and not params.platform:
        warn = _platform_warning(img)
        if warn:
            warnings.append(warn)
    verify_networking_config(params.networking_config)
    if params.host_config is None:
        params.host_config = HostConfig()
    adapt_container_settings(d, params.host_config, params.adjust_cpu_shares)
    ctr = await create(d, params)
    await _prepare_inspect(d, ctr)
    return ContainerCreateCreatedBody(Id=ctr.ID, Warnings=warnings)


async def _prepare_inspect(d: Daemon, ctr: Container) -> None:
    """Clients inspect what they create at once (docker-py's containers.create and run,
    compose): the answer is made now, while the new container's objects are in the CPU's
    caches, and kept by inspect's cache until the container changes."""
    try:
        await container_inspect_cached(d, ctr.ID, False)
    except Exception:  # the create stands; the inspect will compute it
        log.exception("inspect of new container %s", ctr.ID)


def _platform_warning(img: Image) -> str:
    os_, arch, variant = img.os or "linux", img.architecture or HOST_ARCH, img.variant or ""
    if os_ == "linux" and arch == HOST_ARCH:
        return ""
    want = f"linux/{HOST_ARCH}"
    got = "/".join(p for p in (os_, arch, variant) if p)
    return (
        f"The requested image's platform ({got}) does not match the detected host platform ({want}) "
        "and no specific platform was requested"
    )


@traced("verifyNetworkingConfig", leaf=True)
def verify_networking_config(nc: NetworkingConfig | None) -> None:
    if nc is None or not nc.EndpointsConfig:
        return
    eps = nc.EndpointsConfig
    if len(eps) > 1:
        raise errdefs.InvalidParameter(
            "Container cannot be connected to network endpoints: " + ", ".join(eps.keys())
        )
    for name, ep in eps.items():
        if ep is None:
            raise errdefs.InvalidParameter(f"no EndpointSettings for {name}")
        ipam = ep.IPAMConfig
        if ipam is not None:
            v4 = ipam.IPv4Address if isinstance(ipam.IPv4Address, str) else ""
            v6 = ipam.IPv6Address if isinstance(ipam.IPv6Address, str) else ""
            if v4 and not _is_ipv4(v4):
                raise errdefs.InvalidParameter(f"invalid IPv4 address: {v4}")
            if v6 and not _is_ipv6(v6):
                raise errdefs.InvalidParameter(f"invalid IPv6 address: {v6}")


def _is_ipv4(s: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(s), ipaddress.IPv4Address)
    except ValueError:
        return False


def _is_ipv6(s: str) -> bool:
    try:
        a = ipaddress.ip_address(s)
    except ValueError:
        return False
    return isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is None and "." not in s


@traced("adaptContainerSettings", leaf=True)
def adapt_container_settings(d: Daemon, hc: HostConfig, adjust_cpu_shares: bool) -> None:
    platform.adapt_container_settings(
        hc, adjust_cpu_shares, d.sysinfo, d.config.default_ipc_mode, d.config.default_cgroupns_mode or None
    )
    if d.config.default_shm_size and hc.ShmSize == platform.DEFAULT_SHM_SIZE:
        hc.ShmSize = d.config.default_shm_size
    _adapt_shared_namespace_container(d, hc)
    _generate_security_opt(d, hc)


def _adapt_shared_namespace_container(d: Daemon, hc: HostConfig) -> None:
    """container:<name or prefix> modes are rewritten to the full ID when it exists."""
    for attr in ("PidMode", "IpcMode", "NetworkMode"):
        mode = getattr(hc, attr)
        if mode.startswith("container:"):
            try:
                ctr = d.get_container(mode.split(":", 1)[1])
            except errdefs.DockerError:
                continue
            setattr(hc, attr, "container:" + ctr.ID)


def _generate_security_opt(d: Daemon, hc: HostConfig) -> None:
    """generateSecurityOpt: `label=disable` for host IPC/PID or privileged (even without SELinux)."""
    if any(o.startswith("label=") for o in hc.SecurityOpt or []):
        return
    if hc.IpcMode == "host" or hc.PidMode == "host" or hc.Privileged:
        hc.SecurityOpt = [*(hc.SecurityOpt or []), "label=disable"]
        return
    for mode in (hc.IpcMode, hc.PidMode):
        if mode.startswith("container:"):
            target = mode.split(":", 1)[1]
            try:
                d.get_container(target)
            except errdefs.NotFound as e:
                raise errdefs.InvalidParameter(str(e)) from None
            # No SELinux labels in Berth: nothing to duplicate.


@traced("create")
async def create(d: Daemon, params: ContainerCreateConfig) -> Container:
    """daemon.create: image, merges, new container, then everything that makes state."""
    config = params.config
    hc = params.host_config
    assert config is not None and hc is not None
    img = d.images.get_image(config.Image, params.platform) if config.Image else None
    image_config = merge.image_container_config(img) if img is not None else None
    merge_and_verify_config(config, image_config)
    merge_and_verify_log_config(hc.LogConfig, d.config.log_driver, d.config.log_opts)
    ctr = new_container(d, params.name, config, hc, img)
    try:
        set_security_options(d, ctr, hc)
        # Parse and validate the mount specs on the loop (pure), make things in one hop.
        plan = volumes.plan_mount_points(d, ctr, hc)
        plan.networking_config = params.networking_config
        links.register_links(d, ctr, hc)
        await d.run_blocking(_create_on_disk, d, ctr, img, plan)
    except BaseException:
        names.release_name(d, ctr.Name)
        d.log_container_event(ctr, "destroy")
        raise
    d.register(ctr)
    d.log_container_event(ctr, "create")
    return ctr


@traced("newContainer", leaf=True)
def new_container(d: Daemon, name: str, config: Config, hc: HostConfig, img: Image | None) -> Container:
    """newContainer: ID and name, hostname, Path/Args, the base record."""
    id_, full_name = names.generate_id_and_name(d, name)
    if hc.NetworkMode == "host" and not config.Hostname:
        config.Hostname = os.uname().nodename
    elif not config.Hostname:
        config.Hostname = id_[:12]
    path, args = get_entrypoint_and_args(config.Entrypoint, config.Cmd)
    ctr = Container(
        ID=id_,
        Created=gojson.format_go_time(time.time_ns()),
        Path=path,
        Args=args,
        Config=config,
        Image=img.id if img is not None else "",
        NetworkSettings=NetworkSettings(IsAnonymousEndpoint=name == ""),
        Name=full_name,
        Driver=d.layers.driver_name,
        OS=(img.os if img is not None and img.os else "linux"),
    )
    return ctr.attach(os.path.join(d.repository, id_), hc)


def get_entrypoint_and_args(entrypoint: list[str] | None, cmd: list[str] | None) -> tuple[str, list[str]]:
    if entrypoint:
        return entrypoint[0], [*entrypoint[1:], *(cmd or [])]
    cmd = cmd or [""]
    return cmd[0], list(cmd[1:])


@traced("setSecurityOptions", leaf=True)
def set_security_options(d: Daemon, ctr: Container, hc: HostConfig) -> None:
    """parseSecurityOpt (daemon_unix.go); its errors are untyped: 500."""
    ctr.NoNewPrivileges = d.config.no_new_privileges
    for opt in hc.SecurityOpt or []:
        if opt == "no-new-privileges":
            ctr.NoNewPrivileges = True
            continue
        if opt == "disable":
            continue
        if "=" in opt:
            key, value = opt.split("=", 1)
        elif ":" in opt:
            key, value = opt.split(":", 1)
        else:
            raise errdefs.Untyped(f"invalid --security-opt 1: {_q(opt)}")
        if key == "label":
            continue
        if key == "apparmor":
            ctr.AppArmorProfile = value
        elif key == "seccomp":
            ctr.SeccompProfile = value
        elif key == "no-new-privileges":
            b = _parse_go_bool(value)
            if b is None:
                raise errdefs.Untyped(f"invalid --security-opt 2: {_q(opt)}")
            ctr.NoNewPrivileges = b
        else:
            raise errdefs.Untyped(f"invalid --security-opt 2: {_q(opt)}")


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_go_bool(s: str) -> bool | None:
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def _create_on_disk(d: Daemon, ctr: Container, img: Image | None, plan: volumes.MountPlan) -> None:
    """The blocking part of create, in one thread hop, with its own undo.

    Steps as dockerd: CreateLayer, container root (0710) and checkpoints (0700),
    setHostConfig's mount points (volumes made here), createContainerOSSpecificSettings,
    network settings, then the one write of config.v2.json and hostconfig.json.
    """
    made_layer = made_root = False
    try:
        set_rw_layer(d, ctr, img)
        made_layer = True
        os.mkdir(ctr.root, 0o710)
        made_root = True
        os.chmod(ctr.root, 0o710)
        os.mkdir(os.path.join(ctr.root, "checkpoints"), 0o700)
        volumes.register_mount_points(d, ctr, plan)
        create_container_os_specific_settings(d, ctr)
        network.update_container_network_settings(d, ctr, plan.networking_config)
        ctr.to_disk()
    except BaseException:
        volumes.release_mount_points(d, ctr, remove_anonymous=True)
        if made_root:
            shutil.rmtree(ctr.root, ignore_errors=True)
        if made_layer:
            try:
                d.layers.remove_rw_layer(ctr.ID)
            except Exception:
                log.exception("cleanup of layer for %s failed", ctr.ID)
        raise


@traced("setRWLayer", leaf=True)
def set_rw_layer(d: Daemon, ctr: Container, img: Image | None) -> None:
    """The container's RW layer (and its -init layer) on the image's top layer."""
    d.layers.create_rw_layer(ctr.ID, img.top_layer if img is not None else None,
                             ctr.host_config.StorageOpt or None)


@traced("createContainerOSSpecificSettings")
def create_container_os_specific_settings(d: Daemon, ctr: Container) -> None:
    """create_unix.go: working directory, masked/readonly defaults, image volumes."""
    hc = ctr.host_config
    if ctr.Config.WorkingDir:
        ctr.Config.WorkingDir = os.path.normpath(ctr.Config.WorkingDir)
        if ctr.Config.WorkingDir.startswith("//"):
            ctr.Config.WorkingDir = ctr.Config.WorkingDir[1:]
    if hc.MaskedPaths is None and not hc.Privileged:
        hc.MaskedPaths = list(DEFAULT_MASKED_PATHS)
    if hc.ReadonlyPaths is None and not hc.Privileged:
        hc.ReadonlyPaths = list(DEFAULT_READONLY_PATHS)
    # dockerd always mounts the rootfs here; Berth only when something reads or writes it:
    # the working directory, image VOLUMEs, or a volume to populate from the image.
    needs_rootfs = (ctr.Config.WorkingDir not in ("", "/")) or bool(ctr.Config.Volumes) \
        or volumes.has_volumes_to_populate(ctr)
    if not needs_rootfs:
        return
    rw = d.layers.get_rw_layer(ctr.ID)
    rootfs = rw.mount()
    try:
        if ctr.Config.WorkingDir not in ("", "/"):
            _setup_working_directory(rootfs, ctr.Config.WorkingDir)
        volumes.create_image_volumes(d, ctr, rootfs)
    finally:
        rw.unmount()


def _setup_working_directory(rootfs: str, workdir: str) -> None:
    path = symlink.follow_symlink_in_scope(os.path.join(rootfs, workdir.lstrip("/")), rootfs)
    if os.path.exists(path) and not os.path.isdir(path):
        raise errdefs.Untyped(f"Cannot mkdir: {workdir} is not a directory")
    os.makedirs(path, 0o755, exist_ok=True)


__all__ = ["ContainerCreateConfig", "container_create", "create", "Any"]
