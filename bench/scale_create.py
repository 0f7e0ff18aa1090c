#!/usr/bin/env python3
"""Is create flat as the store grows? Creates N containers on one socket and prints
the p50/p95 of each successive block of 500 creates, then list and inspect at that size.

    python3 bench/scale_create.py SOCK [--n 5000] [--keep]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from engine_bench import Client, pct


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sock")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    c = Client(a.sock)
    ids: list[str] = []
    block: list[float] = []
    try:
        for i in range(a.n):
            t = time.perf_counter()
            st, out = c.call("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
            block.append((time.perf_counter() - t) * 1000)
            assert st == 201, out
            ids.append(json.loads(out)["Id"])
            if len(block) == 500:
                print(f"containers {i + 1:>5}: create p50 {statistics.median(block):6.2f} ms  p95 {pct(block, .95):6.2f} ms")
                block = []
        lt = []
        for _ in range(5):
            t = time.perf_counter()
            c.call("GET", "/containers/json?all=1")
            lt.append((time.perf_counter() - t) * 1000)
        it = []
        for cid in ids[:500]:
            t = time.perf_counter()
            c.call("GET", f"/containers/{cid}/json")
            it.append((time.perf_counter() - t) * 1000)
        print(f"list all ({len(ids)}): p50 {statistics.median(lt):.1f} ms; inspect p50 {statistics.median(it):.2f} ms")
    finally:
        if not a.keep:
            for cid in ids:
                c.call("DELETE", f"/containers/{cid}?force=1")


if __name__ == "__main__":
    main()
