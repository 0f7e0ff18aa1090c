"""Attach, exec, cp, export, diff, top and stats through the real docker CLI and SDK
(STREAMS helper; compared by hand with the reference dockerd 20.10)."""
from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import signal
import struct
import tarfile
import termios
import time
import uuid

import pytest


def _name() -> str:
    return "st-" + uuid.uuid4().hex[:10]


@pytest.fixture
def app(sleeper: str) -> str:
    return sleeper


def _pty_run(env: dict[str, str], argv: list[str], steps: list[tuple[str, object, float]]) -> tuple[bytes, int]:
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvpe(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    out = b""

    def read_for(t: float) -> None:
        nonlocal out
        end = time.time() + t
        while time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if not data:
                    return
                out += data

    try:
        for kind, val, wait in steps:
            if kind == "send":
                os.write(fd, val)  # type: ignore[arg-type]
            else:
                h, w = val  # type: ignore[misc]
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
                os.kill(pid, signal.SIGWINCH)
            read_for(wait)
        read_for(3)
    finally:
        deadline = time.time() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.time() > deadline:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.05)
        os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def test_run_stdin_pipe(berthd) -> None:  # type: ignore[no-untyped-def]
    r = berthd.docker("run", "-i", "--rm", "busybox", "cat", input=b"data\nmore\n")
    assert r.stdout == b"data\nmore\n"


def test_run_output_streams_and_exit_code(berthd) -> None:  # type: ignore[no-untyped-def]
    r = berthd.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert r.returncode == 3
    assert r.stdout == b"out\n"
    assert r.stderr == b"err\n"


def test_run_it_resize_and_ctrl_d(berthd) -> None:  # type: ignore[no-untyped-def]
    out, rc = _pty_run(berthd.env(), ["docker", "run", "-it", "--rm", "busybox", "sh"],
                       [("send", b"", 2), ("send", b"stty size\r", 1), ("resize", (40, 120), 1),
                        ("send", b"stty size; tty\r", 1), ("send", b"\x04", 1)])
    assert b"30 100" in out
    assert b"40 120" in out
    assert b"/dev/pts/0" in out
    assert rc == 0


def test_attach_detach_keys(berthd) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    berthd.docker("run", "-dit", "--name", name, "busybox", "sh")
    try:
        out, _ = _pty_run(berthd.env(), ["docker", "attach", name],
                          [("send", b"", 1), ("send", b"echo attached\r", 1), ("send", b"\x10", 0.3),
                           ("send", b"\x11", 1)])
        assert b"attached\r\n" in out
        assert b"read escape sequence" in out
        assert berthd.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == b"true"
    finally:
        berthd.docker("rm", "-f", name, check=False)


def test_exec_exit_codes_and_streams(berthd, app) -> None:  # type: ignore[no-untyped-def]
    r = berthd.docker("exec", app, "sh", "-c", "echo hi; echo e >&2; exit 5", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (5, b"hi\n", b"e\n")
    r = berthd.docker("exec", app, "nope", check=False)
    assert r.returncode == 126
    assert b'exec: "nope": executable file not found in $PATH' in r.stdout + r.stderr
    r = berthd.docker("exec", "-u", "nobody2", app, "id", check=False)
    assert r.returncode == 126
    assert b"unable to find user nobody2: no matching entries in passwd file" in r.stdout + r.stderr
    r = berthd.docker("exec", "-u", "nobody", "-w", "/tmp", "-e", "X=1", app, "sh", "-c", "id -u; pwd; echo $X")
    assert r.stdout == b"65534\n/tmp\n1\n"
    assert berthd.docker("exec", "-i", app, "cat", input=b"piped\n").stdout == b"piped\n"


def test_exec_it(berthd, app) -> None:  # type: ignore[no-untyped-def]
    out, rc = _pty_run(berthd.env(), ["docker", "exec", "-it", app, "sh"],
                       [("send", b"", 1.5), ("send", b"stty size\r", 1), ("resize", (33, 77), 1),
                        ("send", b"stty size\r", 1), ("send", b"exit 4\r", 1)])
    assert b"30 100" in out and b"33 77" in out
    assert rc == 4


def test_exec_sdk_inspect_and_events(berthd, app) -> None:  # type: ignore[no-untyped-def]
    import docker

    c = docker.DockerClient(base_url=berthd.host, version="1.41")
    try:
        ctr = c.containers.get(app)
        res = ctr.exec_run(["sh", "-c", "echo a; exit 2"], demux=True)
        assert res.exit_code == 2 and res.output == (b"a\n", None)
        eid = c.api.exec_create(app, ["sleep", "30"])["Id"]
        c.api.exec_start(eid, detach=True)
        assert eid in c.api.inspect_container(app)["ExecIDs"]
        info = c.api.exec_inspect(eid)
        assert info["Running"] is True and info["Pid"] > 0
        assert info["ProcessConfig"] == {"tty": False, "entrypoint": "sleep", "arguments": ["30"],
                                         "privileged": False}
        with pytest.raises(docker.errors.APIError) as e:
            c.api.exec_start(eid, detach=True)
        assert e.value.status_code == 409 and "is already running" in str(e.value)
        with pytest.raises(docker.errors.NotFound):
            c.api.exec_inspect("nope")
    finally:
        c.close()


def test_cp_both_ways_export_diff(berthd, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    berthd.docker("cp", str(src), f"{app}:/tmp/")
    assert berthd.docker("exec", app, "cat", "/tmp/hello.txt").stdout == b"hello\n"
    berthd.docker("cp", f"{app}:/etc", str(tmp_path / "out"))
    assert (tmp_path / "out" / "passwd").exists()
    berthd.docker("cp", f"{app}:/bin/sh", str(tmp_path / "sh"))
    assert os.readlink(tmp_path / "sh") == "/bin/busybox"
    r = berthd.docker("cp", f"{app}:/nope", str(tmp_path / "x"), check=False)
    assert b"Could not find the file /nope in container " + app.encode() in r.stderr
    r = berthd.docker("cp", str(src), f"{app}:/etc/passwd/x", check=False)
    assert b"extraction point is not a directory" in r.stderr
    diff = berthd.docker("diff", app).stdout.decode().splitlines()
    assert "A /tmp/hello.txt" in diff and "C /tmp" in diff
    data = berthd.docker("export", app).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
    assert "bin/busybox" in names and "tmp/hello.txt" in names


def test_top_and_stats(berthd, app) -> None:  # type: ignore[no-untyped-def]
    top = berthd.docker("top", app).stdout.decode().splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"] and "sleep 600" in top[1]
    assert berthd.docker("top", app, "-o", "pid,comm").stdout.decode().splitlines()[1].split()[1] == "sleep"
    out = berthd.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", app).stdout.decode()
    assert out.strip() == f"{app} 1"
    name = _name()
    berthd.docker("create", "--name", name, "busybox")
    try:
        r = berthd.docker("top", name, check=False)
        assert r.returncode != 0 and b"is not running" in r.stderr
    finally:
        berthd.docker("rm", "-f", name)
