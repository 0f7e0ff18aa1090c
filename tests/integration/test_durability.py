"""Crash safety: a SIGKILL at any instant loses no acknowledged container and never
leaves a name held twice; restore brings back exactly what was on disk."""
from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import threading
import time

import pytest
from berthd_harness import start_berthd, stop_berthd


class Conn(http.client.HTTPConnection):
    def __init__(self, sock: str) -> None:
        super().__init__("localhost", timeout=30)
        self.sock_path = sock

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.sock_path)


def api(sock: str, method: str, url: str, body: dict | None = None) -> tuple[int, bytes]:
    c = Conn(sock)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, "/v1.41" + url, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@pytest.fixture
def private_berthd(busybox_tar):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    b = start_berthd()
    b.docker("load", "-i", busybox_tar)
    yield b
    stop_berthd(b)


def test_sigkill_during_creates_loses_nothing(private_berthd):
    b = private_berthd
    acked: dict[str, str] = {}  # name -> id of every 201 the clients saw
    lock = threading.Lock()
    stop = threading.Event()

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            name = f"crash{n}x{i}"
            i += 1
            try:
                st, out = api(b.sock, "POST", f"/containers/create?name={name}",
                              {"Image": "busybox", "Volumes": {"/data": {}}} if i % 3 == 0 else {"Image": "busybox"})
            except OSError:
                return
            except http.client.HTTPException:
                return
            if st == 201:
                with lock:
                    acked[name] = json.loads(out)["Id"]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(random.uniform(0.8, 1.6))
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert acked, "no create was acknowledged before the kill"

    b2 = start_berthd(tmp=b.tmp)
    try:
        st, out = api(b2.sock, "GET", "/containers/json?all=1")
        assert st == 200
        listed = json.loads(out)
        by_name: dict[str, list[str]] = {}
        for c in listed:
            for n in c["Names"]:
                by_name.setdefault(n, []).append(c["Id"])
        # every acknowledged container is back, under its name
        for name, cid in acked.items():
            assert by_name.get("/" + name) == [cid], name
        # no name is held twice
        assert all(len(ids) == 1 for ids in by_name.values())
        # each container is whole: inspect works and the name can't be reused
        some = random.sample(sorted(acked), min(5, len(acked)))
        for name in some:
            st, _ = api(b2.sock, "GET", f"/containers/{name}/json")
            assert st == 200
            st, out = api(b2.sock, "POST", f"/containers/create?name={name}", {"Image": "busybox"})
            assert st == 409, out
        # no half-created directory survived restore
        ids = {c["Id"] for c in listed}
        on_disk = set(os.listdir(os.path.join(b2.data_root, "containers")))
        assert on_disk == ids
    finally:
        b.proc = b2.proc
        stop_berthd(b2, cleanup=False)


def test_restart_restores_containers_and_volumes(private_berthd):
    b = private_berthd
    cid = b.docker("create", "--name", "keep", "-v", "kept:/data", "--label", "a=b", "busybox", "true").stdout.decode().strip()
    before = json.loads(b.docker("inspect", "keep").stdout)[0]
    stop_berthd(b, cleanup=False)
    b2 = start_berthd(tmp=b.tmp)
    b.proc = b2.proc
    after = json.loads(b2.docker("inspect", "keep").stdout)[0]
    assert after["Id"] == cid
    # hostconfig.json's nil DNS lists read back as [] after a restart, as in dockerd
    for k in ("Dns", "DnsOptions", "DnsSearch"):
        before["HostConfig"][k] = before["HostConfig"][k] or []
    assert after == before
    r = b2.docker("volume", "rm", "kept", check=False)
    assert r.returncode != 0 and b"volume is in use" in r.stderr
    b2.docker("rm", "keep")
    b2.docker("volume", "rm", "kept")


def test_second_daemon_on_same_data_root_is_refused(private_berthd):
    import subprocess
    import sys

    from berthd_harness import SRC

    b = private_berthd
    r = subprocess.run(
        [sys.executable, "-m", "berth", "-H", f"unix://{b.tmp}/other.sock", "--data-root", b.data_root,
         "--exec-root", f"{b.tmp}/exec2", "--config-file", f"{b.tmp}/none.json"],
        capture_output=True, timeout=30, env=dict(os.environ, PYTHONPATH=SRC),
    )
    assert r.returncode != 0
    assert b"in use by another daemon" in r.stderr + r.stdout
