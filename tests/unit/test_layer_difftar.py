"""berth.layer.difftar: the commit layer tar as dockerd writes it."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile

import pytest

from berth.layer.changes import CHANGE_ADD, CHANGE_DELETE, CHANGE_MODIFY, Change
from berth.layer.difftar import EMPTY_TAR_DIGEST, write_changes, write_overlay_diff


@pytest.fixture()
def tmp():
    d = tempfile.mkdtemp(prefix="berth-dpy-difftar-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: m for m in t.getmembers()}


def test_empty_upper_is_the_empty_tar(tmp):
    out = io.BytesIO()
    write_overlay_diff(tmp, out)
    data = out.getvalue()
    assert len(data) == 1024  # no record padding, as Go's tar.Writer
    assert "sha256:" + hashlib.sha256(data).hexdigest() == EMPTY_TAR_DIGEST


def test_overlay_files_links_and_whiteouts(tmp):
    os.makedirs(os.path.join(tmp, "d/e"))
    with open(os.path.join(tmp, "f"), "w") as f:
        f.write("hi\n")
    os.link(os.path.join(tmp, "f"), os.path.join(tmp, "g"))
    os.symlink("/f", os.path.join(tmp, "s"))
    os.mkdir(os.path.join(tmp, "bin"))
    if os.geteuid() == 0:
        os.mknod(os.path.join(tmp, "bin/ls"), 0o600 | 0o020000, os.makedev(0, 0))
    out = io.BytesIO()
    write_overlay_diff(tmp, out)
    m = _members(out.getvalue())
    assert m["f"].isreg() and m["f"].size == 3 and m["f"].uname == ""
    assert m["g"].islnk() and m["g"].linkname == "f"
    assert m["s"].issym() and m["s"].linkname == "/f"
    assert m["d"].isdir() and m["d/e"].isdir()
    if os.geteuid() == 0:
        wo = m["bin/.wh.ls"]
        assert wo.isreg() and wo.size == 0 and wo.mode == 0o600
        assert "bin/ls" not in m
    assert len(out.getvalue()) % 512 == 0


def test_export_changes_for_vfs(tmp):
    os.makedirs(os.path.join(tmp, "etc"))
    with open(os.path.join(tmp, "etc/new"), "w") as f:
        f.write("x")
    changes = [Change("/etc", CHANGE_MODIFY), Change("/etc/new", CHANGE_ADD), Change("/bin/gone", CHANGE_DELETE)]
    out = io.BytesIO()
    write_changes(tmp, changes, out)
    m = _members(out.getvalue())
    assert list(m) == ["bin/.wh.gone", "etc", "etc/new"]
    assert m["bin/.wh.gone"].size == 0 and m["etc/new"].size == 1
