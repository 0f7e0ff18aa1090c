"""Test harness: start and stop a real berthd on a temporary socket and data root."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

# Slow hosts (scripts/guest-test's software-emulated guest sets 10): every wait is this
# many times longer.
TIME_SCALE = float(os.environ.get("BERTH_TEST_TIME_SCALE", "1"))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)


@dataclass
class Berthd:
    """A running berthd started by a test; stopped by its pid only."""

    proc: subprocess.Popen[bytes]
    tmp: str
    sock: str
    data_root: str
    exec_root: str
    log_path: str

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def env(self, api: str | None = None) -> dict[str, str]:
        env = dict(os.environ, DOCKER_HOST=self.host)
        env.pop("DOCKER_API_VERSION", None)
        if api:
            env["DOCKER_API_VERSION"] = api
        env["DOCKER_CONFIG"] = os.path.join(self.tmp, "docker-config")
        return env

    def docker(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 60,
               api: str | None = None) -> subprocess.CompletedProcess[bytes]:
        r = subprocess.run(["docker", *args], env=self.env(api), input=input, capture_output=True,
                           timeout=timeout * TIME_SCALE)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}): {r.stderr.decode()}")
        return r

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


def start_berthd(tmp: str | None = None, extra: list[str] | None = None,
                 extra_env: dict[str, str] | None = None, prefix: list[str] | None = None) -> Berthd:
    """`prefix` runs the daemon under a wrapper (`ip netns exec NS` for a daemon in a
    network namespace of its own)."""
    tmp = tmp or tempfile.mkdtemp(prefix="berth-test-")
    sock = os.path.join(tmp, "berth.sock")
    data_root = os.path.join(tmp, "root")
    exec_root = os.path.join(tmp, "exec")
    log_path = os.path.join(tmp, "berthd.log")
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # every inspect answered from the cache is checked against a fresh one (daemon/inspect.py)
    env.setdefault("BERTH_CHECK_INSPECT_CACHE", "1")
    env.update(extra_env or {})
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "berth", "-H", f"unix://{sock}", "--data-root", data_root,
             "--exec-root", exec_root, "--pidfile", os.path.join(exec_root, "berthd.pid"),
             "--config-file", os.path.join(tmp, "daemon.json"), *(extra or [])],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    b = Berthd(proc, tmp, sock, data_root, exec_root, log_path)
    try:
        wait_ping(b)
    except BaseException:
        # a daemon that never answered is still ours to stop
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    return b


def wait_ping(b: Berthd, timeout: float = 20) -> None:
    import socket

    deadline = time.time() + timeout * TIME_SCALE
    while time.time() < deadline:
        if b.proc.poll() is not None:
            raise RuntimeError(f"berthd exited ({b.proc.returncode}):\n{b.log()}")
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(b.sock)
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            ok = b" 200 " in s.recv(100)[:16]
            s.close()
            if ok:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"berthd did not answer on {b.sock}:\n{b.log()}")


def stop_berthd(b: Berthd, sig: int = signal.SIGTERM, cleanup: bool = True) -> None:
    if b.proc.poll() is None:
        b.proc.send_signal(sig)
        try:
            b.proc.wait(20)
        except subprocess.TimeoutExpired:
            b.proc.kill()
            b.proc.wait()
    if cleanup:
        unmount_under(b.tmp)
        shutil.rmtree(b.tmp, ignore_errors=True)


def unmount_under(path: str) -> None:
    """Unmount anything the daemon left mounted below `path`, deepest first."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for mp in sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


