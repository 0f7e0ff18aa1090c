"""A run-to-exit split into its four requests, two Engine API daemons asked in turn.

    python3 bench/run_phases.py A_SOCK B_SOCK [--n 150] [--network none|bridge]

Each round runs busybox `true` (create, start, wait, delete, as engine_bench's `run`) once
on each daemon, the first of the pair alternating; prints each daemon's p50 per request
and in total, and the median of the paired total differences (B − A): the figure to
compare two builds of Berth with on a shared machine, where load drifts between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_bench import Client  # the bench directory, whatever the working directory

PHASES = ("create", "start", "wait", "delete", "total")


def run_once(c: Client, body: dict, out: dict[str, list[float]]) -> None:
    t0 = time.perf_counter()
    st, raw = c.call("POST", "/containers/create", body)
    assert st == 201, raw
    cid = json.loads(raw)["Id"]
    t1 = time.perf_counter()
    st, raw = c.call("POST", f"/containers/{cid}/start")
    assert st == 204, raw
    t2 = time.perf_counter()
    c.call("POST", f"/containers/{cid}/wait")
    t3 = time.perf_counter()
    c.call("DELETE", f"/containers/{cid}?force=1")
    t4 = time.perf_counter()
    for name, a, b in zip(PHASES, (t0, t1, t2, t3, t0), (t1, t2, t3, t4, t4), strict=True):
        out[name].append((b - a) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--network", default="none")
    args = ap.parse_args()
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": args.network},
            "Labels": {"berth-bench": "run_phases"}}
    clients = {"A": Client(args.a), "B": Client(args.b)}
    phases: dict[str, dict[str, list[float]]] = {k: {p: [] for p in PHASES} for k in clients}
    for i in range(args.n):
        for k in ("A", "B") if i % 2 else ("B", "A"):
            run_once(clients[k], body, phases[k])
    for k in clients:
        print(k, " ".join(f"{p}={statistics.median(v):.2f}" for p, v in phases[k].items()), "ms (p50)")
    diffs = [b - a for a, b in zip(phases["A"]["total"], phases["B"]["total"], strict=True)]
    print(f"B - A, paired totals: median {statistics.median(diffs):+.2f} ms over {args.n} pairs")


if __name__ == "__main__":
    main()
