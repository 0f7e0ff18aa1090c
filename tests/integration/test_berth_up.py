"""scripts/berth-up gives an empty store the busybox image the tests use."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from berthd_harness import ROOT, SRC, start_berthd, stop_berthd


def test_berth_up_loads_the_test_busybox(busybox_tar: str, tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    (tmp_path / "d").mkdir()
    b = start_berthd(str(tmp_path / "d"))  # already answering: berth-up starts nothing
    try:
        env = dict(os.environ, BERTH_SOCK=b.sock, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
        r = subprocess.run([os.path.join(ROOT, "scripts", "berth-up")], env=env, capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr.decode()
        assert b"loaded busybox:latest" in r.stdout
        img = json.loads(b.docker("image", "inspect", "busybox").stdout)[0]
        assert img["Config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        assert img["Config"]["Cmd"] == ["sh"] and img["Comment"] == ""
        # the very image `docker load` of the tests' tar gives
        with open(busybox_tar, "rb") as f:
            loaded = b.docker("load", input=f.read()).stdout.decode()
        assert loaded.strip() == "Loaded image: busybox:latest"
        assert json.loads(b.docker("image", "inspect", "busybox").stdout)[0]["Id"] == img["Id"]
        # a store that has an image is left alone
        r = subprocess.run([os.path.join(ROOT, "scripts", "berth-up")], env=env, capture_output=True, timeout=300)
        assert r.returncode == 0 and b"loaded" not in r.stdout
    finally:
        stop_berthd(b)
