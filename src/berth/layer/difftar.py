"""A container RW layer's changes as a layer tar, for `docker commit`
(moby/layer/mounted_layer.go TarStream → graphdriver Diff).

overlay2 (moby/daemon/graphdriver/overlay2/overlay.go Diff with native diff) tars the
upper dir as it is (pkg/archive TarWithOptions, OverlayWhiteoutFormat): a 0/0 character
device becomes an empty `.wh.<name>` file and an opaque directory gets an empty
`.wh..wh..opq` file inside it (archive_linux.go overlayWhiteoutConverter.ConvertWrite).
vfs has no upper dir: the naive diff (graphdriver/fsdiff.go Diff) exports the changes
against the `-init` layer (pkg/archive ExportChanges), a deletion as a `.wh.` file.

The stream ends as Go's tar.Writer ends one: two zero blocks and no record padding, so
a layer with no change is exactly the 1024-byte empty tar whose digest dockerd treats
as "no layer" (layer.DigestSHA256EmptyTar).
"""
from __future__ import annotations

import os
import stat
import tarfile
import time
from typing import BinaryIO

from .changes import CHANGE_DELETE, Change

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE_DIR = ".wh..wh..opq"
EMPTY_TAR_DIGEST = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


class _Writer:
    """tarfile in PAX format with Go's header conventions (archive.go addTarFile)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._tf = tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)

    def add_path(self, full: str, name: str) -> tarfile.TarInfo | None:
        """One entry from the filesystem; hard links to an earlier entry become links."""
        ti = self._tf.gettarinfo(full, arcname=name)
        if ti is None:  # a socket: pkg/archive skips them too
            return None
        if ti.isdir() and not ti.name.endswith("/"):
            ti.name += "/"
        ti.uname = ti.gname = ""  # the archive carries numeric owners only
        ti.mtime = int(ti.mtime)  # whole seconds, so no PAX record is needed for it
        return ti

    def write(self, ti: tarfile.TarInfo, full: str | None) -> None:
        if ti.isreg() and ti.size and full is not None:
            with open(full, "rb") as f:
                self._tf.addfile(ti, f)
        else:
            ti.size = 0 if not ti.isreg() or full is None else ti.size
            self._tf.addfile(ti)

    def empty_file(self, name: str, like: tarfile.TarInfo | None, mode: int = 0o600,
                   mtime: int | None = None) -> None:
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.REGTYPE
        ti.mode = mode
        if like is not None:
            ti.uid, ti.gid, ti.mtime = like.uid, like.gid, like.mtime
        else:
            ti.mtime = int(time.time())
        if mtime is not None:
            ti.mtime = mtime
        self._tf.addfile(ti)

    def close(self) -> None:
        # TarFile.close would pad to a 10 KiB record; Go's writer stops after two blocks.
        self._out.write(tarfile.NUL * (tarfile.BLOCKSIZE * 2))
        self._tf.closed = True  # type: ignore[attr-defined]  # tarfile's own flag, not in its stubs


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def write_overlay_diff(upper: str, out: BinaryIO) -> None:
    """TarWithOptions(upper, OverlayWhiteoutFormat): lexical walk, root itself left out."""
    w = _Writer(out)

    def visit(rel: str) -> None:
        full = os.path.join(upper, rel)
        st = os.lstat(full)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            d, base = os.path.split(rel)
            ti = w.add_path(full, rel)
            w.empty_file(os.path.join(d, WHITEOUT_PREFIX + base), ti)
            return
        ti = w.add_path(full, rel)
        if ti is None:
            return
        w.write(ti, full)
        if stat.S_ISDIR(st.st_mode):
            if _is_opaque(full):
                # The opaque marker's header has no ModTime: Go writes the zero time as 0.
                w.empty_file(rel + "/" + WHITEOUT_OPAQUE_DIR, ti, ti.mode & 0o777, mtime=0)
            for name in sorted(os.listdir(full)):
                visit(rel + "/" + name)

    for name in sorted(os.listdir(upper)):
        visit(name)
    w.close()


def write_changes(root: str, changes: list[Change], out: BinaryIO) -> None:
    """ExportChanges(root, changes): whiteouts for deletions, the files themselves else."""
    w = _Writer(out)
    for ch in sorted(changes, key=lambda c: c.Path):
        if ch.Kind == CHANGE_DELETE:
            d, base = os.path.split(ch.Path)
            w.empty_file(os.path.join(d, WHITEOUT_PREFIX + base).lstrip("/"), None)
            continue
        full = root + ch.Path
        ti = w.add_path(full, ch.Path.lstrip("/"))
        if ti is not None:
            w.write(ti, full)
    w.close()
