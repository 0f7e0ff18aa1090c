"""COPY and ADD sources and their copy into a layer (moby/builder/dockerfile/copy.go,
internals.go performCopy/performCopyForInfo, copy_unix.go).

Runs in a worker thread: it walks and copies files. Every source path is resolved
inside its root (the context or a mounted image) and every destination inside the
new layer's mount, with symlinks followed in scope, so neither side can escape.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass

from .. import errdefs
from ..image import pathmatch
from ..image.reference import ReferenceError
from ..layer.archive import decompress_stream
from . import tarsum
from .context import member_filter, scoped_path
from .tarsum import ArchiveSums

_WILDCARDS = "*?["


class CopyError(errdefs.DockerError):
    """A copy failure; the dispatcher prefixes "COPY failed: " / "ADD failed: "."""


@dataclass
class CopyInfo:
    root: str  # the source root (context dir or mounted image)
    rel: str  # path inside it, cleaned, no leading slash ("" is the root)
    path: str  # host path, resolved in scope
    is_dir: bool


def _walk(root: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames) + sorted(filenames):
            out.append(name if rel_dir == "." else f"{rel_dir}/{name}")
    return sorted(out)


def collect(root: str, sources: list[str]) -> list[CopyInfo]:
    """calcCopyInfo for every source: wildcards match context paths (filepath.Match);
    a plain path must exist."""
    infos: list[CopyInfo] = []
    for src in sources:
        clean = posixpath.normpath("/" + src).lstrip("/")
        if any(c in clean for c in _WILDCARDS):
            for rel in _walk(root):
                try:
                    hit = pathmatch.match(clean, rel)
                except ReferenceError as e:
                    raise CopyError(str(e)) from None
                if hit:
                    path = scoped_path(root, rel)
                    infos.append(CopyInfo(root, rel, path, os.path.isdir(path)))
            continue
        path = scoped_path(root, clean)
        if not os.path.lexists(path):
            raise CopyError(f"file not found in build context or excluded by .dockerignore: "
                            f"stat {clean or '.'}: file does not exist")
        infos.append(CopyInfo(root, clean, path, os.path.isdir(path)))
    if not infos:
        raise CopyError("no source files were specified")
    return infos


def source_hash(infos: list[CopyInfo], sums: ArchiveSums | None) -> str:
    """getSourceHashFromInfos: `file:`, `dir:` or `multi:` and the sources' tarsums as
    dockerd computes them (builder/tarsum.py): from the context tar's headers (`sums`), or
    from lstat for a `--from` root (sums None)."""
    root = infos[0].root
    file_sum = sums.get if sums is not None else (lambda rel: tarsum.lazy_sum(root, rel))
    return tarsum.source_hash(root, lambda rel: scoped_path(root, rel), file_sum,
                              [(i.rel, i.is_dir) for i in infos], archive=sums is not None)


def _chown(path: str, ids: tuple[int, int] | None) -> None:
    if ids is not None:
        os.lchown(path, ids[0], ids[1])


def _mkdir_all(rootfs: str, rel_dir: str, ids: tuple[int, int]) -> None:
    """MkdirAllAndChownNew: missing parents are made 0755 and owned by the copy's owner."""
    cur = "/"
    for part in [p for p in rel_dir.split("/") if p]:
        cur = posixpath.join(cur, part)
        host = scoped_path(rootfs, cur)
        if not os.path.lexists(host):
            os.mkdir(host, 0o755)
            _chown(host, ids)
        elif not os.path.isdir(host):
            raise CopyError(f"mkdir {cur}: not a directory")


def _copy_entry(src: str, dst: str, ids: tuple[int, int]) -> None:
    st = os.lstat(src)
    if os.path.lexists(dst) and not (stat.S_ISDIR(st.st_mode) and os.path.isdir(dst)):
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        else:
            os.unlink(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(dst):
            os.mkdir(dst, 0o755)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    else:
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    _chown(dst, ids)
    if not stat.S_ISLNK(st.st_mode):
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_dir(src_dir: str, rootfs: str, dest_dir: str, ids: tuple[int, int]) -> None:
    """copyDirectory: the directory's contents (not the directory) into dest."""
    _mkdir_all(rootfs, dest_dir, ids)
    for rel in _walk(src_dir):
        dst_rel = posixpath.join(dest_dir, rel)
        parent = scoped_path(rootfs, posixpath.dirname(dst_rel))
        _copy_entry(os.path.join(src_dir, rel), os.path.join(parent, posixpath.basename(dst_rel)), ids)


def _is_archive(path: str) -> bool:
    """isArchivePath: a (possibly compressed) tar whose first header reads."""
    try:
        with open(path, "rb") as f, tarfile.open(fileobj=decompress_stream(f), mode="r|") as tf:
            return tf.next() is not None
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return False


def _untar(path: str, rootfs: str, dest_dir: str, ids: tuple[int, int]) -> None:
    _mkdir_all(rootfs, dest_dir, ids)
    target = scoped_path(rootfs, dest_dir)
    with open(path, "rb") as f, tarfile.open(fileobj=decompress_stream(f), mode="r|") as tf:
        tf.extractall(target, filter=member_filter)


def copy_into(rootfs: str, infos: list[CopyInfo], dest: str, ids: tuple[int, int], decompress: bool) -> None:
    """performCopyForInfo for each source, `dest` absolute (WORKDIR already applied)."""
    dest_is_dir_hint = dest.endswith("/") or dest.endswith("/.")
    dest_clean = posixpath.normpath(dest)
    for info in infos:
        if info.is_dir:
            _copy_dir(info.path, rootfs, dest_clean, ids)
            continue
        if decompress and not os.path.islink(info.path) and _is_archive(info.path):
            _untar(info.path, rootfs, dest_clean, ids)
            continue
        target_rel = dest_clean
        existing = scoped_path(rootfs, dest_clean)
        if dest_is_dir_hint or os.path.isdir(existing):
            target_rel = posixpath.join(dest_clean, posixpath.basename(info.rel or info.path))
        _mkdir_all(rootfs, posixpath.dirname(target_rel), ids)
        parent = scoped_path(rootfs, posixpath.dirname(target_rel))
        src = info.path
        _copy_entry(src, os.path.join(parent, posixpath.basename(target_rel)), ids)


def _lookup(rootfs: str, fname: str, key: str, field_no: int) -> int | None:
    try:
        with open(scoped_path(rootfs, f"/etc/{fname}"), encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) > field_no and parts[0] == key:
                    return int(parts[field_no])
    except (OSError, ValueError):
        pass
    return None


def parse_chown(rootfs: str, spec: str) -> tuple[int, int]:
    """parseChownFlag: `user[:group]`, names looked up in the image's /etc/passwd and
    /etc/group; a user alone gives its own id as the group too."""
    user, _, group = spec.partition(":")
    group = group or user
    uid = int(user) if user.isdigit() else _lookup(rootfs, "passwd", user, 2)
    if uid is None:
        raise CopyError(f"unable to convert uid/gid chown string to host mapping: can't find uid for user "
                        f"{user}: no such user: {user}")
    gid = int(group) if group.isdigit() else _lookup(rootfs, "group", group, 2)
    if gid is None:
        raise CopyError(f"unable to convert uid/gid chown string to host mapping: can't find gid for group "
                        f"{group}: no such group: {group}")
    return uid, gid
