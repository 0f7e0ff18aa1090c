"""`docker update` (moby daemon/update.go ContainerUpdate and update,
container/container_unix.go UpdateContainer, daemon/update_linux.go toContainerdResources).

The request's resources are verified as a create's are (verifyContainerSettings with
update=true, 400), merged into the container's HostConfig field by field (only non-zero
values replace, with dockerd's 409 "Conflicting options" checks), checkpointed, then, for
a running container, applied to its cgroups with `runc update --resources -`. A failure
after the merge puts the old HostConfig back, as dockerd's deferred restoreConfig does.
"""
from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

import msgspec

from .. import errdefs
from ..runtime import specs
from ..runtime.oci import OCIRuntimeError
from ..types.container import HostConfig, RestartPolicy, UpdateConfig
from . import monitor
from .verify import verify_container_settings

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

log = logging.getLogger("berth.daemon")


class UpdateResponse(msgspec.Struct):
    """container.ContainerUpdateOKBody: Warnings is `null` when there are none (a nil
    slice in dockerd, checked on the reference)."""

    Warnings: list[str] | None


# The Resources fields, in Go order (everything of UpdateConfig but RestartPolicy).
RESOURCE_FIELDS: tuple[str, ...] = tuple(f for f in UpdateConfig.__struct_fields__ if f != "RestartPolicy")


def host_config_from_update(uc: UpdateConfig) -> HostConfig:
    """postContainerUpdate: `&container.HostConfig{Resources: ..., RestartPolicy: ...}`."""
    hc = HostConfig()
    for f in RESOURCE_FIELDS:
        setattr(hc, f, copy.copy(getattr(uc, f)))
    hc.RestartPolicy = RestartPolicy(Name=uc.RestartPolicy.Name,
                                     MaximumRetryCount=uc.RestartPolicy.MaximumRetryCount)
    return hc


def _conflict(msg: str) -> errdefs.Conflict:
    """conflictingUpdateOptions: a Conflict (409)."""
    return errdefs.Conflict(msg)


def update_container(cur: HostConfig, hc: HostConfig) -> None:
    """container_unix.go UpdateContainer: merge the non-zero resources of `hc` into `cur`.

    Raises errdefs.Conflict with dockerd's messages; `cur` may be partly changed when it
    does (dockerd restores its backup then, and so does the caller)."""
    # NanoCPUs replaces CPUPeriod/CPUQuota, so once one side is set the other is refused.
    if hc.NanoCpus > 0 and cur.CpuPeriod > 0:
        raise _conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if hc.NanoCpus > 0 and cur.CpuQuota > 0:
        raise _conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if hc.CpuPeriod > 0 and cur.NanoCpus > 0:
        raise _conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if hc.CpuQuota > 0 and cur.NanoCpus > 0:
        raise _conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    for f in ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems"):
        if getattr(hc, f):
            setattr(cur, f, getattr(hc, f))
    if hc.Memory != 0:
        # dockerd 20.10 compares with the current swap even when that is 0 (unset) or -1
        # (unlimited): a memory update without --memory-swap is then refused (reference).
        if hc.Memory > cur.MemorySwap and hc.MemorySwap == 0:
            raise _conflict("Memory limit should be smaller than already set memoryswap limit, "
                            "update the memoryswap at the same time")
        cur.Memory = hc.Memory
    for f in ("MemorySwap", "MemoryReservation", "KernelMemory", "CpuRealtimePeriod", "CpuRealtimeRuntime"):
        if getattr(hc, f):
            setattr(cur, f, getattr(hc, f))
    if hc.PidsLimit is not None:
        cur.PidsLimit = hc.PidsLimit
    if hc.RestartPolicy.Name:
        if cur.AutoRemove and hc.RestartPolicy.Name != "no":
            raise _conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
        cur.RestartPolicy = hc.RestartPolicy


def to_containerd_resources(hc: HostConfig) -> specs.LinuxResources:
    """update_linux.go toContainerdResources: the request's own values (not the merged
    ones); zeros mean "leave as is" to the runtime. Swap only when positive."""
    # A zero is left out rather than sent: runc reads 0 as "unchanged", but crun writes
    # what is present (memory.max 0, a cpu.weight from 0 shares) and refuses any kernel
    # memory field on cgroup v2, so absent is the one spelling both read as "leave it".
    cpu = specs.LinuxCPU(shares=hc.CpuShares or None, cpus=hc.CpusetCpus or "", mems=hc.CpusetMems or "")
    period, quota = 0, 0
    if hc.NanoCpus != 0:
        period = 100_000  # 100ms in µs
        quota = hc.NanoCpus * period // 1_000_000_000
    if quota == 0 and hc.CpuQuota != 0:
        quota = hc.CpuQuota
    if period == 0 and hc.CpuPeriod != 0:
        period = hc.CpuPeriod
    cpu.period, cpu.quota = period or None, quota or None
    mem = specs.LinuxMemory(limit=hc.Memory or None, reservation=hc.MemoryReservation or None,
                            kernel=hc.KernelMemory or None)
    if hc.MemorySwap > 0:
        mem.swap = hc.MemorySwap
    pids = None
    if hc.PidsLimit is not None:
        # The router turned "unlimited" (<= 0) into 0; runc reads 0 as "unchanged" and a
        # negative limit as "max", which is what dockerd's cgroup ends up with (reference).
        pids = specs.LinuxPids(limit=hc.PidsLimit if hc.PidsLimit > 0 else -1)
    return specs.LinuxResources(memory=mem, cpu=cpu, pids=pids,
                                block_io=specs.LinuxBlockIO(weight=hc.BlkioWeight or None))


