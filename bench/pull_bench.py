#!/usr/bin/env python3
"""Pull and push side by side: two daemons, one loopback registry, interleaved.

    python3 bench/pull_bench.py REF_SOCK CAND_SOCK [--n 7] [--port 15150] [--push] [--content files|random]

The benchmark starts Debian's `docker-registry` on 127.0.0.1:PORT (a temporary storage
dir), puts into it one image of 5 gzip layers (about 60 MB unpacked, made of the host's
/usr files in their directory tree, about 3x compressible as real images are; `--content
random` makes each layer one big random file instead), then for each round removes the
image from each daemon and times `POST /images/create` to the end of its stream, ref and
candidate in turn. `--push` also times pushing a freshly imported 60 MB image (new content
each round, so nothing can be found in the registry or mounted). Prints p50/p95 and the
cand/ref ratio of the p50s. 127.0.0.0/8 is insecure by default for both daemons.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import uuid

AUTH = {"X-Registry-Auth": base64.urlsafe_b64encode(b"{}").decode()}


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=600)
        self.path_ = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path_)


def call(sock: str, method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    c = UnixConn(sock)
    try:
        c.request(method, "/v1.41" + url, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _system_files() -> list[str]:
    """Regular files of the host's /usr, in a fixed order: real binaries, libraries and text,
    the kind of content images carry (they compress about 2-3x)."""
    out = []
    for root in ("/usr/bin", "/usr/lib", "/usr/share"):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for n in sorted(filenames):
                p = os.path.join(dirpath, n)
                if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) > 4096:
                    out.append(p)
    return out


_FILES: list[str] = []


CONTENT = "files"


def random_layer(seed: int, mb: int) -> bytes:
    """`--content random`: one big file of random bytes (80 %) and one of text: few entries,
    so the figure is about transfer, hashing and gunzip rather than file creation."""
    data = os.urandom(int(mb * 1_000_000 * 0.8))
    text = (f"line {seed} " * 20 + "\n").encode() * int(mb * 1_000_000 * 0.2 / 200)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in ((f"layer{seed}/random.bin", data), (f"layer{seed}/text.txt", text)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(content), 1700000000, 0o644
            tf.addfile(ti, io.BytesIO(content))
    return buf.getvalue()


def layer(seed: int, mb: int) -> bytes:
    """An uncompressed layer tar of about `mb` MB of host files, different per seed (plus a
    file naming the seed, so no two layers are alike)."""
    if CONTENT == "random":
        return random_layer(seed, mb)
    if not _FILES:
        _FILES.extend(_system_files())
    buf = io.BytesIO()
    total, i = 0, (seed * 7919) % max(len(_FILES), 1)
    seen: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        stamp = f"{seed} {uuid.uuid4()}".encode()
        ti = tarfile.TarInfo(f"layer{seed}/stamp")
        ti.size, ti.mtime = len(stamp), 1700000000
        tf.addfile(ti, io.BytesIO(stamp))
        while total < mb * 1_000_000:
            path = _FILES[i % len(_FILES)]
            i += 1
            try:
                with open(path, "rb") as f:
                    data = f.read(4_000_000)
            except OSError:
                continue
            name = f"layer{seed}{path}"  # the host's tree under a per-layer root, as an image has
            if name in seen:
                continue
            seen.add(name)
            parts = name.split("/")[:-1]
            for k in range(1, len(parts) + 1):  # directory entries first, as docker's tars have
                d = "/".join(parts[:k])
                if d not in seen:
                    seen.add(d)
                    di = tarfile.TarInfo(d)
                    di.type, di.mode, di.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                    tf.addfile(di)
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 1700000000, 0o755
            tf.addfile(ti, io.BytesIO(data))
            total += len(data)
    return buf.getvalue()


def put(base: str, method: str, url: str, body: bytes | None = None, ctype: str = "") -> tuple[int, dict, bytes]:
    req = urllib.request.Request(base + url if url.startswith("/") else url, data=body, method=method,
                                 headers={"Content-Type": ctype} if ctype else {})
    with urllib.request.urlopen(req) as r:
        return r.status, dict(r.headers), r.read()


def blob(base: str, repo: str, data: bytes) -> str:
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    _, h, _ = put(base, "POST", f"/v2/{repo}/blobs/uploads/")
    loc = h["Location"]
    put(base, "PUT", f"{loc}{'&' if '?' in loc else '?'}digest={d}", data, "application/octet-stream")
    return d


def seed_image(base: str, repo: str) -> None:
    layers = [layer(i, 12) for i in range(5)]
    blobs = [gzip.compress(x, compresslevel=6, mtime=0) for x in layers]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                      "rootfs": {"type": "layers",
                                 "diff_ids": ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]}}).encode()
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(cfg),
                      "digest": blob(base, repo, cfg)},
           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(b),
                       "digest": blob(base, repo, b)} for b in blobs]}
    put(base, "PUT", f"/v2/{repo}/manifests/1", json.dumps(doc).encode(),
        "application/vnd.docker.distribution.manifest.v2+json")
    print(f"image: 5 layers, {sum(map(len, blobs)) / 1e6:.1f} MB compressed, {sum(map(len, layers)) / 1e6:.1f} MB "
          "unpacked")


def pull_once(sock: str, name: str) -> float:
    call(sock, "DELETE", f"/images/{name}:1?force=1")
    t = time.perf_counter()
    status, body = call(sock, "POST", f"/images/create?fromImage={name}&tag=1")
    dt = (time.perf_counter() - t) * 1000
    if status != 200 or b"errorDetail" in body or b"Downloaded newer image" not in body:
        raise SystemExit(f"pull failed on {sock}: {status} {body[-300:]!r}")
    return dt


def push_once(sock: str, host: str, tar: bytes) -> float:
    repo = f"{host}/push-{uuid.uuid4().hex[:10]}"
    status, body = call(sock, "POST", f"/images/create?fromSrc=-&repo={repo}&tag=1", tar,
                        {"Content-Type": "application/x-tar"})
    assert status == 200, body
    t = time.perf_counter()
    status, body = call(sock, "POST", f"/images/{repo}/push?tag=1", None, AUTH)
    dt = (time.perf_counter() - t) * 1000
    if status != 200 or b"errorDetail" in body or b"digest: sha256:" not in body:
        raise SystemExit(f"push failed on {sock}: {status} {body[-300:]!r}")
    call(sock, "DELETE", f"/images/{repo}:1?force=1")
    return dt


def report(label: str, ref: list[float], cand: list[float]) -> None:
    def pct(xs: list[float], p: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(len(xs) * p))]

    r, c = statistics.median(ref), statistics.median(cand)
    print(f"{label:5} ref p50 {r:8.0f} ms  p95 {pct(ref, .95):8.0f} ms | cand p50 {c:8.0f} ms  p95 "
          f"{pct(cand, .95):8.0f} ms | ratio {c / r:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("cand")
    ap.add_argument("--n", type=int, default=7)
    ap.add_argument("--port", type=int, default=15150)
    ap.add_argument("--push", action="store_true")
    ap.add_argument("--content", choices=("files", "random"), default="files")
    args = ap.parse_args()
    global CONTENT
    CONTENT = args.content
    tmp = tempfile.mkdtemp(prefix="berth-bench-reg-")
    cfg = os.path.join(tmp, "config.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {tmp}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{args.port}\n")
    reg = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"127.0.0.1:{args.port}"
    name = f"{host}/bench/pull"
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", args.port)) == 0:
                    break
            time.sleep(0.1)
        seed_image(f"http://{host}", "bench/pull")
        ref: list[float] = []
        cand: list[float] = []
        pull_once(args.ref, name)  # warm-up: both daemons hold the code paths and nothing else
        pull_once(args.cand, name)
        for _ in range(args.n):
            ref.append(pull_once(args.ref, name))
            cand.append(pull_once(args.cand, name))
        report("pull", ref, cand)
        if args.push:
            ref, cand = [], []
            for i in range(max(3, args.n // 2)):
                # new content each time: nothing to find in the registry or to mount
                ref.append(push_once(args.ref, host, layer(1000 + 2 * i, 60)))
                cand.append(push_once(args.cand, host, layer(1001 + 2 * i, 60)))
            report("push", ref, cand)
    finally:
        for sock in (args.ref, args.cand):
            call(sock, "DELETE", f"/images/{name}:1?force=1")
        reg.send_signal(signal.SIGTERM)
        reg.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
