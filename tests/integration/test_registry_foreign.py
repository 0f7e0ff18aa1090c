"""Foreign layers (`application/vnd.docker.image.rootfs.foreign.diff.tar.gzip` with `urls`, as
Windows base layers come) as dockerd 20.10 on Linux treats them, checked against the
reference dockerd where it answers.

On Linux, dockerd's layers are never `distribution.Describable` (roLayer.Descriptor and
layerStore.RegisterWithDescriptor are Windows-only, moby/layer/*_windows.go), so:
`docker load` ignores a manifest.json's `LayerSources`; a push uploads such a layer as any
other (gzip media type, no `urls`; "Skipped foreign layer" is Windows-only, and so is the
effect of `allow-nondistributable-artifacts`); `docker save` writes no `LayerSources`; and a
pull fetches a foreign layer from the registry only (pull_v2_unix.go `open`), never from its
`urls`: a blob the registry lacks is "unknown blob"."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from berthd_harness import SRC, start_berthd, stop_berthd
from registry_helpers import (
    REFD_SOCK,
    SCHEMA2,
    Client,
    call,
    file_layer,
    free_port,
    refd_available,
    start_registry,
)

FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
GZIP_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _call(sock: str, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """A request with an empty X-Registry-Auth (a tar body for a load)."""
    headers = {"X-Registry-Auth": "e30="}
    if body is not None:
        headers["Content-Type"] = "application/x-tar"
    return call(sock, method, url, headers, body)



def lines(body: bytes) -> list[dict]:
    return [json.loads(x) for x in body.split(b"\r\n") if x]


class _Blobs(http.server.BaseHTTPRequestHandler):
    """The `urls` server: what it was asked is recorded."""

    blobs: dict[str, bytes] = {}
    asked: list[str] = []

    def do_GET(self) -> None:  # the handler's API
        self.asked.append(self.path)
        data = self.blobs.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def fenv() -> Iterator[dict]:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")
    reg = start_registry(layer_urls=r"^http://127\.0\.0\.1")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Blobs)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    b = None
    tmp = tempfile.mkdtemp(prefix="berth-test-")
    try:
        # allowed or not, a push from Linux uploads the layer (the setting only reaches /info)
        with open(os.path.join(tmp, "daemon.json"), "w") as f:
            json.dump({"allow-nondistributable-artifacts": [reg.host, "10.1.2.3/8", reg.host]}, f)
        b = start_berthd(tmp)
        yield {"berthd": b, "reg": reg, "client": Client(f"http://{reg.host}"), "urls": srv, "tmp": tmp}
    finally:
        if b is not None:
            stop_berthd(b)
        srv.shutdown()
        srv.server_close()
        reg.close()


def foreign_image(tag: str, url: str) -> tuple[bytes, bytes, bytes]:
    """A `docker save` tar of a one-layer image whose layer is described in `LayerSources`
    as a foreign layer at `url`: (tar, uncompressed layer, compressed layer)."""
    layer = file_layer({"base.txt": uuid.uuid4().hex.encode()})
    comp = gzip.compress(layer, mtime=0)
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                      "config": {"Cmd": ["cat", "/base.txt"]}, "rootfs": {"type": "layers", "diff_ids": [diff]},
                      "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "foreign base"}]}).encode()
    cid = hashlib.sha256(cfg).hexdigest()
    manifest = [{"Config": cid + ".json", "RepoTags": [tag], "Layers": ["l1/layer.tar"],
                 "LayerSources": {diff: {"mediaType": FOREIGN, "size": len(comp),
                                         "digest": "sha256:" + hashlib.sha256(comp).hexdigest(), "urls": [url]}}}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in ((cid + ".json", cfg), ("l1/layer.tar", layer), ("manifest.json", json.dumps(manifest).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue(), layer, comp


def load_and_push(sock: str, c: Client, host: str, repo: str, tar: bytes) -> tuple[list[dict], dict]:
    status, body = _call(sock, "POST", "/images/load?quiet=1", tar)
    assert status == 200, body
    status, body = _call(sock, "POST", f"/images/{host}/{repo}/push?tag=1")
    assert status == 200, body
    st, _, raw = c.call("GET", f"/v2/{repo}/manifests/1", headers={"Accept": SCHEMA2})
    assert st == 200
    return lines(body), json.loads(raw)


def test_load_and_push_upload_a_foreign_layer_as_any_other(fenv: dict) -> None:
    b, c, reg, urls = fenv["berthd"], fenv["client"], fenv["reg"], fenv["urls"]
    port = urls.server_port
    repo = f"h18-foreign/b{uuid.uuid4().hex[:8]}"
    tar, layer, _ = foreign_image(f"{reg.host}/{repo}:1", f"http://127.0.0.1:{port}/never")
    msgs, m = load_and_push(b.sock, c, reg.host, repo, tar)
    diff_short = hashlib.sha256(layer).hexdigest()[:12]
    assert [x["status"] for x in msgs if x.get("id") == diff_short and "progressDetail" in x
            and x["status"] != "Pushing"] == ["Preparing", "Pushed"]
    assert [(d["mediaType"], "urls" in d) for d in m["layers"]] == [(GZIP_LAYER, False)]
    # the blob is in the registry, whole
    st, _, blob = c.call("GET", f"/v2/{repo}/blobs/{m['layers'][0]['digest']}")
    assert st == 200 and gzip.decompress(blob) == layer
    # save: no LayerSources
    st, saved = _call(b.sock, "GET", f"/images/get?names={reg.host}/{repo}:1")
    with tarfile.open(fileobj=io.BytesIO(saved)) as tf:
        entry = tf.extractfile("manifest.json")
        assert entry is not None
        assert "LayerSources" not in json.loads(entry.read())[0]
    assert urls.RequestHandlerClass.asked == []
    if not refd_available():
        return
    ref_repo = f"h18-foreign/r{uuid.uuid4().hex[:8]}"
    ref_tar = tar.replace(f"{reg.host}/{repo}:1".encode(), f"{reg.host}/{ref_repo}:1".encode())
    try:
        ref_msgs, ref_m = load_and_push(REFD_SOCK, c, reg.host, ref_repo, ref_tar)
        assert [(d["mediaType"], sorted(d)) for d in ref_m["layers"]] == [(d["mediaType"], sorted(d)) for d in m["layers"]]
        assert ref_m["config"] == m["config"]
        assert [x["status"] for x in ref_msgs if x.get("id") == diff_short and "progressDetail" in x
                and x["status"] != "Pushing"] == ["Preparing", "Pushed"]
        assert len(ref_msgs[-2]["status"]) and ref_msgs[-1]["aux"]["Tag"] == "1"
        with tarfile.open(fileobj=io.BytesIO(_call(REFD_SOCK, "GET", f"/images/get?names={reg.host}/{ref_repo}:1")[1])) as tf:
            entry = tf.extractfile("manifest.json")
            assert entry is not None and "LayerSources" not in json.loads(entry.read())[0]
    finally:
        _call(REFD_SOCK, "DELETE", f"/images/{reg.host}/{ref_repo}:1?force=1")


def put_foreign(c: Client, repo: str, layer: bytes, comp: bytes, url: str, upload: bool) -> str:
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                      "config": {"Cmd": ["cat", "/base.txt"]}, "rootfs": {"type": "layers", "diff_ids": [diff]},
                      "history": [{"created": "2026-01-01T00:00:00Z"}]}).encode()
    if upload:
        c.blob(repo, comp)
    doc = {"schemaVersion": 2, "mediaType": SCHEMA2,
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(cfg),
                      "digest": c.blob(repo, cfg)},
           "layers": [{"mediaType": FOREIGN, "size": len(comp), "digest": "sha256:" + hashlib.sha256(comp).hexdigest(),
                       "urls": [url]}]}
    return c.manifest(repo, "1", doc, SCHEMA2)


def test_pull_takes_a_foreign_layer_from_the_registry_only(fenv: dict) -> None:
    b, c, reg, urls = fenv["berthd"], fenv["client"], fenv["reg"], fenv["urls"]
    port = urls.server_port
    daemons = [("berth", b.sock)] + ([("dockerd", REFD_SOCK)] if refd_available() else [])
    results: dict[str, list[tuple[int, list[dict]]]] = {}
    for who, sock in daemons:
        _, layer, comp = foreign_image("x", "")
        path = f"/{uuid.uuid4().hex}"
        urls.RequestHandlerClass.blobs[path] = comp
        only_at_url = f"h18-foreign/u{uuid.uuid4().hex[:8]}"
        put_foreign(c, only_at_url, layer, comp, f"http://127.0.0.1:{port}{path}", upload=False)
        in_registry = f"h18-foreign/g{uuid.uuid4().hex[:8]}"
        put_foreign(c, in_registry, layer, comp, f"http://127.0.0.1:{port}{path}", upload=True)
        got = []
        try:
            for repo in (only_at_url, in_registry):
                status, body = _call(sock, "POST", f"/images/create?fromImage={reg.host}/{repo}&tag=1")
                got.append((status, [m for m in lines(body) if m.get("status") not in ("Downloading", "Extracting")]))
            status, body = _call(sock, "GET", f"/images/{reg.host}/{in_registry}:1/json")
            assert status == 200
            assert json.loads(body)["RootFS"]["Layers"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
        finally:
            _call(sock, "DELETE", f"/images/{reg.host}/{in_registry}:1?force=1")
        assert urls.RequestHandlerClass.asked == [], who
        short = hashlib.sha256(comp).hexdigest()[:12]
        assert got[0] == (200, [{"status": f"Pulling from {only_at_url}", "id": "1"},
                                {"status": "Pulling fs layer", "progressDetail": {}, "id": short},
                                {"errorDetail": {"message": "unknown blob"}, "error": "unknown blob"}]), who
        assert got[1][0] == 200 and got[1][1][-1]["status"].startswith("Status: Downloaded newer image"), who
        text = json.dumps(got).replace(only_at_url, "U").replace(in_registry, "G").replace(short, "L")
        results[who] = json.loads(re.sub(r"Digest: sha256:[0-9a-f]{64}", "Digest: D", text))
    if "dockerd" in results:
        ours, theirs = results["berth"], results["dockerd"]
        assert ours[0] == theirs[0]
        assert [m for m in ours[1][1] if "progressDetail" not in m] == [m for m in theirs[1][1]
                                                                          if "progressDetail" not in m]
        # dockerd may skip a status its watcher did not see; what it shows, Berth shows in order
        it = iter([m["status"] for m in ours[1][1] if "progressDetail" in m])
        assert all(x in it for x in [m["status"] for m in theirs[1][1] if "progressDetail" in m])


def registry_config(sock: str) -> dict:
    status, body = _call(sock, "GET", "/info")
    assert status == 200
    return json.loads(body)["RegistryConfig"]


def test_allow_nondistributable_artifacts_setting(fenv: dict) -> None:
    """Taken from daemon.json or the flag, checked as dockerd checks it, shown in /info and
    reloaded on SIGHUP with the reload event's attribute."""
    b, reg = fenv["berthd"], fenv["reg"]
    rc = registry_config(b.sock)
    assert (rc["AllowNondistributableArtifactsCIDRs"], rc["AllowNondistributableArtifactsHostnames"]) == (
        ["10.0.0.0/8"], [reg.host])
    path = os.path.join(fenv["tmp"], "daemon.json")
    t0 = int(time.time())
    try:
        with open(path, "w") as f:
            json.dump({"allow-nondistributable-artifacts": ["reg.invalid:5000"]}, f)
        os.kill(b.proc.pid, signal.SIGHUP)
        deadline = time.time() + 10
        while registry_config(b.sock)["AllowNondistributableArtifactsHostnames"] != ["reg.invalid:5000"]:
            assert time.time() < deadline
            time.sleep(0.1)
        assert registry_config(b.sock)["AllowNondistributableArtifactsCIDRs"] == []
        _, body = _call(b.sock, "GET", f"/events?since={t0}&until={int(time.time()) + 1}"
                                      "&filters=%7B%22type%22%3A%5B%22daemon%22%5D%7D")
        attrs = [json.loads(x) for x in body.splitlines()][-1]["Actor"]["Attributes"]
        assert attrs["allow-nondistributable-artifacts"] == '["reg.invalid:5000"]'
    finally:
        with open(path, "w") as f:
            json.dump({"allow-nondistributable-artifacts": [reg.host, "10.1.2.3/8", reg.host]}, f)
        os.kill(b.proc.pid, signal.SIGHUP)
    for value, message in (
            ("-reg", "invalid index name (-reg). Cannot begin or end with a hyphen"),
            ("http://reg:5000", "allow-nondistributable-artifacts registry http://reg:5000 should not contain '://'"),
            ("re_g:5000", 'allow-nondistributable-artifacts registry re_g:5000 is not valid: invalid host "re_g"'),
            ("reg:70000", 'allow-nondistributable-artifacts registry reg:70000 is not valid: invalid port "70000"')):
        tmp = tempfile.mkdtemp(prefix="berth-test-")
        r = subprocess.run([sys.executable, "-m", "berth", "-H", f"unix://{tmp}/s.sock", "--data-root", f"{tmp}/root",
                            "--exec-root", f"{tmp}/exec", f"--allow-nondistributable-artifacts={value}"],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": SRC})
        shutil.rmtree(tmp, ignore_errors=True)
        assert r.returncode != 0 and message in r.stderr, (value, r.stderr)
