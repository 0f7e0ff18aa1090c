"""Volumes and binds as a container uses them, through the docker CLI: a new volume is
filled from the image, a missing `-v` host directory is made, the local driver's device
options are mounted at first use and unmounted after the last user, and every use logs
`mount`/`unmount` events (as dockerd 20.10)."""
from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from berthd_harness import Berthd


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == path for line in f)


def _run(berthd: Berthd, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return berthd.docker("run", "--rm", "--network", "none", *args, check=check)


def test_new_volume_is_filled_from_the_image(berthd: Berthd) -> None:
    vol, vol2 = _name("fill"), _name("nocopy")
    try:
        assert _run(berthd, "-v", f"{vol}:/usr", "busybox", "ls", "/usr").stdout.split() == [b"bin", b"sbin"]
        # Filled once: what the container leaves is what the next one sees.
        _run(berthd, "-v", f"{vol}:/usr", "busybox", "sh", "-c", "rm -r /usr/sbin; touch /usr/x")
        assert _run(berthd, "-v", f"{vol}:/usr", "busybox", "ls", "/usr").stdout.split() == [b"bin", b"x"]
        # --mount without a source (an anonymous volume), then the nocopy forms.
        out = _run(berthd, "--mount", "type=volume,target=/usr", "busybox", "ls", "/usr").stdout
        assert out.split() == [b"bin", b"sbin"]
        out = _run(berthd, "--mount", "type=volume,target=/usr,volume-nocopy", "busybox", "ls", "/usr").stdout
        assert out == b""
        assert _run(berthd, "-v", f"{vol2}:/usr:nocopy", "busybox", "ls", "/usr").stdout == b""
        # A volume over a file is refused as fs.CopyDir refuses it.
        r = berthd.docker("create", "-v", f"{_name('file')}:/etc/passwd", "busybox", check=False)
        assert r.returncode != 0
        assert b"/etc/passwd is not directory" in r.stderr
    finally:
        berthd.docker("volume", "rm", vol, vol2, check=False)


def test_image_volumes_are_filled_unless_a_tmpfs_is_there(berthd: Berthd) -> None:
    base, img = _name("ivb"), _name("ivimg")
    berthd.docker("create", "--name", base, "busybox")
    try:
        berthd.docker("commit", "-c", "VOLUME /usr", base, img)
        assert _run(berthd, img, "ls", "/usr").stdout.split() == [b"bin", b"sbin"]
        assert _run(berthd, "-v", "/usr", "busybox", "ls", "/usr").stdout.split() == [b"bin", b"sbin"]
        # HasMountFor counts --tmpfs: no anonymous volume under it
        c = _name("ivt")
        berthd.docker("create", "--name", c, "--tmpfs", "/usr", img)
        assert berthd.docker("inspect", "-f", "{{json .Mounts}}", c).stdout.strip() == b"[]"
        berthd.docker("rm", "-v", c)
    finally:
        berthd.docker("rm", base, check=False)
        berthd.docker("rmi", img, check=False)


def test_missing_bind_source_is_created_for_binds_only(berthd: Berthd, tmp_path) -> None:
    src = tmp_path / "data" / "sub"
    out = _run(berthd, "-v", f"{src}:/data", "busybox", "sh", "-c", "echo hi > /data/f; ls /data").stdout
    assert out == b"f\n"
    assert src.is_dir() and (src / "f").read_text() == "hi\n"
    assert oct(src.stat().st_mode & 0o777) == "0o755"
    missing = tmp_path / "nope"
    r = _run(berthd, "--mount", f"type=bind,src={missing},dst=/x", "busybox", "true", check=False)
    assert r.returncode == 125
    assert f'invalid mount config for type "bind": bind source path does not exist: {missing}' in r.stderr.decode()
    assert not missing.exists()


def test_volume_options_are_mounted_at_first_use(berthd: Berthd, tmp_path) -> None:
    tv, bv, bad = _name("tmpfs"), _name("bind"), _name("bad")
    host = tmp_path / "host"
    host.mkdir()
    (host / "f").write_text("from host\n")
    c = _name("vopt")
    try:
        berthd.docker("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
                      "--opt", "o=size=1m,uid=1000", tv)
        berthd.docker("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", f"device={host}", bv)
        tpath = json.loads(berthd.docker("volume", "inspect", tv).stdout)[0]["Mountpoint"]
        assert not _mounted(tpath)
        berthd.docker("run", "-d", "--network", "none", "--name", c, "-v", f"{tv}:/t", "-v", f"{bv}:/b",
                      "busybox", "sleep", "600")
        assert _mounted(tpath)  # mounted while a container uses it
        out = berthd.docker("exec", c, "sh", "-c", "grep ' /t ' /proc/mounts; cat /b/f; stat -c %u /t").stdout
        assert out.decode().splitlines() == ["tmpfs /t tmpfs rw,relatime,size=1024k,uid=1000 0 0",
                                             "from host", "1000"]
        berthd.docker("exec", c, "touch", "/b/written")
        assert (host / "written").exists()
        # a second user shares the mount; the last one out unmounts it
        assert _run(berthd, "-v", f"{tv}:/t", "busybox", "sh", "-c", "touch /t/x; ls /t").stdout == b"x\n"
        assert _mounted(tpath)
        r = berthd.docker("volume", "rm", tv, check=False)
        assert r.returncode != 0 and b"volume is in use" in r.stderr
        berthd.docker("rm", "-f", c)
        assert not _mounted(tpath)
        # A mount that fails is the start's error, in dockerd's words.
        berthd.docker("volume", "create", "--opt", "type=nosuchfs", "--opt", "device=dev0", bad)
        bpath = json.loads(berthd.docker("volume", "inspect", bad).stdout)[0]["Mountpoint"]
        r = _run(berthd, "-v", f"{bad}:/x", "busybox", "true", check=False)
        assert r.returncode == 125
        assert (f"Error response from daemon: error while mounting volume '{bpath}': failed to mount local "
                f"volume: mount dev0:{bpath}: no such device") in r.stderr.decode()
    finally:
        berthd.docker("rm", "-f", c, check=False)
        berthd.docker("volume", "rm", tv, bv, bad, check=False)
    assert not _mounted(tpath)


@pytest.mark.parametrize(("opts", "message"), [
    (["size=1m"], "quota size requested but no quota support"),
    (["size=bogus"], "invalid size: 'bogus'"),
    (["bogus=1"], 'invalid option: "bogus"'),
    (["type=tmpfs"], 'missing required option: "device"'),
    (["o=size=1m", "device=tmpfs"], 'missing required option: "type"'),
])
def test_volume_option_checks(berthd: Berthd, opts: list[str], message: str) -> None:
    name = _name("opt")
    args = [a for o in opts for a in ("--opt", o)]
    r = berthd.docker("volume", "create", *args, name, check=False)
    assert r.returncode == 1
    assert r.stderr.decode().strip() == f"Error response from daemon: create {name}: {message}"


def test_size_zero_is_no_quota(berthd: Berthd) -> None:
    name = _name("size0")
    berthd.docker("volume", "create", "--opt", "size=0", name)
    try:
        out = berthd.docker("volume", "inspect", "-f", "{{json .Options}}", name).stdout
        assert json.loads(out) == {"size": "0"}
        assert _run(berthd, "-v", f"{name}:/x", "busybox", "true").returncode == 0
    finally:
        berthd.docker("volume", "rm", name, check=False)


def _events(berthd: Berthd, since: str, flt: str) -> list[tuple[str, dict[str, str]]]:
    until = str(time.time() + 0.2)
    out = berthd.docker("events", "--since", since, "--until", until, "--filter", "type=volume",
                        "--filter", f"volume={flt}", "--format", "{{.Action}} {{json .Actor.Attributes}}").stdout
    return [(line.split(" ", 1)[0], json.loads(line.split(" ", 1)[1])) for line in out.decode().splitlines()]


def test_mount_and_unmount_events(berthd: Berthd, tmp_path) -> None:
    vol, c = _name("ev"), _name("evc")
    since = str(time.time() - 0.5)
    berthd.docker("volume", "create", vol)
    try:
        cid = berthd.docker("run", "--network", "none", "--name", c, "-v", f"{vol}:/x:ro",
                            "--mount", f"type=volume,src={vol},dst=/y", "busybox", "true").stdout.decode().strip()
        cid = berthd.docker("inspect", "-f", "{{.Id}}", c).stdout.decode().strip()
        f = tmp_path / "f"
        f.write_text("x")
        berthd.docker("cp", str(f), f"{c}:/y/f")  # stat, then extract: two uses
        evs = _events(berthd, since, vol)
        mount = {"container": cid, "driver": "local", "propagation": "", "read/write": "false", "destination": "/x"}
        assert evs[:3] == [("create", {"driver": "local"})] * 3
        assert evs[3:5] == [("mount", mount), ("mount", {**mount, "destination": "/y", "read/write": "true"})]
        assert evs[5:7] == [("unmount", {"container": cid, "driver": "local"})] * 2
        assert [a for a, _ in evs[7:]] == ["mount", "mount", "unmount", "unmount"] * 2
    finally:
        berthd.docker("rm", "-f", c, check=False)
        berthd.docker("volume", "rm", vol, check=False)


COMPOSE_FILE = """\
version: "3.8"
services:
  app:
    image: busybox
    network_mode: none
    command: sh -c "grep ' /data ' /proc/mounts; cat /b/f"
    volumes: ["scratch:/data", "hostbind:/b"]
volumes:
  scratch:
    driver_opts: {{type: tmpfs, device: tmpfs, o: "size=2m,uid=1000"}}
  hostbind:
    driver: local
    driver_opts: {{type: none, o: bind, device: "{host}"}}
"""


def test_compose_driver_opts(berthd: Berthd, tmp_path) -> None:
    import shutil

    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (scripts/install-deps installs it)")
    host = tmp_path / "host"
    host.mkdir()
    (host / "f").write_text("bound\n")
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE.format(host=host))
    project = _name("comp").replace("-", "")
    env = berthd.env()

    def compose(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker-compose", "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, timeout=120)

    try:
        r = compose("up", "--no-color")
        assert r.returncode == 0, r.stderr.decode()
        out = r.stdout.decode()
        assert "tmpfs /data tmpfs rw,relatime,size=2048k,uid=1000 0 0" in out
        assert "bound" in out
        opts = json.loads(berthd.docker("volume", "inspect", "-f", "{{json .Options}}", f"{project}_scratch").stdout)
        assert opts == {"device": "tmpfs", "o": "size=2m,uid=1000", "type": "tmpfs"}
        path = json.loads(berthd.docker("volume", "inspect", f"{project}_scratch").stdout)[0]["Mountpoint"]
        assert not _mounted(path)  # the service exited: its last user is gone
    finally:
        compose("down", "-v")