def live_resources(merged: HostConfig, req: HostConfig) -> HostConfig:
    """What the runtime is given under the systemd driver: the merged limits, not only the
    request's. crun sets a changed CPU weight as a property of the container's scope and
    systemd then rewrites the whole cgroup from the scope's own settings, which never held
    the limits crun wrote as files: `update --cpu-shares` reset memory.max, cpu.max and
    pids.max (guest comparison). runc puts every limit on the scope, so dockerd keeps them;
    sending them all again (pids "max" when unset) ends in the same cgroup. A memory
    update without swap leaves memory.swap.max as it is, as runc does for dockerd."""
    hc = copy.copy(merged)
    if req.Memory and not req.MemorySwap:
        hc.MemorySwap = 0
    if not hc.PidsLimit or hc.PidsLimit < 0:
        hc.PidsLimit = -1
    return hc


def _cannot_update(ctr_id: str, err: errdefs.DockerError) -> errdefs.DockerError:
    """errCannotUpdate: errors.Wrap keeps the class (so the status)."""
    return type(err)(f"Cannot update container {ctr_id}: {err}")


def _runtime_error(name: str, e: OCIRuntimeError) -> str:
    """How containerd's go-runc and errdefs word a failed `runc update` for dockerd:
    `runc did not terminate successfully: exit status 1: <runc's message>\\n: unknown`."""
    return f"{name} did not terminate successfully: exit status {e.returncode or 1}: {e}\n: unknown"


async def container_update(d: Daemon, name: str, uc: UpdateConfig) -> UpdateResponse:
    """ContainerUpdate: verify (400), then update."""
    hc = host_config_from_update(uc)
    warnings = verify_container_settings(hc, None, d.sysinfo, d.default_runtime, d.runtimes, update=True,
                                         systemd_cgroup=d.systemd_cgroup)
    await update(d, name, hc)
    return UpdateResponse(Warnings=warnings or None)


async def update(d: Daemon, name: str, hc: HostConfig) -> None:
    """daemon.update: merge, checkpoint, follow the restart policy, apply to the cgroups."""
    ctr = d.get_container(name)
    # The merge and its checks run without an await, so they are atomic on the loop
    # (dockerd holds container.Lock for them); the checkpoint is one thread hop.
    if ctr.State.RemovalInProgress or ctr.State.Dead:
        raise errdefs.Untyped(f'Cannot update container {ctr.ID}: container is marked for removal and cannot be "update"')
    backup = copy.copy(ctr.host_config)
    try:
        update_container(ctr.host_config, hc)
    except errdefs.DockerError as e:
        ctr.host_config = backup
        raise _cannot_update(ctr.ID, e) from None
    try:
        await d.run_blocking(ctr.to_disk)
    except OSError as e:
        await _restore(d, ctr, backup)
        raise errdefs.Untyped(f"Cannot update container {ctr.ID}: {e}") from None
    if hc.RestartPolicy.Name:
        monitor.update_restart_policy(ctr)
    try:
        await _apply(ctr, live_resources(ctr.host_config, hc) if d.systemd_cgroup else hc)
    except errdefs.DockerError:
        await _restore(d, ctr, backup)
        raise
    d.log_container_event(ctr, "update")  # 20.10: only once the runtime took it (reference)


async def _apply(ctr: Container, hc: HostConfig) -> None:
    """A stopped or restarting container gets its resources at its next start; a running
    (or paused) one gets them now through the runtime."""
    proc = ctr.process
    if not ctr.State.Running or ctr.State.Restarting or proc is None:
        return
    runtime = proc.runtime
    try:
        await runtime.update(ctr.ID, to_containerd_resources(hc))
    except OCIRuntimeError as e:
        raise errdefs.System(f"Cannot update container {ctr.ID}: {_runtime_error(runtime.name, e)}") from None


async def _restore(d: Daemon, ctr: Container, backup: HostConfig) -> None:
    """The deferred restoreConfig: put the old HostConfig back unless the container is
    going away, and checkpoint it."""
    if ctr.State.RemovalInProgress or ctr.State.Dead:
        return
    ctr.host_config = backup
    try:
        await d.run_blocking(ctr.to_disk)
    except OSError:
        log.exception("restoring the host config of %s", ctr.ID)
