"""The `<id>-init` layer of a container (moby/daemon/initlayer/setup_unix.go).

dockerd mounts the fresh init layer over the image and, in the merged view,
unlinks and recreates a fixed set of paths: empty files that the daemon bind-mounts
over at start (`/etc/hosts`, ...), the mount points `/proc`, `/sys`, `/dev/pts`,
`/dev/shm`, and `/etc/mtab -> /proc/mounts`. Everything lands in the init layer's
upper directory, with the parent directories copied up from the image.

Berth writes the same entries straight into the init layer's diff directory,
without a mount, to keep container create cheap: parent directories take their
mode, owner and times from the nearest image layer that has them (what copy-up
would have produced). Paths the image already has as the right kind are left
alone, as dockerd's `os.Stat` check does for directories.
"""
from __future__ import annotations

import os
import stat

# (path, kind): "dir", "file", or a symlink target. Order as in setup_unix.go's map is
# irrelevant to the result; this order creates parents first.
_INIT_PATHS = (
    ("/dev/pts", "dir"),
    ("/dev/shm", "dir"),
    ("/proc", "dir"),
    ("/sys", "dir"),
    ("/.dockerenv", "file"),
    ("/etc/resolv.conf", "file"),
    ("/etc/hosts", "file"),
    ("/etc/hostname", "file"),
    ("/dev/console", "file"),
    ("/etc/mtab", "/proc/mounts"),
)


def _lookup(lowers: list[str], rel: str) -> os.stat_result | None:
    """lstat of `rel` in the merged image (nearest layer first); None if absent or whited out."""
    for lower in lowers:
        try:
            st = os.lstat(os.path.join(lower, rel))
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None  # overlay whiteout
        return st
    return None


def _ensure_parent(upper: str, lowers: list[str], rel_dir: str) -> None:
    if not rel_dir or os.path.isdir(os.path.join(upper, rel_dir)):
        return
    _ensure_parent(upper, lowers, os.path.dirname(rel_dir))
    path = os.path.join(upper, rel_dir)
    st = _lookup(lowers, rel_dir)
    if st is not None and stat.S_ISDIR(st.st_mode):
        os.mkdir(path)
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.mkdir(path, 0o755)  # MkdirAllAndChownNew(…, 0755, root)
        os.chmod(path, 0o755)


def setup_init_layer(upper: str, lowers: list[str]) -> None:
    """Populate `upper` (the init layer's diff dir) over the image layers `lowers` (nearest first)."""
    for pth, kind in _INIT_PATHS:
        rel = pth.lstrip("/")
        if kind == "dir":
            st = _lookup(lowers, rel)
            if st is not None and stat.S_ISDIR(st.st_mode):
                continue  # os.Stat finds the image's directory: nothing to do
        _ensure_parent(upper, lowers, os.path.dirname(rel))
        path = os.path.join(upper, rel)
        try:
            os.unlink(path)  # as dockerd's unix.Unlink; directories stay (EISDIR)
        except OSError:
            pass
        if os.path.lexists(path):
            continue
        if kind == "dir":
            os.mkdir(path, 0o755)
            os.chmod(path, 0o755)
        elif kind == "file":
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o755)
            os.close(fd)
        else:
            os.symlink(kind, path)
