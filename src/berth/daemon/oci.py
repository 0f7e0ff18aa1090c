"""The OCI spec of a container (moby daemon/oci_linux.go createSpec and its With* options).

Composes the pure pieces of berth.runtime.spec with what the container asks for. Called
at start with the container's root filesystem mounted (the user is looked up in its
/etc/passwd and /etc/group, as getUser does). Errors are errdefs.System (createSpec
failures are 500 in dockerd) unless a mode names a container that cannot be joined (409).
"""
from __future__ import annotations

import functools
import os
import stat
from typing import TYPE_CHECKING

from .. import errdefs
from ..pkg import symlink
from ..runtime import spec as rspec
from ..runtime import specs
from ..trace import traced
from ..types import mount as mt
from ..volume import mounts as vmounts
from . import apparmor, cgroupdriver, links
from .propagation import check_bind_propagation
from .volumes import setup_mounts

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"
# Where Debian puts tini; dockerd's own docker-init is tini too.
INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/tini")

_PROPAGATION = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}


# -- user lookup (libcontainer/user GetExecUserPath, GetAdditionalGroupsPath) --------------
def _read_db(rootfs: str, name: str) -> list[list[str]]:
    """Lines of the container's /etc/passwd or /etc/group, split on ':' (symlinks scoped)."""
    try:
        path = symlink.follow_symlink_in_scope(os.path.join(rootfs, "etc", name), rootfs)
        with open(path, encoding="utf-8", errors="replace") as f:
            return [ln.rstrip("\n").split(":") for ln in f if ln.strip() and not ln.startswith("#")]
    except OSError:
        return []


def get_user(rootfs: str, username: str, group_add: list[str] | None) -> specs.User:
    """uid, gid and supplementary groups for Config.User ("", name, uid, x:group).

    dockerd always passes the primary gid as the first supplementary group (checked on the
    reference: `-u 1234` runs with Groups "0"); GroupAdd entries follow.
    """
    user_arg, _, group_arg = (username or "").partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    uid, gid, matched = 0, 0, ""
    if user_arg:
        found = None
        for ent in passwd:
            if len(ent) >= 4 and (ent[0] == user_arg or (user_arg.isdigit() and ent[2] == user_arg)):
                found = ent
                break
        if found is not None:
            uid, gid, matched = int(found[2] or 0), int(found[3] or 0), found[0]
        elif user_arg.isdigit():
            uid = int(user_arg)
        else:
            raise errdefs.System(f"unable to find user {user_arg}: no matching entries in passwd file")
    else:
        for ent in passwd:
            if len(ent) >= 4 and ent[2] == "0":
                matched = ent[0]
                break
    sgids: list[int] = []
    if group_arg:
        gid = _lookup_group(groups, group_arg, "unable to find group")
    elif matched:
        for ent in groups:
            if len(ent) >= 4 and matched in ent[3].split(",") and ent[2].isdigit():
                sgids.append(int(ent[2]))
    extra = [_lookup_group(groups, g, "Unable to find group") for g in group_add or []]
    all_gids = [gid] + [g for g in sgids if g != gid] + extra
    return specs.User(uid=uid, gid=gid, additional_gids=all_gids)


def _lookup_group(groups: list[list[str]], name: str, prefix: str) -> int:
    for ent in groups:
        if len(ent) >= 3 and (ent[0] == name or ent[2] == name):
            return int(ent[2] or 0)
    if name.isdigit():
        return int(name)
    raise errdefs.System(f"{prefix} {name}: no matching entries in group file")


# -- environment (container.CreateDaemonEnvironment, ReplaceOrAppendEnvValues) -------------
def replace_or_append_env(defaults: list[str], overrides: list[str]) -> list[str]:
    out = list(defaults)
    cache = {e.split("=", 1)[0]: i for i, e in enumerate(out)}
    for value in overrides:
        if "=" not in value:  # a bare key unsets it
            if value in cache:
                out[cache[value]] = ""
            continue
        key = value.split("=", 1)[0]
        if key in cache:
            out[cache[key]] = value
        else:
            out.append(value)
    return [e for e in out if e != ""]


