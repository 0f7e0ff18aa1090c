#!/usr/bin/env python3
"""`run --rm -p` soak over the API: create (AutoRemove, a published port on 127.0.0.1),
start, wait, until the container is gone; prints the daemon's RSS and open descriptors
every `--every` cycles so a leak shows as a slope.

    python3 bench/soak.py SOCK --pid PID [--cycles 10000] [--every 500]
"""
from __future__ import annotations

import argparse
import json
import os
import time

from engine_bench import UnixConn  # bench/'s one unix-socket HTTP connection


def call(c: UnixConn, method: str, url: str, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, "/v1.41" + url, body=data, headers={"Content-Type": "application/json"} if data else {})
    r = c.getresponse()
    return r.status, r.read()


def usage(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sock")
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument("--every", type=int, default=500)
    a = ap.parse_args()
    c = UnixConn(a.sock)
    body = {"Image": "busybox", "Cmd": ["true"], "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"AutoRemove": True, "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}]}}}
    t0 = time.time()
    print(f"{'cycle':>6} {'RSS KiB':>8} {'fds':>4} {'s':>6}")
    for i in range(a.cycles):
        st, out = call(c, "POST", "/containers/create", body)
        assert st == 201, out
        cid = json.loads(out)["Id"]
        # as `docker run --rm`: the wait (condition=removed) is sent before the start, on
        # its own connection, and answers once the container is gone
        w = UnixConn(a.sock)
        w.request("POST", f"/v1.41/containers/{cid}/wait?condition=removed")
        st, out = call(c, "POST", f"/containers/{cid}/start")
        assert st == 204, out
        r = w.getresponse()
        r.read()
        w.close()
        assert r.status == 200, r.status
        if i % a.every == 0 or i == a.cycles - 1:
            rss, fds = usage(a.pid)
            print(f"{i:>6} {rss:>8} {fds:>4} {time.time() - t0:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
