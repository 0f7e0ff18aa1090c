"""What the host's cgroups support (moby/pkg/sysinfo/sysinfo_linux.go).

Probed once at daemon start; the create path reads it to discard unsupported
limits with dockerd's warnings rather than failing at start.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


def _exists(*parts: str) -> bool:
    return os.path.exists(os.path.join(*parts))


def _cpus_available(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass
class SysInfo:
    cgroup_v2: bool = False
    memory_limit: bool = False
    swap_limit: bool = False
    memory_reservation: bool = False
    oom_kill_disable: bool = False
    memory_swappiness: bool = False
    kernel_memory: bool = False
    kernel_memory_tcp: bool = False
    cpu_shares: bool = False
    cpu_cfs: bool = False
    cpu_realtime: bool = False
    cpuset: bool = False
    cpus: str = ""
    mems: str = ""
    pids_limit: bool = False
    blkio_weight: bool = False
    blkio_weight_device: bool = False
    blkio_read_bps: bool = False
    blkio_write_bps: bool = False
    blkio_read_iops: bool = False
    blkio_write_iops: bool = False
    cgroup_namespaces: bool = False
    ipv4_forwarding_disabled: bool = False
    # `--ip-forward=false` on a host that did not forward: off for good (netavark turns it
    # on for a moment at each setup, and Berth puts it back: a read then would lie)
    ipv4_forwarding_pinned_off: bool = False

    def ipv4_forwarding_disabled_now(self) -> bool:
        """dockerd probes sysinfo again for every create and /info (RawSysInfo), so the
        forwarding state is today's: netavark turns it on with the first bridge network."""
        if self.ipv4_forwarding_pinned_off:
            return True
        try:
            with open("/proc/sys/net/ipv4/ip_forward") as f:
                self.ipv4_forwarding_disabled = f.read().strip() == "0"
        except OSError:
            pass
        return self.ipv4_forwarding_disabled


def is_cgroup_v2(root: str = "/sys/fs/cgroup") -> bool:
    """cgroups.Mode() == Unified: only cgroup2 at the root."""
    return _exists(root, "cgroup.controllers")


def _swap_limit_v2(root: str, self_cgroup: str = "/proc/self/cgroup") -> bool:
    """getSwapLimitV2: the daemon's own v2 cgroup has memory.swap.max (none at the root
    cgroup, nor without swap accounting in the kernel)."""
    try:
        with open(self_cgroup) as f:
            group = next((ln.rstrip("\n")[3:] for ln in f if ln.startswith("0::")), "")
    except OSError:
        return False
    return bool(group) and os.path.exists(os.path.join(root, group.lstrip("/"), "memory.swap.max"))


def probe(root: str = "/sys/fs/cgroup") -> SysInfo:
    """Read the cgroup mounts; v2 when `cgroup.controllers` sits at the root."""
    s = SysInfo()
    s.cgroup_namespaces = os.path.exists("/proc/self/ns/cgroup")
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            s.ipv4_forwarding_disabled = f.read().strip() == "0"
    except OSError:
        pass
    if _exists(root, "cgroup.controllers"):
        s.cgroup_v2 = True
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                ctrl = set(f.read().split())
        except OSError:
            ctrl = set()
        if "memory" in ctrl:
            s.memory_limit = s.memory_reservation = True
            s.swap_limit = _swap_limit_v2(root)
        if "cpu" in ctrl:
            s.cpu_shares = s.cpu_cfs = True
        if "cpuset" in ctrl:
            s.cpuset = True
            s.cpus = _cpus_available(os.path.join(root, "cpuset.cpus.effective"))
            s.mems = _cpus_available(os.path.join(root, "cpuset.mems.effective"))
        if "pids" in ctrl:
            s.pids_limit = True
        if "io" in ctrl:
            s.blkio_weight = s.blkio_weight_device = True
            s.blkio_read_bps = s.blkio_write_bps = s.blkio_read_iops = s.blkio_write_iops = True
        return s
    mem = os.path.join(root, "memory")
    if os.path.isdir(mem) and _exists(mem, "memory.limit_in_bytes"):
        s.memory_limit = True
        s.swap_limit = _exists(mem, "memory.memsw.limit_in_bytes")
        s.memory_reservation = _exists(mem, "memory.soft_limit_in_bytes")
        s.oom_kill_disable = _exists(mem, "memory.oom_control")
        s.memory_swappiness = _exists(mem, "memory.swappiness")
        s.kernel_memory = _exists(mem, "memory.kmem.limit_in_bytes")
        s.kernel_memory_tcp = _exists(mem, "memory.kmem.tcp.limit_in_bytes")
    for cpu in ("cpu", "cpu,cpuacct"):
        d = os.path.join(root, cpu)
        if os.path.isdir(d):
            s.cpu_shares = s.cpu_shares or _exists(d, "cpu.shares")
            s.cpu_cfs = s.cpu_cfs or _exists(d, "cpu.cfs_quota_us")
            s.cpu_realtime = s.cpu_realtime or _exists(d, "cpu.rt_period_us")
    cs = os.path.join(root, "cpuset")
    if _exists(cs, "cpuset.cpus"):
        s.cpuset = True
        s.cpus = _cpus_available(os.path.join(cs, "cpuset.cpus"))
        s.mems = _cpus_available(os.path.join(cs, "cpuset.mems"))
    s.pids_limit = _exists(root, "pids", "pids.max") or os.path.isdir(os.path.join(root, "pids"))
    blk = os.path.join(root, "blkio")
    s.blkio_weight = _exists(blk, "blkio.weight")
    s.blkio_weight_device = _exists(blk, "blkio.weight_device")
    s.blkio_read_bps = _exists(blk, "blkio.throttle.read_bps_device")
    s.blkio_write_bps = _exists(blk, "blkio.throttle.write_bps_device")
    s.blkio_read_iops = _exists(blk, "blkio.throttle.read_iops_device")
    s.blkio_write_iops = _exists(blk, "blkio.throttle.write_iops_device")
    return s


def parse_uint_list(val: str, maximum: int = 8192) -> set[int]:
    """pkg/parsers ParseUintList: `0-2,5`; ValueError("invalid format: …") or out of range."""
    if val == "":
        return set()
    out: set[int] = set()
    for r in val.split(","):
        if "-" not in r:
            try:
                v = int(r)
            except ValueError:
                raise ValueError(f"invalid format: {val}") from None
            if v < 0:
                raise ValueError(f"invalid format: {val}")
            if v > maximum:
                raise ValueError(f"value of out range, maximum is {maximum}")
            out.add(v)
            continue
        lo_s, _, hi_s = r.partition("-")
        try:
            lo, hi = int(lo_s), int(hi_s)
        except ValueError:
            raise ValueError(f"invalid format: {val}") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"invalid format: {val}")
        if hi > maximum:
            raise ValueError(f"value of out range, maximum is {maximum}")
        out.update(range(lo, hi + 1))
    return out