def create_daemon_environment(ctr: Container, linked_env: list[str] | None = None) -> list[str]:
    env = [DEFAULT_PATH_ENV, "HOSTNAME=" + ctr.Config.Hostname]
    if ctr.Config.Tty:
        env.append("TERM=xterm")
    env += linked_env or []
    return replace_or_append_env(env, list(ctr.Config.Env or []))


# -- mounts ----------------------------------------------------------------------------
_TMPFS_FLAG_KEYS = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev",
    "nodev": "nodev", "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync",
    "dirsync": "dirsync", "remount": "remount", "mand": "mand", "nomand": "mand",
    "atime": "noatime", "noatime": "noatime", "diratime": "nodiratime", "nodiratime": "nodiratime",
    "bind": "bind", "rbind": "rbind", "relatime": "relatime", "norelatime": "relatime",
    "strictatime": "strictatime", "nostrictatime": "strictatime",
    **{p: "propagation" for p in ("private", "rprivate", "shared", "rshared", "slave", "rslave",
                                  "unbindable", "runbindable")},
}
_TMPFS_DATA = {"mode", "uid", "gid", "size", "nr_inodes", "nr_blocks", "mpol"}


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """pkg/mount MergeTmpfsOptions: the last of each flag family and data key wins."""
    seen: set[str] = set()
    out: list[str] = []
    for opt in reversed(options):
        if opt == "defaults":
            continue
        key = _TMPFS_FLAG_KEYS.get(opt)
        if key is None:
            k, sep, _ = opt.partition("=")
            if not sep or k not in _TMPFS_DATA:
                raise errdefs.System(f'invalid tmpfs option ["{opt}"]')
            key = "=" + k
        if key not in seen:
            seen.add(key)
            out.insert(0, opt)
    return out


def _mount_depth(dest: str) -> int:
    return len(os.path.normpath(dest).strip("/").split("/")) if dest.strip("/") else 0


def user_mounts(d: Daemon, ctr: Container, readonly_rootfs: bool) -> tuple[list[specs.Mount], str]:
    """The container's own mounts in OCI form, sorted by depth (setupMounts + setMounts),
    and the rootfs propagation they need."""
    hc = ctr.host_config
    out: list[specs.Mount] = []
    propagation = ""
    paths = setup_mounts(d, ctr)  # volumes mounted, bind sources made, `mount` events
    for mp in ctr.MountPoints.values():
        typ = mt.text(mp.Type)
        if typ == "tmpfs":
            tmo = mp.Spec.TmpfsOptions
            size = mode = 0
            if isinstance(tmo, mt.TmpfsOptions):
                size = tmo.SizeBytes if isinstance(tmo.SizeBytes, int) else 0
                mode = tmo.Mode if isinstance(tmo.Mode, int) else 0
            data = vmounts.convert_tmpfs_options(size, mode, not mp.RW)
            opts = ["noexec", "nosuid", "nodev", "rprivate"] + [o for o in data.split(",") if o]
            out.append(specs.Mount(destination=mp.Destination, type="tmpfs", source="tmpfs",
                                   options=merge_tmpfs_options(opts)))
            continue
        source = paths.get(mp.Destination, "")
        if not source:
            continue  # a tmpfs given twice (HostConfig.Tmpfs and a tmpfs mount point)
        prop = mt.text(mp.Propagation)
        non_recursive = False
        bo = mp.Spec.BindOptions if mt.is_set(mp.Spec.BindOptions) else None
        if bo is not None and bo.NonRecursive is True:
            non_recursive = True
        opts = ["bind" if non_recursive else "rbind"]
        if not mp.RW:
            opts.append("ro")
        if prop in _PROPAGATION:
            opts.append(prop)
            # setMounts: a shared/slave bind needs a shared/slave source mount (else the
            # start fails) and makes the rootfs propagation at least as open.
            explicit = bool(bo.Propagation) if bo is not None else False
            propagation = check_bind_propagation(source, prop, propagation, d.root, explicit)
        out.append(specs.Mount(destination=mp.Destination, type="bind", source=source, options=opts))
    for dest, data in (hc.Tmpfs or {}).items() if isinstance(hc.Tmpfs, dict) else ():
        opts = ["noexec", "nosuid", "nodev", "rprivate"] + [o for o in (data or "").split(",") if o]
        out.append(specs.Mount(destination=dest, type="tmpfs", source="tmpfs",
                               options=merge_tmpfs_options(opts)))
    # Network files (container.NetworkMounts), unless the user mounts over them.
    taken = {m.destination for m in out}
    for dest, path in (("/etc/resolv.conf", ctr.ResolvConfPath), ("/etc/hostname", ctr.HostnamePath),
                       ("/etc/hosts", ctr.HostsPath)):
        if path and dest not in taken and os.path.exists(path):
            opts = ["rbind", "rprivate"]
            if readonly_rootfs:
                opts.insert(1, "ro")
            out.append(specs.Mount(destination=dest, type="bind", source=path, options=opts))
    out.sort(key=lambda m: _mount_depth(m.destination))
    return out, propagation


