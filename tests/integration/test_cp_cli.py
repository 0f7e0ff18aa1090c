"""docker cp as dockerd 20.10 answers it: the container's own filesystem with its volumes
(never its tmpfs mounts or /proc), owners kept or taken from the host's user database with
-a, dockerd's names and messages."""
from __future__ import annotations

import io
import os
import subprocess
import tarfile
import uuid

from berthd_harness import Berthd


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
        return list(tf)


def _raw_names(data: bytes, n: int) -> list[bytes]:
    """The first `n` member names as written (tarfile strips a leading `/` on reading)."""
    out, off = [], 0
    while len(out) < n and data[off:off + 512].strip(b"\0"):
        h = data[off:off + 512]
        out.append(h[:100].rstrip(b"\0"))
        size = int(h[124:136].strip(b"\0 ") or b"0", 8)
        off += 512 + (size + 511) // 512 * 512
    return out


def test_cp_of_a_running_container_sees_its_filesystem_not_its_mounts(berthd: Berthd) -> None:
    c, vol = _name("cprun"), _name("cpv")
    try:
        berthd.docker("run", "-d", "--network", "none", "--name", c, "--tmpfs", "/tm", "-v", f"{vol}:/v",
                      "busybox", "sh", "-c", "echo t > /tm/t; echo v > /v/v; touch /rootfile; sleep 600")
        berthd.docker("exec", c, "test", "-e", "/rootfile")
        for path in ("/tm/t", "/proc/version"):
            r = berthd.docker("cp", f"{c}:{path}", "-", check=False)
            assert r.returncode == 1
            assert r.stderr.decode().strip() == \
                f"Error response from daemon: Could not find the file {path} in container {c}"
        (m,) = _members(berthd.docker("cp", f"{c}:/v/v", "-").stdout)
        assert m.name == "v" and m.size == 2
        assert [m.name for m in _members(berthd.docker("cp", f"{c}:/rootfile", "-").stdout)] == ["rootfile"]
        # the container keeps its volume mounted after a copy's set-up is undone
        berthd.docker("exec", c, "test", "-e", "/v/v")
    finally:
        berthd.docker("rm", "-f", c, check=False)
        berthd.docker("volume", "rm", vol, check=False)


def test_cp_of_the_root_names_members_from_slash(berthd: Berthd) -> None:
    c = _name("cproot")
    berthd.docker("create", "--name", c, "busybox")
    try:
        data = berthd.docker("cp", f"{c}:/", "-").stdout
        assert _raw_names(data, 3) == [b"/", b"/.dockerenv", b"/bin/"]
        assert _raw_names(berthd.docker("cp", f"{c}:/bin", "-").stdout, 2) == [b"bin/", b"bin/arch"]
        assert _raw_names(berthd.docker("cp", f"{c}:/.", "-").stdout, 2) == [b"./", b"./.dockerenv"]
    finally:
        berthd.docker("rm", c)


def test_cp_archive_keeps_owners_unless_user(berthd: Berthd, tmp_path) -> None:
    src = tmp_path / "dir"
    src.mkdir()
    (src / "f").write_text("a\n")
    os.chown(src / "f", 1234, 2345)
    os.chown(src, 1234, 2345)
    os.utime(src, (1_600_000_000, 1_600_000_000))
    names = [_name("cpa"), _name("cpu"), _name("cpn"), _name("cpx")]
    users = ["", "nobody", "root", "2:3"]
    try:
        for c, user in zip(names, users, strict=True):
            berthd.docker("create", "--name", c, *(["--user", user] if user else []), "busybox")
        # No User: -a keeps the archive's owners, as without -a; the directory keeps its time.
        berthd.docker("cp", "-a", str(src), f"{names[0]}:/d")
        berthd.docker("cp", str(src), f"{names[0]}:/e")
        for d in ("d", "e"):
            ms = _members(berthd.docker("cp", f"{names[0]}:/{d}", "-").stdout)
            assert [(m.name, m.uid, m.gid) for m in ms] == [(d, 1234, 2345), (f"{d}/f", 1234, 2345)]
            assert ms[0].mtime == 1_600_000_000
        # With a User, dockerd looks it up in the host's user database.
        nobody = subprocess.run(["getent", "passwd", "nobody"], capture_output=True, text=True).stdout.split(":")
        berthd.docker("cp", "-a", str(src), f"{names[1]}:/d")
        ms = _members(berthd.docker("cp", f"{names[1]}:/d", "-").stdout)
        assert {(m.uid, m.gid) for m in ms} == {(int(nobody[2]), int(nobody[3]))}
        berthd.docker("cp", "-a", str(src), f"{names[2]}:/d")
        assert {(m.uid, m.gid) for m in _members(berthd.docker("cp", f"{names[2]}:/d", "-").stdout)} == {(0, 0)}
        r = berthd.docker("cp", "-a", str(src), f"{names[3]}:/d", check=False)
        assert r.returncode == 1
        assert r.stderr.decode().strip() == \
            'Error response from daemon: getent unable to find entry "2:3" in passwd database'
    finally:
        for c in names:
            berthd.docker("rm", c, check=False)


def test_cp_of_what_is_not_a_tar(berthd: Berthd) -> None:
    c = _name("cpnt")
    berthd.docker("create", "--name", c, "busybox")
    try:
        cut = io.BytesIO()
        with tarfile.open(fileobj=cut, mode="w") as tf:
            ti = tarfile.TarInfo("big")
            ti.size = 5000
            tf.addfile(ti, io.BytesIO(b"x" * 5000))
        for body, err in ((b"notatar\n", "unexpected EOF"), (os.urandom(1000), "archive/tar: invalid tar header"),
                          (cut.getvalue()[:2048], "unexpected EOF")):
            r = berthd.docker("cp", "-", f"{c}:/", input=body, check=False)
            assert r.returncode == 1
            assert r.stderr.decode().strip() == \
                f"Error response from daemon: Error processing tar file(exit status 1): {err}"
        assert berthd.docker("cp", "-", f"{c}:/", input=b"").returncode == 0  # no header: an empty archive
    finally:
        berthd.docker("rm", c)


def test_cp_into_a_stopped_container_makes_its_bind_source(berthd: Berthd, tmp_path) -> None:
    c = _name("cpbind")
    src = tmp_path / "made"
    berthd.docker("create", "--name", c, "-v", f"{src}:/b", "busybox")
    try:
        berthd.docker("cp", "-", f"{c}:/b", input=_tar_with("x", b"1"))
        assert (src / "x").read_bytes() == b"1"  # setupMounts made the missing source
    finally:
        berthd.docker("rm", c)


def _tar_with(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return out.getvalue()


def test_cp_with_a_mount_source_gone(berthd: Berthd, tmp_path) -> None:
    c = _name("cpgone")
    src = tmp_path / "gone"
    src.mkdir()
    berthd.docker("create", "--name", c, "--mount", f"type=bind,src={src},dst=/g", "busybox")
    try:
        src.rmdir()
        r = berthd.docker("cp", f"{c}:/etc/passwd", "-", check=False)
        assert r.returncode == 1
        assert r.stderr.decode().strip() == \
            f"Error response from daemon: Could not find the file /etc/passwd in container {c}"
        assert not src.exists()  # a --mount bind source is never made
    finally:
        berthd.docker("rm", c)
