"""The cgroup driver: who makes a container's cgroup (moby daemon/daemon_unix.go getCD,
verifyCgroupDriver, UsingSystemd, cgroupDriver; oci_linux.go WithCgroups).

`cgroupfs`: the runtime writes /sys/fs/cgroup itself, at `<parent>/<id>` (parent /berth).
`systemd`: the runtime asks systemd for a transient scope unit (`--systemd-cgroup`, the
cgroupsPath `slice:prefix:name` form), so the container is `system.slice/berth-<id>.scope`
and systemd's accounting and delegation stay consistent. As dockerd 20.10, systemd is the
default on a cgroup v2 host booted with systemd; `--exec-opt native.cgroupdriver=...` (or
daemon.json `exec-opts`) chooses explicitly.
"""
from __future__ import annotations

import functools
import os

CGROUPFS = "cgroupfs"
SYSTEMD = "systemd"
NONE = "none"
# The unit prefix: a container's scope is `<prefix>-<id>.scope` (dockerd: docker-<id>.scope).
SCOPE_PREFIX = "berth"
CGROUPFS_PARENT = "/berth"
SYSTEMD_PARENT = "system.slice"
# crun (v2, systemd driver) would put the processes in a `container` child of the scope;
# an empty subgroup keeps them in the scope itself, as runc does: the limits, memory.events
# (conmon's OOM check reads its own cgroup's `oom` count) and /proc/<pid>/cgroup then all
# name the same cgroup, system.slice/berth-<id>.scope. runc ignores the annotation.
SYSTEMD_ANNOTATIONS = {"run.oci.systemd.subgroup": ""}
_SLICE_ERROR = 'cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"'


def get_cd(exec_opts: list[str]) -> str:
    """getCD: the raw value of the first `native.cgroupdriver=` option (key case-insensitive;
    options without `=` are skipped, as ParseKeyValueOpt's error is)."""
    for opt in exec_opts:
        key, sep, val = opt.partition("=")
        if not sep:
            continue
        if key.strip().lower() == "native.cgroupdriver":
            return val.strip()
    return ""


def verify_cgroup_driver(exec_opts: list[str]) -> None:
    """verifyCgroupDriver: ValueError with dockerd's message."""
    cd = get_cd(exec_opts)
    if cd in ("", CGROUPFS, SYSTEMD):
        return
    if cd == NONE:
        raise ValueError(f"native.cgroupdriver option {cd} is internally used and cannot be specified manually")
    raise ValueError(f"native.cgroupdriver option {cd} not supported")


@functools.lru_cache(maxsize=1)
def is_running_systemd() -> bool:
    """sd_booted(3): /run/systemd/system is a directory."""
    return os.path.isdir("/run/systemd/system") and not os.path.islink("/run/systemd/system")


def using_systemd(exec_opts: list[str], cgroup_v2: bool, running_systemd: bool | None = None) -> bool:
    """UsingSystemd: asked for, or the default on a cgroup v2 host run by systemd."""
    cd = get_cd(exec_opts)
    if cd == SYSTEMD:
        return True
    if running_systemd is None:
        running_systemd = is_running_systemd()
    return cd == "" and cgroup_v2 and running_systemd


def verify_cgroup_parent(parent: str, systemd: bool) -> None:
    """The daemon's --cgroup-parent and a container's (verifyDaemonSettings,
    verifyPlatformContainerSettings): under systemd it must be a slice."""
    if parent and systemd and (len(parent) <= 6 or not parent.endswith(".slice")):
        raise ValueError(_SLICE_ERROR)


def cgroups_path(ctr_id: str, ctr_parent: str, daemon_parent: str, systemd: bool) -> str:
    """WithCgroups: linux.cgroupsPath. systemd: `slice:berth:<id>` (the runtime makes the
    scope berth-<id>.scope in that slice); cgroupfs: `<parent>/<id>` made absolute."""
    parent = ctr_parent or daemon_parent or (SYSTEMD_PARENT if systemd else CGROUPFS_PARENT)
    if systemd:
        return f"{parent}:{SCOPE_PREFIX}:{ctr_id}"
    return os.path.join(parent if parent.startswith("/") else "/" + parent, ctr_id)
