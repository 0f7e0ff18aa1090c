"""Health probes as exec instances (ExecIDs, exec inspect, timeout, StartInterval) and
`docker cp` on a stopped container seeing its volumes and binds (daemon/health.py,
daemon/archive.py; compared with the reference dockerd 20.10)."""
from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import time
import uuid

import pytest


def _name() -> str:
    return "hc-" + uuid.uuid4().hex[:10]


def _wait(fn, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    return fn()


def test_probe_is_an_exec_while_it_runs(berthd) -> None:  # type: ignore[no-untyped-def]
    import docker

    name = _name()
    berthd.docker("run", "-d", "--name", name, "--health-cmd", "sleep 3; echo hi", "--health-interval", "1s",
                  "--health-timeout", "10s", "busybox", "sleep", "600")
    c = docker.DockerClient(base_url=berthd.host, version="1.41")
    try:
        ids = _wait(lambda: c.api.inspect_container(name)["ExecIDs"])
        assert ids and len(ids) == 1
        info = c.api.exec_inspect(ids[0])
        assert info["Running"] is True and info["ExitCode"] is None
        assert info["ProcessConfig"] == {"tty": False, "entrypoint": "/bin/sh", "arguments": ["-c", "sleep 3; echo hi"],
                                         "privileged": False}
        assert (info["OpenStdin"], info["OpenStdout"], info["OpenStderr"]) == (False, True, True)
        h = _wait(lambda: (c.api.inspect_container(name)["State"]["Health"] or {}).get("Status") == "healthy"
                  and c.api.inspect_container(name)["State"]["Health"])
        assert h and h["Log"][0]["ExitCode"] == 0 and h["Log"][0]["Output"] == "hi\n"
        done = c.api.exec_inspect(ids[0])  # still inspectable once finished
        assert done["Running"] is False and done["ExitCode"] == 0
    finally:
        c.close()
        berthd.docker("rm", "-f", name, check=False)


def test_probe_timeout(berthd) -> None:  # type: ignore[no-untyped-def]
    import docker

    name = _name()
    berthd.docker("run", "-d", "--name", name, "--health-cmd", "sleep 5", "--health-interval", "1s",
                  "--health-timeout", "1s", "--health-retries", "1", "busybox", "sleep", "600")
    c = docker.DockerClient(base_url=berthd.host, version="1.41")
    try:
        h = _wait(lambda: (c.api.inspect_container(name)["State"]["Health"] or {}).get("Log")
                  and c.api.inspect_container(name)["State"]["Health"])
        assert h["Log"][0]["ExitCode"] == -1
        assert h["Log"][0]["Output"] == "Health check exceeded timeout (1s)"
        assert h["Status"] == "unhealthy"
    finally:
        c.close()
        berthd.docker("rm", "-f", name, check=False)


def test_pause_and_stop_leave_health_unhealthy(berthd) -> None:  # type: ignore[no-untyped-def]
    """dockerd stops the probe loop while paused and after an exit, and a stopped loop
    reads `unhealthy` (Health.CloseMonitorChannel); unpause resumes probing, start is
    `starting` again. (As the reference dockerd 20.10 answered the same commands.)"""
    name = _name()
    berthd.docker("run", "-d", "--name", name, "--health-cmd", "true", "--health-interval", "1s",
                  "--health-retries", "2", "busybox", "sleep", "600")

    def status() -> str:
        return berthd.docker("inspect", "-f", "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
                             name).stdout.decode().strip()
    try:
        assert _wait(lambda: status() == "healthy 0")
        berthd.docker("pause", name)
        assert status() == "unhealthy 0"
        time.sleep(1.5)  # no probe runs while paused: nothing fails
        assert status() == "unhealthy 0"
        berthd.docker("unpause", name)
        assert status() == "unhealthy 0"
        assert _wait(lambda: status() == "healthy 0")
        berthd.docker("stop", "-t", "0", name)
        assert status() == "unhealthy 0"
        berthd.docker("start", name)
        assert status() == "starting 0"
    finally:
        berthd.docker("rm", "-f", name, check=False)


def test_start_interval_api_1_44(berthd) -> None:  # type: ignore[no-untyped-def]
    import docker

    name = _name()
    c = docker.DockerClient(base_url=berthd.host, version="1.44")
    api = c.api
    body = {"Image": "busybox", "Cmd": ["sleep", "600"],
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30 * 10**9, "StartPeriod": 60 * 10**9,
                            "StartInterval": 500 * 10**6}}
    r = api.post(api._url("/containers/create"), params={"name": name}, json=body)
    try:
        assert r.status_code == 201, r.text
        hc = api.inspect_container(name)["Config"]["Healthcheck"]
        assert hc["StartInterval"] == 500 * 10**6
        api.start(name)
        # Probes every 0.5s while starting: healthy long before the 30s Interval.
        assert _wait(lambda: (api.inspect_container(name)["State"]["Health"] or {}).get("Status") == "healthy", 8)
    finally:
        c.close()
        berthd.docker("rm", "-f", name, check=False)


