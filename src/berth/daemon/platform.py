"""What moby keeps in daemon/daemon_unix.go for the create path:
verify_platform_container_settings (with verifyPlatformContainerResources) and
adapt_container_settings. Berth is Linux only, so one file.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .. import errdefs
from ..types.container import HostConfig
from . import cgroupdriver
from .sysinfo import parse_uint_list

if TYPE_CHECKING:
    from .sysinfo import SysInfo

LINUX_MIN_MEMORY = 6291456  # 6MB
DEFAULT_SHM_SIZE = 67108864
NUM_CPU = os.cpu_count() or 1


class Warnings(list[str]):
    pass


def _verify_resources(hc: HostConfig, si: SysInfo, update: bool) -> list[str]:
    w: list[str] = []
    # fixMemorySwappiness
    if hc.MemorySwappiness == -1:
        hc.MemorySwappiness = None
    # memory
    if hc.Memory != 0 and hc.Memory < LINUX_MIN_MEMORY:
        raise errdefs.InvalidParameter("Minimum memory limit allowed is 6MB")
    if hc.Memory > 0 and not si.memory_limit:
        w.append("Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.")
        hc.Memory = 0
        hc.MemorySwap = -1
    if hc.Memory > 0 and hc.MemorySwap != -1 and not si.swap_limit:
        w.append("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.")
        hc.MemorySwap = -1
    if hc.Memory > 0 and hc.MemorySwap > 0 and hc.MemorySwap < hc.Memory:
        raise errdefs.InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if hc.Memory == 0 and hc.MemorySwap > 0 and not update:
        raise errdefs.InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    if hc.MemorySwappiness is not None and not si.memory_swappiness:
        w.append("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.")
        hc.MemorySwappiness = None
    if hc.MemorySwappiness is not None and not (0 <= hc.MemorySwappiness <= 100):
        raise errdefs.InvalidParameter(
            f"Invalid value: {hc.MemorySwappiness}, valid memory swappiness range is 0-100"
        )
    if hc.MemoryReservation > 0 and not si.memory_reservation:
        w.append("Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.")
        hc.MemoryReservation = 0
    if 0 < hc.MemoryReservation < LINUX_MIN_MEMORY:
        raise errdefs.InvalidParameter("Minimum memory reservation allowed is 6MB")
    if hc.Memory > 0 and hc.MemoryReservation > 0 and hc.Memory < hc.MemoryReservation:
        raise errdefs.InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    if hc.KernelMemory > 0:
        w.append("Specifying a kernel memory limit is deprecated and will be removed in a future release.")
    if hc.KernelMemory > 0 and not si.kernel_memory:
        w.append("Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.")
        hc.KernelMemory = 0
    if 0 < hc.KernelMemory < LINUX_MIN_MEMORY:
        raise errdefs.InvalidParameter("Minimum kernel memory limit allowed is 6MB")
    if hc.OomKillDisable is not None and not si.oom_kill_disable:
        if hc.OomKillDisable:
            w.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        hc.OomKillDisable = None
    if hc.OomKillDisable and hc.Memory == 0:
        w.append("OOM killer is disabled for the container, but no memory limit is set, "
                 "this can result in the system running out of resources.")
    if hc.PidsLimit is not None and not si.pids_limit:
        if hc.PidsLimit > 0:
            w.append("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.")
        hc.PidsLimit = None
    # cpu
    if hc.NanoCpus > 0 and hc.CpuPeriod > 0:
        raise errdefs.InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if hc.NanoCpus > 0 and hc.CpuQuota > 0:
        raise errdefs.InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if hc.NanoCpus > 0 and not si.cpu_cfs:
        raise errdefs.InvalidParameter(
            "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted"
        )
    if hc.NanoCpus < 0 or hc.NanoCpus > NUM_CPU * 1_000_000_000:
        raise errdefs.InvalidParameter(
            f"Range of CPUs is from 0.01 to {NUM_CPU}.00, as there are only {NUM_CPU} CPUs available"
        )
    if hc.CpuShares > 0 and not si.cpu_shares:
        w.append("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.")
        hc.CpuShares = 0
    if (hc.CpuPeriod > 0 or hc.CpuQuota > 0) and not si.cpu_cfs:
        w.append("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.")
        hc.CpuPeriod = 0
        hc.CpuQuota = 0
    if hc.CpuPeriod != 0 and not (1000 <= hc.CpuPeriod <= 1000000):
        raise errdefs.InvalidParameter(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if 0 < hc.CpuQuota < 1000:
        raise errdefs.InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if hc.CpuPercent > 0:
        w.append("linux does not support CPU percent. Percent discarded.")
        hc.CpuPercent = 0
    # cpuset
    if (hc.CpusetCpus or hc.CpusetMems) and not si.cpuset:
        w.append("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.")
        hc.CpusetCpus = ""
        hc.CpusetMems = ""
    _check_cpuset(hc.CpusetCpus, si.cpus, "cpus", "Requested CPUs are not available")
    _check_cpuset(hc.CpusetMems, si.mems, "mems", "Requested memory nodes are not available")
    # block I/O
    if hc.BlkioWeight > 0 and not si.blkio_weight:
        w.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
        hc.BlkioWeight = 0
    if hc.BlkioWeight > 0 and not (10 <= hc.BlkioWeight <= 1000):
        raise errdefs.InvalidParameter("Range of blkio weight is from 10 to 1000")
    if hc.IOMaximumBandwidth or hc.IOMaximumIOps:
        raise errdefs.InvalidParameter(
            "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"
        )
    for attr, ok, msg in (
        ("BlkioWeightDevice", si.blkio_weight_device,
         "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded."),
        ("BlkioDeviceReadBps", si.blkio_read_bps,
         "Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded."),
        ("BlkioDeviceWriteBps", si.blkio_write_bps,
         "Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded."),
        ("BlkioDeviceReadIOps", si.blkio_read_iops,
         "Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded."),
        ("BlkioDeviceWriteIOps", si.blkio_write_iops,
         "Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded."),
    ):
        if getattr(hc, attr) and not ok:
            w.append(msg)
            setattr(hc, attr, [])
    return w


def _check_cpuset(requested: str, available: str, what: str, not_avail: str) -> None:
    if not requested:
        return
    try:
        req = parse_uint_list(requested)
    except ValueError as e:
        raise errdefs.InvalidParameter(f"Invalid value {requested} for cpuset {what}: {e}") from None
    try:
        avail = parse_uint_list(available)
    except ValueError:
        avail = set()
    if not req <= avail:
        raise errdefs.InvalidParameter(f"{not_avail} - requested {requested}, available: {available}")


def verify_platform_container_settings(
    hc: HostConfig, si: SysInfo, default_runtime: str, runtimes: set[str], update: bool = False,
    systemd_cgroup: bool = False,
) -> list[str]:
    w = _verify_resources(hc, si, update)
    if hc.ShmSize < 0:
        raise errdefs.InvalidParameter("SHM size can not be less than 0")
    if hc.OomScoreAdj < -1000 or hc.OomScoreAdj > 1000:
        raise errdefs.InvalidParameter(f"Invalid value {hc.OomScoreAdj}, range for oom score adj is [-1000, 1000]")
    mode = hc.NetworkMode
    if mode not in ("host", "none") and si.ipv4_forwarding_disabled_now():
        w.append("IPv4 forwarding is disabled. Networking will not work.")
    if mode == "host" and hc.PortBindings:
        w.append("Published ports are discarded when using host network mode")
    if isinstance(hc.CgroupParent, str):
        try:
            cgroupdriver.verify_cgroup_parent(hc.CgroupParent, systemd_cgroup)
        except ValueError as e:
            raise errdefs.InvalidParameter(str(e)) from None
    if not isinstance(hc.Runtime, str) or hc.Runtime == "":
        hc.Runtime = default_runtime
    if hc.Runtime not in runtimes:
        raise errdefs.InvalidParameter(f"Unknown runtime specified {hc.Runtime}")
    for dest in (hc.Tmpfs or {}):
        if os.path.normpath(dest) == "/" if dest else False:
            raise errdefs.InvalidParameter("invalid specification: destination can't be '/'")
        if not dest.startswith("/"):
            raise errdefs.InvalidParameter(f"invalid mount path: '{dest}' mount path must be absolute")
    if hc.CgroupnsMode not in ("", "host", "private"):
        raise errdefs.InvalidParameter(f"invalid cgroup namespace mode: {hc.CgroupnsMode}")
    if hc.CgroupnsMode == "private" and not si.cgroup_namespaces:
        w.append("Your kernel does not support cgroup namespaces.  Cgroup namespace setting discarded.")
    return w


def adapt_container_settings(
    hc: HostConfig, adjust_cpu_shares: bool, si: SysInfo, default_ipc_mode: str = "private",
    default_cgroupns_mode: str | None = None,
) -> None:
    """adaptContainerSettings: fill the defaults dockerd fills before create."""
    if adjust_cpu_shares and hc.CpuShares > 0:
        hc.CpuShares = min(max(hc.CpuShares, 2), 262144)
    if hc.Memory > 0 and hc.MemorySwap == 0:
        hc.MemorySwap = hc.Memory * 2
    if hc.ShmSize == 0:
        hc.ShmSize = DEFAULT_SHM_SIZE
    if not hc.IpcMode:
        hc.IpcMode = default_ipc_mode
    if not hc.CgroupnsMode:
        if hc.Privileged and not si.cgroup_v2:
            hc.CgroupnsMode = "host"
        else:
            hc.CgroupnsMode = default_cgroupns_mode or ("private" if si.cgroup_v2 else "host")
    if hc.OomKillDisable is None:
        hc.OomKillDisable = False
