"""Logging cost, two daemons side by side (interleaved runs): a busybox container writing
short lines as fast as it can (or paced) with the json-file driver, timed from `docker run`
to its exit — dockerd blocks the container on its log writes; Berth's `docker wait` returns
once the pump has written every line — and the daemon's CPU (utime+stime of its process,
per MB of output).

    python3 bench/logs_bench.py /tmp/refd/docker.sock /tmp/refd/docker.pid \\
        /run/berth/berth.sock /run/berth/berthd.pid --mb 200 --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

LINE = "x" * 99  # 100-byte lines with the newline


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime


def run_once(sock: str, pid: int, mb: int, rate: int, extra: list[str]) -> dict[str, float]:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    if rate:
        # `rate` MB/s in 1 MB steps: each second `rate` bursts then a sleep for the rest
        script = (f"l=$(yes {LINE} | head -c 1000000); i=0; while [ $i -lt {mb} ]; do "
                  f"j=0; while [ $j -lt {rate} ] && [ $i -lt {mb} ]; do echo \"$l\"; j=$((j+1)); i=$((i+1)); done; "
                  "sleep 1; done")
    else:
        script = f"yes {LINE} | head -c {mb * 1_000_000}"
    c0, t0 = cpu_seconds(pid), time.monotonic()
    cid = subprocess.run(["docker", "run", "-d", "--network", "none", *extra, "busybox", "sh", "-c", script],
                         env=env, capture_output=True, check=True).stdout.decode().strip()
    subprocess.run(["docker", "wait", cid], env=env, capture_output=True, check=True)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(pid) - c0
    info = json.loads(subprocess.run(["docker", "inspect", cid], env=env, capture_output=True,
                                     check=True).stdout)[0]
    path = info["LogPath"]
    size = os.path.getsize(path) if path and os.path.exists(path) else 0
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    subprocess.run(["docker", "rm", "-f", cid], env=env, capture_output=True)
    return {"wall": wall, "cpu": cpu, "mb_s": mb / wall, "cpu_per_mb_ms": 1000 * cpu / mb,
            "file_mb": size / 1e6, "lines": lines}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ref_sock")
    ap.add_argument("ref_pidfile")
    ap.add_argument("cand_sock")
    ap.add_argument("cand_pidfile")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rate", type=int, default=0, help="MB/s to pace the writer at (0: as fast as it can)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--log-opt", action="append", default=[])
    a = ap.parse_args()
    extra = [x for o in a.log_opt for x in ("--log-opt", o)]
    pids = {}
    for name, pf in (("dockerd", a.ref_pidfile), ("berthd", a.cand_pidfile)):
        with open(pf) as f:
            pids[name] = int(f.read().strip())
    socks = {"dockerd": a.ref_sock, "berthd": a.cand_sock}
    for i in range(a.runs):
        for name in ("dockerd", "berthd"):
            r = run_once(socks[name], pids[name], a.mb, a.rate, extra)
            print(f"run {i} {name:8s} wall {r['wall']:6.2f}s  {r['mb_s']:6.1f} MB/s  "
                  f"daemon cpu {r['cpu']:6.2f}s = {r['cpu_per_mb_ms']:5.1f} ms/MB  "
                  f"file {r['file_mb']:.0f} MB, {r['lines']} lines", flush=True)


if __name__ == "__main__":
    main()
