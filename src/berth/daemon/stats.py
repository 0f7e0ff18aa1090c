"""Container stats (moby daemon/stats.go ContainerStats, daemon/stats/collector.go,
daemon/daemon_unix.go statsV1/statsV2, stats_collector_unix.go getSystemCPUUsage).

Read from the container's cgroup, found through /proc/<pid>/cgroup of its init (Berth puts
it at /berth/<id> under each controller), once a second as dockerd's collector does; the
previous sample becomes `preread`/`precpu_stats`. Network counters come from
/proc/<pid>/net/dev (the container's namespace), without `lo`.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from .. import errdefs
from ..types import gojson
from ..types.stats import (
    BlkioStatEntry,
    BlkioStats,
    CPUStats,
    CPUUsage,
    MemoryStats,
    NetworkStats,
    PidsStats,
    StatsJSON,
    ThrottlingData,
)

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

_CG = "/sys/fs/cgroup"
_INTERVAL = 1.0
_V1_MEM_KEYS = ("cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout", "pgfault",
                "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
                "hierarchical_memory_limit", "hierarchical_memsw_limit")
_V1_MEM = set(_V1_MEM_KEYS) | {"total_" + k for k in _V1_MEM_KEYS[:15]}
_V2_MEM = {"anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty", "file_writeback",
           "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
           "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault", "workingset_refault",
           "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan", "pgsteal", "pgactivate",
           "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc"}
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cgroup_paths(pid: int) -> dict[str, str]:
    """controller → cgroup directory of `pid` ("" key: the v2/unified one)."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                base = _CG if os.path.exists(os.path.join(_CG, "cgroup.controllers")) else os.path.join(_CG, "unified")
                out[""] = base + path
                continue
            for c in ctrls.split(","):
                c = c.removeprefix("name=")
                d = os.path.join(_CG, c) + path
                if not os.path.isdir(d):
                    d = os.path.join(_CG, ctrls) + path
                out[c] = d
    return out


