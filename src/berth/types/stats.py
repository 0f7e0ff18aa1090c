"""GET /containers/{id}/stats objects (moby api/types/stats.go), in Go field order;
omitempty fields are UNSET-able / omit_defaults."""
from __future__ import annotations

from msgspec import UNSET, Struct, UnsetType, field


class ThrottlingData(Struct):
    periods: int = 0
    throttled_periods: int = 0
    throttled_time: int = 0


class CPUUsage(Struct):
    total_usage: int = 0
    percpu_usage: list[int] | UnsetType = UNSET
    usage_in_kernelmode: int = 0
    usage_in_usermode: int = 0


class CPUStats(Struct):
    cpu_usage: CPUUsage = field(default_factory=CPUUsage)
    system_cpu_usage: int | UnsetType = UNSET
    online_cpus: int | UnsetType = UNSET
    throttling_data: ThrottlingData = field(default_factory=ThrottlingData)


class MemoryStats(Struct, omit_defaults=True):
    usage: int = 0
    max_usage: int = 0
    stats: dict[str, int] | None = None
    failcnt: int = 0
    limit: int = 0


class BlkioStatEntry(Struct):
    major: int
    minor: int
    op: str
    value: int


class BlkioStats(Struct):
    io_service_bytes_recursive: list[BlkioStatEntry] | None = None
    io_serviced_recursive: list[BlkioStatEntry] | None = None
    io_queue_recursive: list[BlkioStatEntry] | None = None
    io_service_time_recursive: list[BlkioStatEntry] | None = None
    io_wait_time_recursive: list[BlkioStatEntry] | None = None
    io_merged_recursive: list[BlkioStatEntry] | None = None
    io_time_recursive: list[BlkioStatEntry] | None = None
    sectors_recursive: list[BlkioStatEntry] | None = None


class StorageStats(Struct, omit_defaults=True):
    pass


class PidsStats(Struct, omit_defaults=True):
    current: int = 0
    limit: int = 0


class NetworkStats(Struct):
    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


class StatsJSON(Struct):
    """types.StatsJSON (types.Stats embedded, then name, id, networks)."""

    read: str = "0001-01-01T00:00:00Z"
    preread: str = "0001-01-01T00:00:00Z"
    pids_stats: PidsStats = field(default_factory=PidsStats)
    blkio_stats: BlkioStats = field(default_factory=BlkioStats)
    num_procs: int = 0
    storage_stats: StorageStats = field(default_factory=StorageStats)
    cpu_stats: CPUStats = field(default_factory=CPUStats)
    precpu_stats: CPUStats = field(default_factory=CPUStats)
    memory_stats: MemoryStats = field(default_factory=MemoryStats)
    name: str = ""
    id: str = ""
    networks: dict[str, NetworkStats] | UnsetType = UNSET