@pytest.fixture
def bind_dir():  # type: ignore[no-untyped-def]
    d = tempfile.mkdtemp(prefix="bt-upd-bind-")
    os.makedirs(os.path.join(d, "sub"))
    with open(os.path.join(d, "sub", "f.txt"), "w") as f:
        f.write("bindfile\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _mount_count(path: str) -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(path in line for line in f)


def test_cp_stopped_container_sees_volumes_and_binds(berthd, bind_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name, vol = _name(), "hcvol-" + uuid.uuid4().hex[:8]
    berthd.docker("run", "--name", name, "-v", f"{vol}:/data", "-v", f"{bind_dir}:/mnt/b", "-v", f"{bind_dir}:/ro:ro",
                  "busybox", "sh", "-c", "echo volfile > /data/v.txt")
    try:
        before = _mount_count(berthd.data_root)
        berthd.docker("cp", f"{name}:/data/v.txt", str(tmp_path))
        assert (tmp_path / "v.txt").read_text() == "volfile\n"
        berthd.docker("cp", f"{name}:/mnt/b/sub", str(tmp_path))
        assert (tmp_path / "sub" / "f.txt").read_text() == "bindfile\n"
        (tmp_path / "n.txt").write_text("new\n")
        berthd.docker("cp", str(tmp_path / "n.txt"), f"{name}:/mnt/b/")
        assert (pathlib.Path(bind_dir) / "n.txt").read_text() == "new\n"
        berthd.docker("cp", str(tmp_path / "n.txt"), f"{name}:/data/")
        r = berthd.docker("cp", str(tmp_path / "n.txt"), f"{name}:/ro/", check=False)
        assert r.stderr.decode().strip() == "Error response from daemon: mounted volume is marked read-only"
        out = berthd.docker("run", "--rm", "-v", f"{vol}:/x", "busybox", "ls", "/x").stdout.decode().split()
        assert out == ["n.txt", "v.txt"]
        assert _mount_count(berthd.data_root) == before  # nothing left mounted on the host
        assert _mount_count(bind_dir) == 0
    finally:
        berthd.docker("rm", "-f", name, check=False)
        berthd.docker("volume", "rm", "-f", vol, check=False)


def test_cp_to_stdout_headers_as_dockerd(berthd, sleeper) -> None:  # type: ignore[no-untyped-def]
    """`docker cp c:/path -` streams pkg/archive's headers: whole-second mtimes, so no PAX
    record (Python's tarfile would add one for a fractional mtime), owners by name too."""
    import io
    import subprocess
    import tarfile

    berthd.docker("exec", sleeper, "sh", "-c", "mkdir -p /d/e && echo x > /d/f && ln -s f /d/l && ln /d/f /d/h")
    out = subprocess.run(["docker", "-H", berthd.host, "cp", f"{sleeper}:/d", "-"], capture_output=True,
                         check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tf:
        members = list(tf)
    got = [(m.name, m.type, m.linkname, m.uname, m.gname, m.pax_headers) for m in members]
    assert got == [("d", tarfile.DIRTYPE, "", "root", "root", {}), ("d/e", tarfile.DIRTYPE, "", "root", "root", {}),
                   ("d/f", tarfile.REGTYPE, "", "root", "root", {}), ("d/h", tarfile.LNKTYPE, "d/f", "root", "root", {}),
                   ("d/l", tarfile.SYMTYPE, "f", "root", "root", {})]
    assert b"PaxHeader" not in out and all(isinstance(m.mtime, int) for m in members)