def container_pids(pid: int) -> list[int]:
    """containerd ListPids: the processes of the container's cgroup."""
    paths = cgroup_paths(pid)
    d = paths.get("pids") or paths.get("memory") or paths.get("")
    out: list[int] = []
    if d:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                out = [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out or [pid]


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _int(path: str, default: int = 0) -> int:
    try:
        v = _read(path).strip()
    except OSError:
        return default
    return default if v == "max" or not v else int(v)


def _kv(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in _read(path).splitlines():
            k, _, v = line.partition(" ")
            if v.strip().lstrip("-").isdigit():
                out[k] = int(v)
    except OSError:
        pass
    return out


def _blkio_v1(path: str) -> list[BlkioStatEntry]:
    out = []
    try:
        for line in _read(path).splitlines():
            f = line.split()
            if len(f) == 3 and ":" in f[0]:
                ma, mi = f[0].split(":")
                out.append(BlkioStatEntry(major=int(ma), minor=int(mi), op=f[1], value=int(f[2])))
    except OSError:
        pass
    return out


def _system_cpu_usage() -> int:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                return sum(int(x) for x in line.split()[1:8]) * 1_000_000_000 // _CLK_TCK
    return 0


def _networks(pid: int) -> dict[str, NetworkStats] | None:
    out = {}
    try:
        lines = _read(f"/proc/{pid}/net/dev").splitlines()[2:]
    except OSError:
        return None
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in rest.split()]
        out[name] = NetworkStats(rx_bytes=v[0], rx_packets=v[1], rx_errors=v[2], rx_dropped=v[3],
                                 tx_bytes=v[8], tx_packets=v[9], tx_errors=v[10], tx_dropped=v[11])
    return out or None


def _machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def sample(ctr: Container) -> StatsJSON:
    """One reading (blocking)."""
    pid = ctr.State.Pid
    paths = cgroup_paths(pid)
    s = StatsJSON(name=ctr.Name, id=ctr.ID, read=gojson.format_go_time(time.time_ns()))
    online = os.sysconf("SC_NPROCESSORS_ONLN")
    mem_limit_cap = _machine_memory()
    if "cpuacct" in paths or "memory" in paths:  # cgroup v1
        ca, cpu, mem = paths.get("cpuacct", ""), paths.get("cpu", ""), paths.get("memory", "")
        st = _kv(os.path.join(ca, "cpuacct.stat"))
        try:
            percpu = [int(x) for x in _read(os.path.join(ca, "cpuacct.usage_percpu")).split()]
        except OSError:
            percpu = []
        thr = _kv(os.path.join(cpu, "cpu.stat"))
        s.cpu_stats = CPUStats(
            cpu_usage=CPUUsage(total_usage=_int(os.path.join(ca, "cpuacct.usage")), percpu_usage=percpu,
                               usage_in_kernelmode=st.get("system", 0) * 1_000_000_000 // _CLK_TCK,
                               usage_in_usermode=st.get("user", 0) * 1_000_000_000 // _CLK_TCK),
            system_cpu_usage=_system_cpu_usage(), online_cpus=online,
            throttling_data=ThrottlingData(periods=thr.get("nr_periods", 0), throttled_periods=thr.get("nr_throttled", 0),
                                           throttled_time=thr.get("throttled_time", 0)))
        raw = {k: v for k, v in _kv(os.path.join(mem, "memory.stat")).items() if k in _V1_MEM}
        limit = _int(os.path.join(mem, "memory.limit_in_bytes"))
        s.memory_stats = MemoryStats(usage=_int(os.path.join(mem, "memory.usage_in_bytes")),
                                     max_usage=_int(os.path.join(mem, "memory.max_usage_in_bytes")), stats=raw,
                                     failcnt=_int(os.path.join(mem, "memory.failcnt")),
                                     limit=mem_limit_cap if limit > mem_limit_cap > 0 else limit)
        pids = paths.get("pids", "")
        s.pids_stats = PidsStats(current=_int(os.path.join(pids, "pids.current")),
                                 limit=_int(os.path.join(pids, "pids.max")))
        blk = paths.get("blkio", "")
        sb = _blkio_v1(os.path.join(blk, "blkio.io_service_bytes_recursive")) or \
            _blkio_v1(os.path.join(blk, "blkio.throttle.io_service_bytes_recursive"))
        sv = _blkio_v1(os.path.join(blk, "blkio.io_serviced_recursive")) or \
            _blkio_v1(os.path.join(blk, "blkio.throttle.io_serviced_recursive"))
        s.blkio_stats = BlkioStats(io_service_bytes_recursive=sb, io_serviced_recursive=sv, io_queue_recursive=[],
                                   io_service_time_recursive=[], io_wait_time_recursive=[], io_merged_recursive=[],
                                   io_time_recursive=[], sectors_recursive=[])
    else:  # cgroup v2
        d = paths.get("", "")
        c = _kv(os.path.join(d, "cpu.stat"))
        s.cpu_stats = CPUStats(
            cpu_usage=CPUUsage(total_usage=c.get("usage_usec", 0) * 1000,
                               usage_in_kernelmode=c.get("system_usec", 0) * 1000,
                               usage_in_usermode=c.get("user_usec", 0) * 1000),
            system_cpu_usage=_system_cpu_usage(), online_cpus=online,
            throttling_data=ThrottlingData(periods=c.get("nr_periods", 0), throttled_periods=c.get("nr_throttled", 0),
                                           throttled_time=c.get("throttled_usec", 0) * 1000))
        # containerd's MemoryStat has every field: one this kernel lacks (6.1 splits
        # workingset_refault into _anon/_file) is 0 in dockerd's answer, not absent
        got = _kv(os.path.join(d, "memory.stat"))
        raw = {k: got.get(k, 0) for k in sorted(_V2_MEM)}
        limit = _int(os.path.join(d, "memory.max"), mem_limit_cap)
        s.memory_stats = MemoryStats(usage=_int(os.path.join(d, "memory.current")), stats=raw,
                                     failcnt=_kv(os.path.join(d, "memory.events")).get("oom", 0),
                                     limit=mem_limit_cap if limit > mem_limit_cap > 0 else limit)
        s.pids_stats = PidsStats(current=_int(os.path.join(d, "pids.current")), limit=_int(os.path.join(d, "pids.max")))
        # statsV2: io.stat's bytes only, every other list null (as dockerd in the guest)
        sb = []
        try:
            for line in _read(os.path.join(d, "io.stat")).splitlines():
                dev, *kvs = line.split()
                ma, mi = (int(x) for x in dev.split(":"))
                vals = dict(kv.split("=") for kv in kvs)
                sb += [BlkioStatEntry(ma, mi, "read", int(vals.get("rbytes", 0))),
                       BlkioStatEntry(ma, mi, "write", int(vals.get("wbytes", 0)))]
        except OSError:
            pass
        s.blkio_stats = BlkioStats(io_service_bytes_recursive=sb or None)
    nets = _networks(pid)
    if nets is not None:
        s.networks = nets
    return s


async def container_stats(d: Daemon, name: str, stream: bool, one_shot: bool) -> AsyncIterator[bytes]:
    """ContainerStats: JSON documents, one per second while streaming."""
    ctr = d.get_container(name)
    if (not ctr.State.Running or ctr.State.Restarting) and not stream:
        async def empty() -> AsyncIterator[bytes]:
            yield gojson.encode_stream(StatsJSON(name=ctr.Name, id=ctr.ID))
        return empty()
    return _collect(d, ctr, stream, one_shot)


async def _collect(d: Daemon, ctr: Container, stream: bool, one_shot: bool) -> AsyncIterator[bytes]:
    prev: StatsJSON | None = None
    first = not one_shot
    while ctr.State.Running:
        try:
            cur = await d.run_blocking(sample, ctr)
        except (OSError, ValueError):
            if not ctr.State.Running:
                return
            raise errdefs.System(f"container {ctr.ID} stats unavailable") from None
        if prev is not None:
            cur.preread, cur.precpu_stats = prev.read, prev.cpu_stats
        prev = cur
        if not stream and first:
            first = False  # prime the CPU numbers so they are not 0 in the answer
        else:
            yield gojson.encode_stream(cur)
            if not stream:
                return
        await asyncio.sleep(_INTERVAL)
