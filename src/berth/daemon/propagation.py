"""Bind propagation checks of setMounts (moby/daemon/oci_linux.go getSourceMount,
ensureShared, ensureSharedOrSlave, and the RootfsPropagation they imply).

A `shared`/`rshared` bind needs its source on a shared mount and a `slave`/`rslave`
one on a shared or slave mount, else the container does not start; dockerd checks this
in /proc/self/mountinfo while it builds the spec.
"""
from __future__ import annotations

import os

from .. import errdefs


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape")


def get_source_mount(source: str, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, str]:
    """getSourceMount: the longest mount point that prefixes the resolved `source` (a
    plain string prefix, mountinfo.ParentsFilter; the first one on a tie) and its
    optional fields."""
    path = os.path.realpath(source)
    best, optional, found = "", "", False
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-", 6)
            except ValueError:
                continue
            mp = _unescape(fields[4])
            if path.startswith(mp) and (not found or len(mp) > len(best)):
                best, optional, found = mp, " ".join(fields[6:sep]), True
    if not found:
        raise errdefs.System(f"Can't find mount point of {source}")
    return best, optional


def _has_option(optional: str, *prefixes: str) -> bool:
    return any(o.startswith(p) for o in optional.split() for p in prefixes)


def ensure_shared(path: str) -> None:
    mp, optional = get_source_mount(path)
    if not _has_option(optional, "shared:"):
        raise errdefs.System(f"path {path} is mounted on {mp} but it is not a shared mount")


def ensure_shared_or_slave(path: str) -> None:
    mp, optional = get_source_mount(path)
    if not _has_option(optional, "shared:", "master:"):
        raise errdefs.System(f"path {path} is mounted on {mp} but it is not a shared or slave mount")


def check_bind_propagation(source: str, prop: str, rootfs_propagation: str, daemon_root: str,
                           explicit: bool) -> str:
    """setMounts' propagation step for one bind; returns the new RootfsPropagation.

    A slave bind from inside the daemon root (or holding it) whose propagation the user
    did not set falls back to the default quietly, as dockerd does for compatibility.
    """
    if prop in ("shared", "rshared"):
        ensure_shared(source)
        if rootfs_propagation not in ("shared", "rshared"):
            return "shared"
    elif prop in ("slave", "rslave"):
        try:
            ensure_shared_or_slave(source)
        except errdefs.System:
            if explicit or not (source.startswith(daemon_root) or daemon_root.startswith(source)):
                raise
            return rootfs_propagation
        if rootfs_propagation not in ("shared", "rshared", "slave", "rslave"):
            return "rslave"
    return rootfs_propagation