# -- namespaces ------------------------------------------------------------------------
def _join_path(d: Daemon, mode: str, kind: str, ns: str) -> str:
    """`/proc/<pid>/ns/<ns>` of the running container a `container:<id>` mode names."""
    target_id = mode.split(":", 1)[1]
    try:
        target = d.get_container(target_id)
    except errdefs.NotFound:
        raise errdefs.System(f"cannot join {kind} of a non running container: {target_id}") from None
    if not target.State.Running or not target.State.Pid:
        if kind == "network":
            raise errdefs.Conflict(f"cannot join network of a non running container: {target_id}")
        raise errdefs.Conflict(f"cannot join {kind} of a non running container: {target_id}")
    return f"/proc/{target.State.Pid}/ns/{ns}"


def namespaces(d: Daemon, ctr: Container, netns: str | None) -> tuple[list[specs.LinuxNamespace], dict[str, str]]:
    """The namespace list per the container's modes (WithNamespaces), and which kinds are
    private (for sysctls and init)."""
    hc = ctr.host_config
    out: list[specs.LinuxNamespace] = []
    private: dict[str, str] = {}

    def add(typ: str, mode: str, kind: str, ns: str) -> None:
        if mode == "host":
            return
        if mode.startswith("container:"):
            out.append(specs.LinuxNamespace(type=typ, path=_join_path(d, mode, kind, ns)))
            return
        out.append(specs.LinuxNamespace(type=typ))
        private[typ] = mode

    out.append(specs.LinuxNamespace(type="mount"))
    net_mode = hc.NetworkMode or "default"
    if net_mode == "host":
        pass
    elif net_mode.startswith("container:"):
        out.append(specs.LinuxNamespace(type="network", path=_join_path(d, net_mode, "network", "net")))
    elif netns:
        out.append(specs.LinuxNamespace(type="network", path=netns))
        private["network"] = net_mode
    else:
        out.append(specs.LinuxNamespace(type="network"))
        private["network"] = net_mode
    add("uts", hc.UTSMode or "", "uts", "uts")
    add("pid", hc.PidMode or "", "pid", "pid")
    add("ipc", hc.IpcMode or "private", "IPC", "ipc")
    if hc.CgroupnsMode == "private":
        out.append(specs.LinuxNamespace(type="cgroup"))
    return out, private


