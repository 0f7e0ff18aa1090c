"""builder/tarsum.py: COPY/ADD source hashes as dockerd 20.10.24 shows them in history
(values observed on the reference for the same context)."""
from __future__ import annotations

import io
import os
import pathlib
import tarfile

from berth.builder import tarsum
from berth.pkg.symlink import follow_symlink_in_scope

F_TXT = "99dab1a7a2dd5d9f985450ffe99777fca12ef0bdae5ec5e071c7846d31930e6d"
D_DIR = "40e886135bcbbcff5cef0b70e14be57ef31a227b3d857859d6c78e49709bb7d3"
MULTI = "2230dd3778c10a2fd21e6026b9d5a50f1e61d35d2d265ce21c34c47bf386045b"


def _context_tar() -> bytes:
    """The tar the docker CLI sends: ustar headers, uid/gid 0, modes without type bits."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data, mode in (("d/", None, 0o755), ("d/a", b"a\n", 0o644), ("d/sub/", None, 0o755),
                                 ("d/sub/b", b"b\n", 0o644), ("f.txt", b"hello\n", 0o644)):
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime = mode, 1700000000
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_archive_sums_match_dockerd(tmp_path: pathlib.Path) -> None:
    root = str(tmp_path)
    sums = tarsum.ArchiveSums(root)
    with tarfile.open(fileobj=io.BytesIO(_context_tar()), mode="r|") as tf:
        tf.extractall(root, filter="tar")
        for m in tf.members:
            sums.add(m)

    def source(*infos: tuple[str, bool]) -> str:
        return tarsum.source_hash(root, lambda rel: follow_symlink_in_scope(os.path.join(root, rel), root),
                                  sums.get, list(infos), archive=True)

    assert source(("f.txt", False)) == f"file:{F_TXT}"
    assert source(("d", True)) == f"dir:{D_DIR}"
    assert source(("f.txt", False), ("d", True)) == f"multi:{MULTI}"
    # a path with no sum in the archive hashes as the path itself (archiveContext.Hash)
    assert source(("nothere", False)) == "file:nothere"


def test_v1_header_fields_and_order() -> None:
    h = tarsum.v1_header("a", 420, 0, 0, 2, b"0", "", "", "", 0, 0, {"user.b": "2", "user.a": "1"})
    assert h == (b"namea" b"mode420" b"uid0" b"gid0" b"size2" b"typeflag0" b"linkname" b"uname" b"gname"
                 b"devmajor0" b"devminor0" b"user.a1" b"user.b2")
