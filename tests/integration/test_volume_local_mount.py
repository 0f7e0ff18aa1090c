"""The local driver's device options: mount on first use, unmount after the last user
(needs root: it calls mount(2))."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth import errdefs
from berth.volume import local
from berth.volume.service import VolumeService

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount(2) needs root")


@pytest.fixture
def tmp() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="bv-mnt-")
    try:
        yield d
    finally:
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            target = line.split(" ")[4]
            if target.startswith(d):
                os.system(f"umount -l '{target}'")
        shutil.rmtree(d, ignore_errors=True)


def test_tmpfs_volume_mounts_on_first_use(tmp: str) -> None:
    svc = VolumeService(os.path.join(tmp, "volumes"))
    v = svc.create("bvtmp", "local", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=700"})
    assert not local._is_mounted(v.Mountpoint)
    assert svc.mount("bvtmp", "c1") == v.Mountpoint
    assert svc.mount("bvtmp", "c2") == v.Mountpoint
    assert local._is_mounted(v.Mountpoint)
    svc.unmount("bvtmp", "c1")
    assert local._is_mounted(v.Mountpoint)  # c2 still uses it
    with pytest.raises(errdefs.System, match="^remove bvtmp: volume has active mounts$"):
        svc.remove("bvtmp")
    svc.unmount("bvtmp", "c2")
    assert not local._is_mounted(v.Mountpoint)
    svc.remove("bvtmp")
    assert os.listdir(os.path.join(tmp, "volumes")) == []


def test_mount_failure_message(tmp: str) -> None:
    svc = VolumeService(os.path.join(tmp, "volumes"))
    v = svc.create("bvbad", "local", {"type": "nosuchfs", "device": "bvdev", "o": "size=1m,ro"})
    with pytest.raises(errdefs.System) as exc:
        svc.mount("bvbad", "c1")
    # As dockerd 20.10 words it (the daemon adds "error while mounting volume '<path>': ").
    assert str(exc.value) == (
        f"failed to mount local volume: mount bvdev:{v.Mountpoint}, flags: 0x1, data: size=1m: no such device"
    )


def test_plain_volume_needs_no_mount(tmp: str) -> None:
    svc = VolumeService(os.path.join(tmp, "volumes"))
    v = svc.create("bvplain")
    assert svc.mount("bvplain", "c1") == v.Mountpoint
    assert not local._is_mounted(v.Mountpoint)
    svc.unmount("bvplain", "c1")