# -- resources -------------------------------------------------------------------------
def _device_numbers(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _throttle(devs: list | None) -> list[specs.LinuxThrottleDevice]:
    out = []
    for td in devs or []:
        major, minor = _device_numbers(td.Path)
        out.append(specs.LinuxThrottleDevice(major=major, minor=minor, rate=int(td.Rate)))
    return out


def resources(ctr: Container, devices: list[specs.LinuxDeviceCgroup]) -> specs.LinuxResources:
    """WithResources: memory, cpu, blkio (weight always written), pids."""
    hc = ctr.host_config
    mem = specs.LinuxMemory()
    if hc.Memory > 0:
        mem.limit = hc.Memory
    if hc.MemoryReservation > 0:
        mem.reservation = hc.MemoryReservation
    if hc.MemorySwap > 0:
        mem.swap = hc.MemorySwap
    if hc.MemorySwappiness is not None and hc.MemorySwappiness >= 0:
        mem.swappiness = hc.MemorySwappiness
    if isinstance(hc.OomKillDisable, bool):
        mem.disable_oom_killer = hc.OomKillDisable
    if hc.KernelMemory:
        mem.kernel = hc.KernelMemory
    if hc.KernelMemoryTCP:
        mem.kernel_tcp = hc.KernelMemoryTCP
    if hc.CpuShares < 0:
        raise errdefs.System("shares: invalid argument")
    cpu = specs.LinuxCPU(shares=hc.CpuShares, cpus=hc.CpusetCpus, mems=hc.CpusetMems)
    if hc.NanoCpus > 0:
        cpu.period = 100_000
        cpu.quota = hc.NanoCpus * 100_000 // 1_000_000_000
    if hc.CpuPeriod:
        cpu.period = hc.CpuPeriod
    if hc.CpuQuota:
        cpu.quota = hc.CpuQuota
    if hc.CpuRealtimePeriod:
        cpu.realtime_period = hc.CpuRealtimePeriod
    if hc.CpuRealtimeRuntime:
        cpu.realtime_runtime = hc.CpuRealtimeRuntime
    weight_devices = []
    for wd in hc.BlkioWeightDevice or []:
        major, minor = _device_numbers(wd.Path)
        weight_devices.append(specs.LinuxWeightDevice(major=major, minor=minor, weight=int(wd.Weight)))
    blkio = specs.LinuxBlockIO(
        weight=hc.BlkioWeight, weight_device=weight_devices,
        throttle_read_bps_device=_throttle(hc.BlkioDeviceReadBps),
        throttle_write_bps_device=_throttle(hc.BlkioDeviceWriteBps),
        throttle_read_iops_device=_throttle(hc.BlkioDeviceReadIOps),
        throttle_write_iops_device=_throttle(hc.BlkioDeviceWriteIOps))
    pids = None
    if hc.PidsLimit is not None:
        pids = specs.LinuxPids(limit=hc.PidsLimit if hc.PidsLimit > 0 else -1)
    return specs.LinuxResources(devices=devices, memory=mem, cpu=cpu, pids=pids, block_io=blkio)


def _host_devices(ctr: Container) -> tuple[list[specs.LinuxDevice], list[specs.LinuxDeviceCgroup]]:
    """HostConfig.Devices (WithDevices): the node and an allow rule for each."""
    devs: list[specs.LinuxDevice] = []
    rules: list[specs.LinuxDeviceCgroup] = []
    for dm in ctr.host_config.Devices or []:
        try:
            st = os.stat(dm.PathOnHost)
        except OSError as e:
            raise errdefs.System(f"error gathering device information while adding custom device "
                                 f"\"{dm.PathOnHost}\": {os.strerror(e.errno or 0).lower()}") from None
        typ = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
        if not typ:
            continue
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        devs.append(specs.LinuxDevice(path=dm.PathInContainer or dm.PathOnHost, type=typ, major=major,
                                      minor=minor, file_mode=stat.S_IMODE(st.st_mode), uid=0, gid=0))
        rules.append(specs.LinuxDeviceCgroup(allow=True, type=typ, major=major, minor=minor,
                                             access=dm.CgroupPermissions or "rwm"))
    return devs, rules


_SKIP_DEV_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices(root: str = "/dev") -> list[specs.LinuxDevice]:
    """Every device node of the host (libcontainer devices.HostDevices), for --privileged."""
    out: list[specs.LinuxDevice] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [n for n in dirnames if not (dirpath == root and n in _SKIP_DEV_DIRS)]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path == "/dev/console":
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            typ = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
            if not typ:
                continue
            out.append(specs.LinuxDevice(path=path, type=typ, major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                                         file_mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid))
    return out


# -- seccomp ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _default_seccomp(caps: tuple[str, ...]) -> bytes:
    # Filtering moby's profile costs a few ms; containers mostly share one capability set.
    return specs.encode(specs.Spec(oci_version="", linux=specs.Linux(
        seccomp=rspec.default_seccomp_profile(list(caps)))))


def seccomp(ctr: Container, caps: list[str]) -> specs.LinuxSeccomp | None:
    """WithSeccomp: none when privileged or unconfined, the container's JSON profile, or
    dockerd's default."""
    if ctr.host_config.Privileged or ctr.SeccompProfile == "unconfined":
        return None
    if ctr.SeccompProfile:
        try:
            return rspec.setup_seccomp(rspec.load_profile(ctr.SeccompProfile), caps)
        except ValueError as e:
            raise errdefs.System(str(e)) from None
        except Exception as e:
            raise errdefs.System(f"Decoding seccomp profile failed: {e}") from None
    spec = specs.decode(_default_seccomp(tuple(caps)))
    assert spec.linux is not None
    return spec.linux.seccomp


def init_path() -> str | None:
    for p in INIT_CANDIDATES:
        if os.path.exists(p):
            return p
    return None


@functools.lru_cache(maxsize=1)
def _daemon_bounding() -> tuple[str, ...]:
    return tuple(rspec.daemon_capabilities("CapBnd"))


@functools.lru_cache(maxsize=1)
def _hard_limits() -> tuple[tuple[str, int], ...]:
    return tuple(rspec.daemon_hard_limits().items())


@traced("createSpec")
def create_spec(d: Daemon, ctr: Container, rootfs: str, netns: str | None = None) -> specs.Spec:
    """createSpec: the whole `config.json` for one start of `ctr` (blocking: reads the
    container's /etc/passwd)."""
    hc = ctr.host_config
    s = rspec.default_linux_spec()
    assert s.process is not None and s.linux is not None
    ns, private = namespaces(d, ctr, netns)
    s.linux.namespaces = ns
    # WithCommonOptions
    s.root = specs.Root(path=rootfs, readonly=hc.ReadonlyRootfs)
    s.process.cwd = ctr.Config.WorkingDir or "/"
    args = [ctr.Path, *ctr.Args]
    use_init = hc.Init if isinstance(hc.Init, bool) else d.config.init
    tini = None
    if use_init and "pid" in private:
        tini = init_path()
        if tini is None:
            raise errdefs.System("docker-init not found: install tini (tini-static) for --init")
        args = [INIT_PATH_IN_CONTAINER, "--", *args]
    s.process.args = args
    s.process.env = create_daemon_environment(ctr, links.setup_linked_containers(d, ctr))
    s.process.terminal = bool(ctr.Config.Tty)
    if "uts" in private or (hc.UTSMode or "") == "":
        s.hostname = ctr.Config.Hostname
    s.process.oom_score_adj = hc.OomScoreAdj
    s.process.no_new_privileges = ctr.NoNewPrivileges
    # Capabilities and user
    s.process.user = get_user(rootfs, ctr.Config.User or "", list(hc.GroupAdd or []))
    caps = rspec.tweak_capabilities(rspec.default_capabilities(), hc.CapAdd, hc.CapDrop,
                                    hc.Privileged, available=_daemon_bounding())
    s.process.capabilities = rspec.capabilities_for_user(caps, s.process.user.uid)
    # WithRlimits: the container's ulimits, then the daemon's --default-ulimit ones.
    s.process.rlimits = rspec.rlimits(hc.Ulimits or [], defaults=d.config.default_ulimits,
                                      hard_limits=dict(_hard_limits()))
    # Mounts
    umounts, propagation = user_mounts(d, ctr, hc.ReadonlyRootfs)
    if tini is not None:
        umounts.append(specs.Mount(destination=INIT_PATH_IN_CONTAINER, type="bind", source=tini,
                                   options=["bind", "ro"]))
    ipc_mode = hc.IpcMode or "private"
    has_shm = any(m.destination == "/dev/shm" for m in umounts)
    if not has_shm and (ipc_mode == "shareable" or ipc_mode.startswith("container:")):
        # setupIpcDirs: a shareable container's /dev/shm is a tmpfs in its directory, which
        # joiners bind-mount (start.setup_ipc_dirs made it / checked the donor's).
        umounts.append(specs.Mount(destination="/dev/shm", type="bind", source=ctr.ShmPath,
                                   options=["rbind", "rprivate"]))
    elif not has_shm and ipc_mode == "host":
        umounts.append(specs.Mount(destination="/dev/shm", type="bind", source="/dev/shm",
                                   options=["rbind", "rprivate"]))
    umounts.sort(key=lambda m: _mount_depth(m.destination))
    s.mounts = rspec.with_mounts(s.mounts, umounts, shm_size=hc.ShmSize or d.config.default_shm_size,
                                 ipc_none=ipc_mode == "none", readonly_rootfs=hc.ReadonlyRootfs,
                                 privileged=hc.Privileged)
    if propagation:
        s.linux.rootfs_propagation = propagation
    # Masked and read-only paths (privileged: none)
    if hc.Privileged:
        s.linux.masked_paths = []
        s.linux.readonly_paths = []
    else:
        s.linux.masked_paths = list(hc.MaskedPaths if hc.MaskedPaths is not None else rspec.default_masked_paths())
        s.linux.readonly_paths = list(hc.ReadonlyPaths if hc.ReadonlyPaths is not None
                                      else rspec.default_readonly_paths())
    # Devices and resources
    dev_rules = rspec.default_device_cgroup_rules()
    if hc.Privileged:
        dev_rules = [specs.LinuxDeviceCgroup(allow=True, access="rwm")]
    devs, rules = _host_devices(ctr)
    if hc.Privileged:
        devs = host_devices() + devs
    s.linux.devices = devs
    try:
        dev_rules = rspec.append_device_permissions_from_cgroup_rules(dev_rules + rules, hc.DeviceCgroupRules or [])
    except ValueError as e:
        raise errdefs.System(str(e)) from None
    s.linux.resources = resources(ctr, dev_rules)
    s.linux.cgroups_path = cgroupdriver.cgroups_path(ctr.ID, hc.CgroupParent or "", d.config.cgroup_parent,
                                                     d.systemd_cgroup)
    if d.systemd_cgroup:
        s.annotations = {**(s.annotations or {}), **cgroupdriver.SYSTEMD_ANNOTATIONS}
    # Sysctls
    extra = {}
    if ctr.Config.Domainname and "uts" in private:
        extra["kernel.domainname"] = ctr.Config.Domainname
    sysctls = hc.Sysctls if isinstance(hc.Sysctls, dict) else {}
    s.linux.sysctl = rspec.merge_sysctls(rspec.default_sysctls("network" in private), extra, sysctls or {})
    s.linux.seccomp = seccomp(ctr, caps)
    # WithApparmor, then saveAppArmorConfig (start.go runs it right after createSpec).
    s.process.apparmor_profile = apparmor.with_apparmor(ctr, apparmor.enabled())
    apparmor.save_app_armor_config(ctr, apparmor.enabled())
    return s
