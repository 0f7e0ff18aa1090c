"""Logging under load, against one daemon: a container printing many lines (json-file),
and fluentd with a receiver that is slow (reads 64 KiB every 10 ms), in blocking and
non-blocking mode. Prints how long the container ran, how long until every line was
delivered, how many arrived, and the daemon's `/_ping` latency meanwhile (p50/max, every
50 ms) — the daemon must keep answering.

    python3 bench/logs_load.py /run/berth/berth.sock --lines 1000000 --port 15560
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import threading
import time


class Pinger(threading.Thread):
    def __init__(self, sock: str) -> None:
        super().__init__(daemon=True)
        self.sock, self.lat, self.stop = sock, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.monotonic()
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.sock)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while s.recv(4096):
                pass
            s.close()
            self.lat.append(time.monotonic() - t)
            time.sleep(0.05)

    def report(self) -> str:
        self.stop.set()
        self.join()
        ms = sorted(x * 1000 for x in self.lat)
        return f"ping p50 {statistics.median(ms):.1f} ms, max {ms[-1]:.0f} ms ({len(ms)} pings)"


class SlowFluentd(threading.Thread):
    """Counts forward-protocol events (each ends with the empty option map, 0x80) while
    reading slowly."""

    def __init__(self, port: int, chunk: int = 65536, pause: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.chunk, self.pause, self.events, self.bytes = chunk, pause, 0, 0
        self.stop = threading.Event()
        self.last = time.monotonic()
        self.tail = b""

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except TimeoutError:
                continue
            c.settimeout(0.2)
            with c:
                while not self.stop.is_set():
                    try:
                        d = c.recv(self.chunk)
                    except TimeoutError:
                        continue
                    if not d:
                        break
                    self.bytes += len(d)
                    # events end with the empty option map (0x80), the next starts [ (0x94)
                    self.events += (self.tail + d).count(b"\x80\x94")
                    self.tail = d[-1:]
                    self.last = time.monotonic()
                    time.sleep(self.pause)
        self.srv.close()
        if self.bytes:
            self.events += 1  # the last one

def cpu(sock: str) -> float:
    """The daemon's CPU seconds, if a pidfile sits next to its socket as berthd's and the
    reference's do (else -1)."""
    for pf in (os.path.join(os.path.dirname(sock), "docker.pid"),
               os.path.join(os.path.dirname(sock), "exec", "berthd.pid")):
        if os.path.exists(pf):
            with open(pf) as f, open(f"/proc/{int(f.read())}/stat") as st:
                fields = st.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return -1.0


def docker(sock: str, *args: str, check: bool = True) -> str:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    r = subprocess.run(["docker", *args], env=env, capture_output=True, check=check, text=True)
    return r.stdout.strip() or r.stderr.strip()


def json_file(sock: str, lines: int) -> None:
    p = Pinger(sock)
    p.start()
    t0 = time.monotonic()
    cid = docker(sock, "run", "-d", "--network", "none", "busybox", "seq", "1", str(lines))
    docker(sock, "wait", cid)
    t1 = time.monotonic() - t0
    n = int(docker(sock, "logs", "--tail", "1", cid))
    path = docker(sock, "inspect", "-f", "{{.LogPath}}", cid)
    with open(path, "rb") as f:
        count = sum(1 for _ in f)
    docker(sock, "rm", "-f", cid)
    print(f"json-file {lines} lines: run+deliver {t1:.1f}s, file {count} lines, last {n}; {p.report()}")


def fluentd(sock: str, lines: int, port: int, mode: str, pause: float = 0.01) -> None:
    rx = SlowFluentd(port, pause=pause)
    rx.start()
    p = Pinger(sock)
    p.start()
    opts = ["--log-driver", "fluentd", "--log-opt", f"fluentd-address=127.0.0.1:{port}"]
    if mode == "non-blocking":
        opts += ["--log-opt", "mode=non-blocking", "--log-opt", "max-buffer-size=1m"]
    t0 = time.monotonic()
    cid = docker(sock, "run", "-d", "--network", "none", *opts, "busybox", "seq", "1", str(lines))
    while docker(sock, "inspect", "-f", "{{.State.Status}}", cid) == "running":
        time.sleep(0.1)
    ran = time.monotonic() - t0
    docker(sock, "wait", cid)
    while time.monotonic() - rx.last < 2:  # until the receiver has been idle for 2 s
        time.sleep(0.2)
    done = rx.last - t0
    rx.stop.set()
    rx.join()
    # (dockerd makes a new logger for this, which connects to the now absent receiver)
    cached = docker(sock, "logs", "--tail", "1", cid, check=False)
    docker(sock, "rm", "-f", cid)
    kind = "slow receiver" if pause else "fast receiver"
    print(f"fluentd {mode} {lines} lines, {kind}: container ran {ran:.1f}s, delivered until "
          f"{done:.1f}s, ~{rx.events} events ({rx.bytes / 1e6:.1f} MB) received, cache last line {cached}; "
          f"{p.report()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sock")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--fluentd-lines", type=int, default=200_000)
    ap.add_argument("--port", type=int, default=15560)
    ap.add_argument("--only-fast-fluentd", action="store_true",
                    help="just fluentd (blocking) to a receiver that reads as fast as it can")
    a = ap.parse_args()
    if a.only_fast_fluentd:
        c0 = cpu(a.sock)
        fluentd(a.sock, a.lines, a.port + 2, "blocking", pause=0)
        print(f"daemon cpu {cpu(a.sock) - c0:.1f}s" if c0 >= 0 else "")
        return
    json_file(a.sock, a.lines)
    fluentd(a.sock, a.fluentd_lines, a.port, "blocking")
    fluentd(a.sock, a.fluentd_lines, a.port + 1, "non-blocking")


if __name__ == "__main__":
    main()
