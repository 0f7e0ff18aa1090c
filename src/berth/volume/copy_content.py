"""Populate a fresh volume from the image (moby v20.10.24 container/container_unix.go
`copyExistingContents`, which calls continuity's fs.CopyDir).

Only an empty volume is filled. Everything is copied with its owner, mode, times and
extended attributes, hard links stay hard links, symlinks are copied as links, device
nodes and FIFOs are recreated; sockets are skipped. Like fs.CopyDir, the volume's own
directory takes the owner and mode of the image directory, so a volume on an
image's `/tmp` is 1777 and one on a directory owned by a service user belongs to it.
Blocking; call from a worker thread.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat

__all__ = ["copy_existing_contents"]


def copy_existing_contents(source: str, destination: str) -> None:
    """Copy `source`'s tree into `destination` unless `destination` has entries."""
    with os.scandir(destination) as it:
        if any(True for _ in it):
            return
    _copy_directory(destination, source, {})


def _copy_directory(dst: str, src: str, inodes: dict[tuple[int, int], str]) -> None:
    st = os.lstat(src)
    if not stat.S_ISDIR(st.st_mode):
        # continuity fs.CopyDir's text, which dockerd returns as it is
        raise NotADirectoryError(errno.ENOTDIR, f"source {src} is not directory")
    if not os.path.isdir(dst):
        os.mkdir(dst, stat.S_IMODE(st.st_mode))
    with os.scandir(src) as it:
        entries = list(it)
    # Before the children, as continuity does: a directory's mtime ends up "now".
    _copy_file_info(st, dst, src)
    for entry in entries:
        s = entry.path
        d = os.path.join(dst, entry.name)
        est = entry.stat(follow_symlinks=False)
        mode = est.st_mode
        if stat.S_ISDIR(mode):
            _copy_directory(d, s, inodes)
            continue
        if stat.S_ISREG(mode) and est.st_nlink > 1:
            key = (est.st_dev, est.st_ino)
            first = inodes.get(key)
            if first is not None:
                os.link(first, d)
                continue
            inodes[key] = d
        if stat.S_ISREG(mode):
            with open(s, "rb") as fs, open(d, "wb") as fd:
                shutil.copyfileobj(fs, fd, 1 << 20)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(d, mode, est.st_rdev)
        else:
            continue  # sockets and the like: continuity skips them with a warning
        _copy_file_info(est, d, s)


def _copy_file_info(st: os.stat_result, dst: str, src: str) -> None:
    """continuity copyFileInfo + copyXAttrs: owner, mode (not for links), xattrs, times."""
    is_link = stat.S_ISLNK(st.st_mode)
    os.lchown(dst, st.st_uid, st.st_gid)
    if not is_link:
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    _copy_xattrs(dst, src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=not is_link)


def _copy_xattrs(dst: str, src: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA):
            return
        raise
    for name in names:
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError as e:
            # security.selinux and friends may be refused on the target fs; fs.CopyDir's
            # default handler in moby also gives up on xattrs the target cannot take.
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
                raise
