#!/usr/bin/env python3
"""How soon is a SIGKILLed daemon ready again? Fills a fresh data root with N containers
(`--running R` of them running `sleep`), SIGKILLs the daemon, starts it again and polls
until it answers `/_ping`, lists every container, inspects a random one, and has
re-attached the running ones (their `/wait` answers, which needs the monitor back).
Times are from the new daemon's spawn, best of `--rounds` restarts (the same data root);
`cpu` is the CPU the daemon (and its children, dockerd's containerd) used until then.

    python3 bench/restart_bench.py --n 1000 [--running 5] [--rounds 3]
    python3 bench/restart_bench.py --n 1000 --dockerd      # a private dockerd 20.10, same steps

`--dockerd` starts its own dockerd (own socket, data root, exec root and containerd, no
bridge, no iptables, --live-restore as Berth by default) so the shared reference is never
restarted; its containers use
`--network none`. Everything lives under `--tmp` (default /tmp/h12-restart-*) and is
removed at the end, the running containers killed first.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 120) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path_ = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path_)


def call(sock: str, method: str, url: str, body: dict | None = None, timeout: float = 120) -> tuple[int, bytes]:
    c = UnixConn(sock, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, "/v1.41" + url, body=data,
                  headers={"Content-Type": "application/json"} if data is not None else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Daemon:
    def __init__(self, tmp: str, dockerd: bool) -> None:
        self.tmp, self.dockerd = tmp, dockerd
        self.sock = os.path.join(tmp, "d.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        root, ex = os.path.join(self.tmp, "root"), os.path.join(self.tmp, "exec")
        pid = os.path.join(ex, "d.pid")
        if self.dockerd:
            return ["dockerd", "-H", f"unix://{self.sock}", "--data-root", root, "--exec-root", ex, "--pidfile", pid,
                    "--bridge", "none", "--iptables=false", "--ip-masq=false", "--live-restore",
                    "--config-file", os.path.join(self.tmp, "daemon.json")]
        return [sys.executable, "-m", "berth", "-H", f"unix://{self.sock}", "--data-root", root, "--exec-root", ex,
                "--pidfile", pid, "--config-file", os.path.join(self.tmp, "daemon.json")]

    def start(self) -> float:
        # a daemon as installed runs from bytecode: no PYTHONDONTWRITEBYTECODE from the caller
        env = dict(os.environ, PYTHONPATH=SRC)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        with open(os.path.join(self.tmp, "daemon.json"), "w") as f:
            f.write("{}")
        with open(os.path.join(self.tmp, "daemon.log"), "ab") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        return t0

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.dockerd:
            # its containerd dies with it, a moment later; a dockerd started before that
            # finds the old pid alive and waits for a socket that never comes
            try:
                with open(os.path.join(self.tmp, "exec", "containerd", "containerd.pid")) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                return
            deadline = time.time() + 10
            while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def until(fn, t0: float, deadline: float = 120) -> float:  # type: ignore[no-untyped-def]
    while True:
        try:
            if fn():
                return time.perf_counter() - t0
        except (OSError, http.client.HTTPException):
            pass
        if time.perf_counter() - t0 > deadline:
            raise SystemExit("daemon not ready in time")
        time.sleep(0.005)


def load_busybox(sock: str) -> None:
    sys.path.insert(0, SRC)
    from berth.tools import busybox

    data = busybox.save_tar("busybox:latest")
    c = UnixConn(sock)
    c.request("POST", "/v1.41/images/load?quiet=1", body=data, headers={"Content-Type": "application/x-tar"})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status


def fill(sock: str, n: int, running: int, dockerd: bool) -> tuple[list[str], list[str]]:
    hc = {"NetworkMode": "none"} if dockerd else {}

    def one(i: int) -> str:
        st, out = call(sock, "POST", f"/containers/create?name=rb{i}",
                       {"Image": "busybox", "Cmd": ["sleep", "3600"] if i < running else ["true"], "HostConfig": hc})
        assert st == 201, out
        cid = json.loads(out)["Id"]
        if i < running:
            st, out = call(sock, "POST", f"/containers/{cid}/start")
            assert st == 204, out
        return cid

    with ThreadPoolExecutor(4) as ex:
        ids = list(ex.map(one, range(n)))
    return ids, ids[:running]


def ready(d: Daemon, t0: float, ids: list[str], live: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    out["ping"] = until(lambda: call(d.sock, "GET", "/_ping", timeout=5)[0] == 200, t0)
    out["list"] = until(lambda: (lambda r: r[0] == 200 and len(json.loads(r[1])) == len(ids))(
        call(d.sock, "GET", "/containers/json?all=1", timeout=30)), t0)
    pick = random.choice(ids)
    out["inspect"] = until(lambda: call(d.sock, "GET", f"/containers/{pick}/json", timeout=30)[0] == 200, t0)

    def attached() -> bool:
        for cid in live:
            st, body = call(d.sock, "GET", f"/containers/{cid}/json", timeout=30)
            if st != 200 or not json.loads(body)["State"]["Running"]:
                return False
        return True

    out["running"] = until(attached, t0)
    out["ready"] = max(out.values())
    # CPU the daemon (with dockerd: and its containerd) spent to get there: on a shared
    # machine the wall times above carry the others' load, this does not
    assert d.proc is not None
    out["cpu"] = _cpu(d.proc.pid) + sum(_cpu(c) for c in _children(d.proc.pid))
    return out


def _cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(p))
            except OSError:
                pass
    return out


def cleanup(d: Daemon, live: list[str]) -> None:
    for cid in live:
        try:
            call(d.sock, "POST", f"/containers/{cid}/kill", timeout=30)
        except OSError:
            pass
    d.stop()
    root = os.path.realpath(d.tmp)
    with open("/proc/self/mountinfo") as f:
        points = [ln.split()[4] for ln in f]
    for mp in sorted((p for p in points if p.startswith(root + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    shutil.rmtree(d.tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--running", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dockerd", action="store_true")
    ap.add_argument("--tmp", default="")
    ap.add_argument("--keep", action="store_true", help="leave the daemon stopped and its data root in --tmp; "
                    "a later run with the same --tmp reuses it")
    a = ap.parse_args()
    tmp = a.tmp or tempfile.mkdtemp(prefix="h12-restart-")
    os.makedirs(tmp, exist_ok=True)
    d = Daemon(tmp, a.dockerd)
    live: list[str] = []
    try:
        t0 = d.start()
        until(lambda: call(d.sock, "GET", "/_ping", timeout=5)[0] == 200, t0)
        have = json.loads(call(d.sock, "GET", "/containers/json?all=1")[1])
        if have:
            ids = [c["Id"] for c in have]
            live = [c["Id"] for c in have if c["State"] == "running"]
            print(f"reusing {len(ids)} containers ({len(live)} running)")
        else:
            load_busybox(d.sock)
            t = time.perf_counter()
            ids, live = fill(d.sock, a.n, a.running, a.dockerd)
            print(f"{'dockerd' if a.dockerd else 'berthd'}: {a.n} containers ({a.running} running) made in "
                  f"{time.perf_counter() - t:.1f} s")
        rows = []
        for _ in range(a.rounds):
            d.kill()
            time.sleep(0.5)
            t0 = d.start()
            r = ready(d, t0, ids, live)
            rows.append(r)
            print("  restart after SIGKILL: " + "  ".join(f"{k} {v * 1000:.0f} ms" for k, v in r.items()))
        best = min(rows, key=lambda r: r["ready"])
        print("  best: " + "  ".join(f"{k} {v * 1000:.0f} ms" for k, v in best.items()))
    finally:
        if a.keep:
            d.stop()
        else:
            cleanup(d, live)


if __name__ == "__main__":
    main()
