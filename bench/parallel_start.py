#!/usr/bin/env python3
"""Many starts at once: N `docker run -d busybox sleep 60` in parallel, two daemons
interleaved round by round, over the API (N concurrent clients, each: create then start,
as `docker run -d` does) and with the real CLI (N processes).

    python3 bench/parallel_start.py REF_SOCK CAND_SOCK --ref-pid PID --cand-pid PID [--n 30] [--rounds 3]

Besides wall time it reports the CPU-seconds each daemon spent on the starts, which stays
meaningful on a shared machine where wall time does not: the daemon process with its reaped
children (dockerd + containerd; berthd with runc start, netavark and the iptables it runs),
plus each container's monitor with what it reaped (containerd-shim-runc-v2 with runc create
and start; conmon with runc create), read from /proc before the containers are removed.
The CLI's own CPU (getrusage of this process's children) is shown apart.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import uuid

from engine_bench import UnixConn  # bench/'s one unix-socket HTTP connection

CLK = os.sysconf("SC_CLK_TCK")


def call(sock: str, method: str, url: str, body: dict | None = None) -> tuple[int, bytes]:
    c = UnixConn(sock)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, "/v1.41" + url, body=data,
                  headers={"Content-Type": "application/json"} if data is not None else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def proc_cpu(pid: int) -> float:
    """utime+stime+cutime+cstime of a process, in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / CLK


def children(pid: int) -> list[int]:
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


def daemon_cpu(pid: int) -> float:
    """The daemon and its direct long-lived children (dockerd's containerd)."""
    return proc_cpu(pid) + sum(proc_cpu(c) for c in children(pid) if _comm(c) in ("containerd",))


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def monitors_cpu(ids: list[str]) -> float:
    """CPU of the per-container monitors (conmon, containerd-shim) of these containers."""
    want = set(ids)
    total = 0.0
    for p in os.listdir("/proc"):
        if not p.isdigit() or _comm(int(p)) not in ("conmon", "containerd-shim"):
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        for i, a in enumerate(args[:-1]):
            if a in (b"-c", b"-id") and args[i + 1].decode() in want:
                total += proc_cpu(int(p))
                break
    return total


def children_cpu() -> float:
    r = os.times()
    return r.children_user + r.children_system


NETWORK = ""  # --network: "" for the default bridge


def api_round(sock: str, n: int, tag: str) -> tuple[float, list[str]]:
    ids: list[str] = [""] * n
    errors: list[str] = []
    go = threading.Barrier(n + 1)

    def one(i: int) -> None:
        go.wait()
        st, out = call(sock, "POST", f"/containers/create?name={tag}{i}",
                       {"Image": "busybox", "Cmd": ["sleep", "60"],
                        "HostConfig": {"NetworkMode": NETWORK} if NETWORK else {}})
        if st != 201:
            errors.append(out.decode())
            return
        cid = json.loads(out)["Id"]
        ids[i] = cid
        st, out = call(sock, "POST", f"/containers/{cid}/start")
        if st != 204:
            errors.append(out.decode())

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{sock}: {errors[0]}")
    return wall, ids


def cli_round(sock: str, n: int, tag: str) -> tuple[float, list[str]]:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    env.pop("DOCKER_API_VERSION", None)
    t0 = time.perf_counter()
    ps = [subprocess.Popen(["docker", "run", "-d", "--name", f"{tag}{i}",
                            *(["--network", NETWORK] if NETWORK else []), "busybox", "sleep", "60"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(n)]
    outs = [p.communicate() for p in ps]
    wall = time.perf_counter() - t0
    for p, (_, err) in zip(ps, outs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"{sock}: {err.decode()}")
    return wall, [o.decode().strip() for o, _ in outs]


def remove(sock: str, ids: list[str]) -> None:
    for cid in ids:
        if cid:
            call(sock, "DELETE", f"/containers/{cid}?force=1")


def measure(sock: str, pid: int, n: int, mode: str) -> dict[str, float]:
    tag = "ps" + uuid.uuid4().hex[:8] + "x"
    d0, c0 = daemon_cpu(pid), children_cpu()
    wall, ids = (api_round if mode == "api" else cli_round)(sock, n, tag)
    d1, c1 = daemon_cpu(pid), children_cpu()
    mon = monitors_cpu(ids)
    remove(sock, ids)
    return {"wall": wall, "daemon": d1 - d0, "monitors": mon, "cli": c1 - c0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("cand")
    ap.add_argument("--ref-pid", type=int, required=True)
    ap.add_argument("--cand-pid", type=int, required=True)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", default="api,cli")
    ap.add_argument("--network", default="", help="NetworkMode of the containers (default: the default bridge)")
    a = ap.parse_args()
    global NETWORK
    NETWORK = a.network
    for mode in a.modes.split(","):
        rows: dict[str, list[dict[str, float]]] = {"ref": [], "cand": []}
        for _ in range(a.rounds):
            for who, sock, pid in (("ref", a.ref, a.ref_pid), ("cand", a.cand, a.cand_pid)):
                rows[who].append(measure(sock, pid, a.n, mode))
        net = f" --network {a.network}" if a.network else ""
        print(f"{mode}: {a.n} parallel `run -d{net} busybox sleep 60`, {a.rounds} rounds interleaved (median)")
        med = {}
        for who in ("ref", "cand"):
            m = {k: statistics.median(r[k] for r in rows[who]) for k in rows[who][0]}
            med[who] = m
            cpu = m["daemon"] + m["monitors"]
            print(f"  {who:4}: wall {m['wall']:.2f} s  daemon CPU {m['daemon']:.2f} s + monitors {m['monitors']:.2f} s"
                  f" = {cpu:.2f} s ({1000 * cpu / a.n:.0f} ms/start)" + (f"  CLI {m['cli']:.2f} s" if mode == "cli"
                                                                             else ""))
        r, c = med["ref"], med["cand"]
        print(f"  cand/ref: wall {c['wall'] / r['wall']:.2f}  CPU "
              f"{(c['daemon'] + c['monitors']) / (r['daemon'] + r['monitors']):.2f}")


if __name__ == "__main__":
    main()
