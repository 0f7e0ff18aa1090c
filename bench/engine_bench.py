#!/usr/bin/env python3
"""Side-by-side Engine API benchmarks: any two sockets, interleaved, ratios printed.

    python3 bench/engine_bench.py REF_SOCK CAND_SOCK [--n 300] [--scale 0] [--only create,inspect,list,run,run-bridge]

For each operation the two daemons are asked in turn (ref, cand, ref, cand, ...) so that
machine noise hits both alike. Prints p50/p95 in ms per daemon and cand/ref ratios of p50.
`--scale N` first creates N containers on each daemon (to check that create stays flat as
the store grows); everything the benchmark makes is removed at the end.
Both daemons must hold busybox:latest.
"""
from __future__ import annotations

import argparse
import functools
import http.client
import json
import socket
import statistics
import time


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.path_ = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path_)


class Client:
    def __init__(self, sock: str) -> None:
        self.sock = sock
        self.conn = UnixConn(sock)

    def call(self, method: str, url: str, body: dict | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            self.conn.request(method, "/v1.41" + url, body=data, headers=headers)
            r = self.conn.getresponse()
            return r.status, r.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = UnixConn(self.sock)
            raise

    def run_to_exit(self, body: dict) -> None:
        """`docker run --rm` over the API: create, start, wait, delete."""
        st, out = self.call("POST", "/containers/create", body)
        assert st == 201, out
        cid = json.loads(out)["Id"]
        st, out = self.call("POST", f"/containers/{cid}/start")
        assert st == 204, out
        self.call("POST", f"/containers/{cid}/wait")
        self.call("DELETE", f"/containers/{cid}?force=1")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("cand")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--scale", type=int, default=0)
    ap.add_argument("--only", default="create,inspect,list,run,run-bridge")
    a = ap.parse_args()
    clients = {"ref": Client(a.ref), "cand": Client(a.cand)}
    made: dict[str, list[str]] = {"ref": [], "cand": []}
    label = f"berth-bench-{int(time.time())}"
    body = {"Image": "busybox", "Cmd": ["true"], "Labels": {"berth-bench": label}}

    def create(side: str) -> None:
        st, out = clients[side].call("POST", "/containers/create", body)
        assert st == 201, out
        made[side].append(json.loads(out)["Id"])

    try:
        for side in clients:
            for _ in range(a.scale):
                create(side)
        results: dict[str, dict[str, list[float]]] = {}
        ops = a.only.split(",")
        if "create" in ops:
            results["create"] = {s: [] for s in clients}
            for _ in range(a.n):
                for side in clients:
                    results["create"][side].append(timed(lambda side=side: create(side)))
        if "inspect" in ops:
            results["inspect"] = {s: [] for s in clients}
            for i in range(a.n):
                for side in clients:
                    cid = made[side][i % len(made[side])] if made[side] else None
                    if cid is None:
                        create(side)
                        cid = made[side][-1]
                    results["inspect"][side].append(timed(
                        lambda side=side, cid=cid: clients[side].call("GET", f"/containers/{cid}/json")))
        if "list" in ops:
            results["list"] = {s: [] for s in clients}
            for _ in range(max(20, a.n // 10)):
                for side in clients:
                    results["list"][side].append(timed(lambda side=side: clients[side].call("GET", "/containers/json?all=1")))
        # run-to-exit: create + start + wait + delete of busybox `true`, without networking
        # (`run`) and on the default bridge (`run-bridge`, where network setup/teardown count).
        for op, mode in (("run", "none"), ("run-bridge", "default")):
            if op not in ops:
                continue
            results[op] = {s: [] for s in clients}
            for _ in range(max(10, a.n // 10)):
                for side in clients:
                    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": mode}}
                    results[op][side].append(timed(functools.partial(clients[side].run_to_exit, body)))
        print(f"{'op':<12}{'ref p50':>10}{'ref p95':>10}{'cand p50':>10}{'cand p95':>10}{'ratio':>8}")
        for op, r in results.items():
            rp50, cp50 = statistics.median(r["ref"]), statistics.median(r["cand"])
            print(f"{op:<12}{rp50:>10.2f}{pct(r['ref'], .95):>10.2f}{cp50:>10.2f}{pct(r['cand'], .95):>10.2f}"
                  f"{cp50 / rp50:>8.2f}")
    finally:
        for side, ids in made.items():
            for cid in ids:
                try:
                    clients[side].call("DELETE", f"/containers/{cid}?force=1&v=1")
                except Exception:
                    pass


if __name__ == "__main__":
    main()
