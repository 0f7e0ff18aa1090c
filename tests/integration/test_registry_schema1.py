"""Schema1 manifests pulled as dockerd 20.10 pulls them, from a docker-registry 2.8 that takes
signed schema1 PUTs: manifests signed here (tests/registry_helpers.py sign_schema1) and the
registry's own schema1 form of a schema2 image. Berth's results are checked against the
image IDs the reference dockerd gave (tests/schema1_cases.py) and, where the reference
answers, against it live: the stream, image ID, RepoDigests, inspect, history, CLI output."""
from __future__ import annotations

import http.client
import http.server
import json
import os
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator

import pytest
import schema1_cases as sc
from berthd_harness import start_berthd, stop_berthd
from registry_helpers import (
    MANIFEST_LIST,
    REFD_SOCK,
    SCHEMA1_SIGNED,
    Client,
    call,
    digest,
    file_layer,
    free_port,
    gz,
    refd_available,
    sign_schema1,
    start_registry,
)

from berth.tools import busybox

WARNING_TAIL = ("uses outdated schema1 manifest format. Please upgrade to a schema2 image for better future "
                "compatibility. More information at https://docs.docker.com/registry/spec/deprecated-schema-v1/")


@pytest.fixture(scope="module")
def s1env() -> Iterator[dict]:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")
    reg = start_registry(schema1=True)
    tmp = tempfile.mkdtemp(prefix="berth-test-")
    b = None
    try:
        with open(os.path.join(tmp, "daemon.json"), "w") as f:
            json.dump({"registry-mirrors": [f"http://{reg.host}"]}, f)  # docker.io through this registry
        b = start_berthd(tmp)
        yield {"berthd": b, "reg": reg, "client": Client(f"http://{reg.host}")}
    finally:
        if b is not None:
            stop_berthd(b)
        reg.close()






def lines(body: bytes) -> list[dict]:
    return [json.loads(x) for x in body.split(b"\r\n") if x]


def per_layer(msgs: list[dict]) -> dict[str, list[str]]:
    """Statuses per layer id with the progress lines dropped."""
    out: dict[str, list[str]] = {}
    for m in msgs:
        if m.get("id") and "progressDetail" in m and m["status"] not in ("Downloading", "Extracting"):
            out.setdefault(m["id"], []).append(m["status"])
    return out


def put_schema1(c: Client, repo: str, tag: str, fslayers: list[str], history: list[str]) -> tuple[bytes, str]:
    signed, payload = sign_schema1(sc.manifest(repo, tag, fslayers, history))
    status, _, body = c.call("PUT", f"/v2/{repo}/manifests/{tag}", signed, {"Content-Type": SCHEMA1_SIGNED})
    assert status == 201, body
    return signed, digest(payload)


def seed_cases(c: Client, repo: str, unique: bool = False, unique_app: bool = False) -> dict[str, str]:
    """The rich and old manifests of schema1_cases under `repo` (tags rich, old; cli is
    rich again); with
    `unique`, the base layer is new so that no daemon has it yet."""
    blobs = sc.compressed()
    if unique:
        blobs[0] = gz(file_layer({"etc/base.txt": uuid.uuid4().hex.encode()}))
    if unique_app:
        blobs[1] = gz(file_layer({"etc/app.conf": uuid.uuid4().hex.encode()}))
    sums = [c.blob(repo, b) for b in blobs]
    c.blob(repo, sc.EMPTY_LAYER_GZ)
    return {"rich": put_schema1(c, repo, "rich", sc.rich_fslayers(sums), sc.rich_history())[1],
            "old": put_schema1(c, repo, "old", sc.old_fslayers(sums), sc.old_history())[1],
            "cli": put_schema1(c, repo, "cli", sc.rich_fslayers(sums), sc.rich_history())[1]}


def converted(c: Client, repo: str) -> tuple[str, str]:
    """A runnable schema2 image (busybox and a unique layer) as the registry serves it to a
    client that takes only schema1, PUT back under the tag `s1`: (its digest, the unique text)."""
    text = uuid.uuid4().hex
    c.image(repo, "src", [busybox.rootfs_tar(), file_layer({"etc/app.conf": text.encode()})],
            cmd=["cat", "/etc/app.conf"], labels={"a": "<b>"})
    status, h, body = c.call("GET", f"/v2/{repo}/manifests/src")
    assert status == 200 and h["Content-Type"] == SCHEMA1_SIGNED
    status, h, _ = c.call("PUT", f"/v2/{repo}/manifests/s1", body, {"Content-Type": SCHEMA1_SIGNED})
    assert status == 201
    return h["Docker-Content-Digest"], text


def pull(sock: str, ref: str, extra: str = "") -> list[dict]:
    name, _, tag = ref.rpartition(":") if "@" not in ref else (ref, "", "")
    q = f"fromImage={name}&tag={tag}" if tag else f"fromImage={ref}"
    status, body = call(sock, "POST", f"/images/create?{q}{extra}")
    assert status == 200, body
    return lines(body)


def messages(msgs: list[dict]) -> list[dict]:
    """The lines that are not about one layer."""
    return [m for m in msgs if "progressDetail" not in m]


def inspect(sock: str, ref: str) -> dict:
    status, body = call(sock, "GET", f"/images/{ref}/json")
    assert status == 200, body
    doc = json.loads(body)
    for k in ("GraphDriver", "Metadata"):
        doc.pop(k)
    return doc


def history(sock: str, ref: str) -> list[dict]:
    return json.loads(call(sock, "GET", f"/images/{ref}/history")[1])


def same_layer_statuses(ours: list[dict], theirs: list[dict]) -> None:
    """dockerd's watchers see only the latest progress, so it may skip a status; what it
    shows, Berth shows in the same order."""
    a, b = per_layer(ours), per_layer(theirs)
    assert a.keys() == b.keys()
    for k, seq in b.items():
        it = iter(a[k])
        assert all(x in it for x in seq), (k, seq, a[k])


def test_golden_image_ids(s1env: dict) -> None:
    b, c, reg = s1env["berthd"], s1env["client"], s1env["reg"]
    digests = seed_cases(c, "h18-s1/cases")
    assert (digests["rich"], digests["old"]) == (sc.RICH_DIGEST, sc.OLD_DIGEST)
    name = f"{reg.host}/h18-s1/cases"
    msgs = pull(b.sock, f"{name}:rich")
    assert messages(msgs) == [{"status": "Pulling from h18-s1/cases", "id": "rich"},
                              {"status": f"Digest: {sc.RICH_DIGEST}"},
                              {"status": f"Status: Downloaded newer image for {name}:rich"}]
    # the throwaway entry pulls nothing; the top entry's (empty) layer is pulled like any other
    layers = [sc.compressed_digests()[0], sc.compressed_digests()[1], sc.EMPTY_LAYER_DIGEST]
    assert per_layer(msgs) == {d[7:19]: ["Pulling fs layer", "Verifying Checksum", "Download complete",
                                         "Pull complete"] for d in layers}
    doc = inspect(b.sock, f"{name}:rich")
    assert doc["Id"] == sc.RICH_ID
    assert doc["RepoDigests"] == [f"{name}@{sc.RICH_DIGEST}"]
    assert doc["Created"] == "2025-03-04T05:06:07.12345678+02:00" and doc["Author"] == "Me <me@example.com>"
    assert [h["CreatedBy"] for h in history(b.sock, f"{name}:rich")] == [
        '/bin/sh -c #(nop)  CMD ["sh"]', "/bin/sh -c #(nop)  ENV A=1", "/bin/sh -c echo lower",
        "/bin/sh -c #(nop) ADD file:base in /"]
    msgs = pull(b.sock, f"{name}:old")
    assert msgs == [{"status": "Pulling from h18-s1/cases", "id": "old"},
                    *({"status": "Already exists", "progressDetail": {}, "id": d[7:19]} for d in layers[:2]),
                    {"status": f"Digest: {sc.OLD_DIGEST}"},
                    {"status": f"Status: Downloaded newer image for {name}:old"}]
    assert inspect(b.sock, f"{name}:old")["Id"] == sc.OLD_ID
    # again: schema1 has no "image already here" shortcut, every layer is looked at
    assert pull(b.sock, f"{name}:rich") == [
        {"status": "Pulling from h18-s1/cases", "id": "rich"},
        *({"status": "Already exists", "progressDetail": {}, "id": d[7:19]} for d in layers),
        {"status": f"Digest: {sc.RICH_DIGEST}"}, {"status": f"Status: Image is up to date for {name}:rich"}]
    # by digest
    msgs = pull(b.sock, f"{name}@{sc.RICH_DIGEST}")
    assert messages(msgs) == [{"status": "Pulling from h18-s1/cases", "id": f"{name}@{sc.RICH_DIGEST}"},
                              {"status": f"Digest: {sc.RICH_DIGEST}"},
                              {"status": f"Status: Image is up to date for {name}@{sc.RICH_DIGEST}"}]
    b.docker("rmi", f"{name}:rich", f"{name}:old")


def test_pull_as_dockerd(s1env: dict) -> None:
    b, c, reg = s1env["berthd"], s1env["client"], s1env["reg"]
    repo = f"h18-s1/cmp{uuid.uuid4().hex[:8]}"
    name = f"{reg.host}/{repo}"
    dg = seed_cases(c, repo, unique=True)
    conv_digest, text = converted(c, repo)
    refs = [f"{name}:rich", f"{name}:old", f"{name}:s1", f"{name}@{dg['rich']}"]
    ours = {r: pull(b.sock, r) for r in refs}
    ours_again = pull(b.sock, f"{name}:s1")
    assert messages(ours[f"{name}:s1"])[-2:] == [{"status": f"Digest: {conv_digest}"},
                                                 {"status": f"Status: Downloaded newer image for {name}:s1"}]
    assert b.docker("run", "--rm", f"{name}:s1").stdout == text.encode()
    assert inspect(b.sock, f"{name}:s1")["Config"]["Labels"] == {"a": "<b>"}

    def cli_pull() -> str:
        # `cli` (the rich manifest under another tag): its layers are there by then
        out = b.docker("pull", f"{name}:cli").stdout.decode()
        assert out.splitlines()[-3:] == [f"Digest: {dg['cli']}", f"Status: Downloaded newer image for {name}:cli",
                                         f"{name}:cli"]
        return out

    if not refd_available():
        cli_pull()
        return
    try:
        for r in refs:
            theirs = pull(REFD_SOCK, r)
            assert messages(ours[r]) == messages(theirs), r
            same_layer_statuses(ours[r], theirs)
            mine, ref_doc = inspect(b.sock, r), inspect(REFD_SOCK, r)
            assert mine == ref_doc, r
            assert history(b.sock, r) == history(REFD_SOCK, r), r
        assert pull(REFD_SOCK, f"{name}:s1") == ours_again
        assert cli_pull() == subprocess_pull(f"{name}:cli")
    finally:
        for r in [*refs, f"{name}:cli"]:
            call(REFD_SOCK, "DELETE", f"/images/{r}?force=1")


def subprocess_pull(ref: str) -> str:
    return subprocess.run(["docker", "-H", f"unix://{REFD_SOCK}", "pull", ref], capture_output=True,
                          check=True).stdout.decode()


def test_schema1_in_a_manifest_list(s1env: dict) -> None:
    b, c, reg = s1env["berthd"], s1env["client"], s1env["reg"]
    repo = f"h18-s1/list{uuid.uuid4().hex[:8]}"
    name = f"{reg.host}/{repo}"
    dg = seed_cases(c, repo, unique=True)
    status, _, body = c.call("GET", f"/v2/{repo}/manifests/rich", headers={"Accept": SCHEMA1_SIGNED})
    assert status == 200
    doc = {"schemaVersion": 2, "mediaType": MANIFEST_LIST,
           "manifests": [{"mediaType": SCHEMA1_SIGNED, "size": len(body), "digest": dg["rich"],
                          "platform": {"architecture": "amd64", "os": "linux"}}]}
    list_digest = c.manifest(repo, "multi", doc, MANIFEST_LIST)
    msgs = pull(b.sock, f"{name}:multi")
    notice = ("[DEPRECATION NOTICE] v2 schema1 manifests in manifest lists are not supported and will break in a "
              f"future release. Suggest author of {name}:multi to upgrade to v2 schema2. More information at "
              "https://docs.docker.com/registry/spec/deprecated-schema-v1/")
    assert messages(msgs) == [{"status": f"Pulling from {repo}", "id": "multi"}, {"status": notice},
                              {"status": f"Digest: {list_digest}"},
                              {"status": f"Status: Downloaded newer image for {name}:multi"}]
    mine = inspect(b.sock, f"{name}:multi")
    assert mine["RepoDigests"] == [f"{name}@{list_digest}"]
    if not refd_available():
        return
    try:
        theirs = pull(REFD_SOCK, f"{name}:multi")
        assert messages(theirs) == messages(msgs)
        same_layer_statuses(msgs, theirs)
        assert inspect(REFD_SOCK, f"{name}:multi") == mine
    finally:
        call(REFD_SOCK, "DELETE", f"/images/{name}:multi?force=1")


def test_docker_io_schema1_warning(s1env: dict) -> None:
    """dockerd warns only for docker.io (here through the mirror, which the reference does
    not have)."""
    b, c = s1env["berthd"], s1env["client"]
    dg = seed_cases(c, "library/h18s1")
    msgs = pull(b.sock, "h18s1:old")
    assert messages(msgs) == [
        {"status": "Pulling from library/h18s1", "id": "old"},
        {"status": f"Image docker.io/library/h18s1:old {WARNING_TAIL}"},
        {"status": f"Digest: {dg['old']}"}, {"status": "Status: Downloaded newer image for h18s1:old"}]
    assert inspect(b.sock, "h18s1:old")["Id"] == sc.OLD_ID


class _Unsigned(http.server.BaseHTTPRequestHandler):
    """A registry serving one unsigned schema1 manifest (docker-registry 2.8 takes none)."""

    doc = {"schemaVersion": 1, "name": "h18/u", "tag": "t", "architecture": "amd64",
           "fsLayers": [{"blobSum": sc.EMPTY_LAYER_DIGEST}], "history": [{"v1Compatibility": json.dumps({"id": "a" * 64})}]}
    raw = json.dumps(doc, indent=3).encode()

    def _answer(self, body: bool) -> None:
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            if body:
                self.wfile.write(b"{}")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.distribution.manifest.v1+json")
        self.send_header("Docker-Content-Digest", digest(self.raw))
        self.send_header("Content-Length", str(len(self.raw)))
        self.end_headers()
        if body:
            self.wfile.write(self.raw)

    def do_GET(self) -> None:  # the handler's API
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def log_message(self, *args: object) -> None:
        pass


def test_unsigned_schema1_refused(s1env: dict) -> None:
    """dockerd 20.10 reads any schema1 as a signed one: an unsigned one has no signatures."""
    b = s1env["berthd"]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Unsigned)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"/images/create?fromImage=127.0.0.1:{srv.server_port}/h18/u&tag=t"
        status, body = call(b.sock, "POST", url)
        assert (status, json.loads(body)) == (500, {"message": "missing signature key"})
        if refd_available():
            assert call(REFD_SOCK, "POST", url) == (status, body)
    finally:
        srv.shutdown()
        srv.server_close()


def test_name_tag_and_platform(s1env: dict) -> None:
    """dockerd 20.10 does not hold a schema1 manifest's `name`/`tag` against the reference;
    of a requested platform only the OS counts (the manifest names none: linux)."""
    b, c, reg = s1env["berthd"], s1env["client"], s1env["reg"]
    repo = f"h18-s1/mis{uuid.uuid4().hex[:8]}"
    name = f"{reg.host}/{repo}"
    sums = [c.blob(repo, gz(file_layer({"x": uuid.uuid4().hex.encode()}))), c.blob(repo, sc.compressed()[1])]
    signed, payload = sign_schema1(sc.manifest("someone/else", "other", sc.old_fslayers(sums), sc.old_history()))
    status, _, body = c.call("PUT", f"/v2/{repo}/manifests/t", signed, {"Content-Type": SCHEMA1_SIGNED})
    assert status == 201, body
    daemons = [("berth", b.sock)] + ([("dockerd", REFD_SOCK)] if refd_available() else [])
    got: dict[str, list] = {}
    try:
        for who, sock in daemons:
            out = []
            for platform in ("windows/amd64", "linux/arm64", ""):
                status, body = call(sock, "POST", f"/images/create?fromImage={name}&tag=t&platform={platform}")
                out.append((status, messages(lines(body)) if status == 200 else body))
            got[who] = out
    finally:
        if refd_available():
            call(REFD_SOCK, "DELETE", f"/images/{name}:t?force=1")
    ours = got["berth"]
    refused = 'cannot download image with operating system "linux" when requesting "windows"'
    assert ours[0] == (200, [{"status": f"Pulling from {repo}", "id": "t"},
                             {"errorDetail": {"message": refused}, "error": refused}])
    assert ours[1][0] == 200 and ours[1][1][-2:] == [{"status": f"Digest: {digest(payload)}"},
                                                     {"status": f"Status: Downloaded newer image for {name}:t"}]
    assert ours[2][1][-1] == {"status": f"Status: Image is up to date for {name}:t"}
    if "dockerd" in got:
        assert ours == got["dockerd"]


def test_repeated_empty_layers_as_dockerd(s1env: dict) -> None:
    """Old images carry an empty layer (the same blob) for each metadata step, none marked
    throwaway: each is pulled and registered on its own, as dockerd does."""
    b, c, reg = s1env["berthd"], s1env["client"], s1env["reg"]
    repo = f"h18-s1/empty{uuid.uuid4().hex[:8]}"
    name = f"{reg.host}/{repo}"
    base = c.blob(repo, gz(file_layer({"etc/base.txt": uuid.uuid4().hex.encode()})))
    c.blob(repo, sc.EMPTY_LAYER_GZ)
    ids = [sc.C, sc.B2, sc.B, sc.A]
    hist = [json.dumps({"id": ids[i], **({"parent": ids[i + 1]} if i < 3 else {}), "docker_version": "1.7.1",
                        "created": f"2015-06-0{4 - i}T00:00:00Z",
                        "container_config": {"Cmd": ["/bin/sh", "-c", f"#(nop) step {3 - i}"]}}) for i in range(4)]
    fs = [sc.EMPTY_LAYER_DIGEST, sc.EMPTY_LAYER_DIGEST, sc.EMPTY_LAYER_DIGEST, base]
    _, dg = put_schema1(c, repo, "t", fs, hist)
    ours = pull(b.sock, f"{name}:t")
    assert messages(ours)[-2:] == [{"status": f"Digest: {dg}"},
                                   {"status": f"Status: Downloaded newer image for {name}:t"}]
    doc = inspect(b.sock, f"{name}:t")
    assert len(doc["RootFS"]["Layers"]) == 4
    if not refd_available():
        return
    try:
        theirs = pull(REFD_SOCK, f"{name}:t")
        assert messages(ours) == messages(theirs)
        same_layer_statuses(ours, theirs)
        assert [m["id"] for m in ours if m.get("status") in ("Pulling fs layer", "Pull complete")] == \
            [m["id"] for m in theirs if m.get("status") in ("Pulling fs layer", "Pull complete")]
        assert inspect(REFD_SOCK, f"{name}:t") == doc
        assert history(REFD_SOCK, f"{name}:t") == history(b.sock, f"{name}:t")
    finally:
        call(REFD_SOCK, "DELETE", f"/images/{name}:t?force=1")


def test_push_of_a_schema1_pull_as_dockerd(s1env: dict) -> None:
    """What a schema1 pull recorded (each layer's blob and repository) serves the push of the
    image elsewhere: every layer mounted from where it came, a schema2 manifest of the config
    the pull made, the same as the reference's."""
    b, c, reg = s1env["berthd"], s1env["client"], s1env["reg"]
    repo = f"h18-s1/push{uuid.uuid4().hex[:8]}"
    # layers no daemon has seen (a layer known from earlier runs may be mounted from a
    # repository of a registry gone since, which fails over to an upload)
    seed_cases(c, repo, unique=True, unique_app=True)
    src = f"{reg.host}/{repo}:old"
    daemons = [("berth", b.sock)] + ([("dockerd", REFD_SOCK)] if refd_available() else [])
    got = {}
    try:
        for who, sock in daemons:
            pull(sock, src)
            dst = f"{reg.host}/{repo}-{who}"
            status, _ = call(sock, "POST", f"/images/{src}/tag?repo={dst}&tag=1")
            assert status == 201
            status, body = call(sock, "POST", f"/images/{dst}/push?tag=1", headers={"X-Registry-Auth": "e30="})
            assert status == 200, body
            msgs = [m for m in lines(body) if m.get("status") != "Pushing"]
            st, _, raw = c.call("GET", f"/v2/{repo}-{who}/manifests/1",
                                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
            assert st == 200
            got[who] = (msgs, json.loads(raw))
    finally:
        if refd_available():
            call(REFD_SOCK, "DELETE", f"/images/{src}?force=1")
            call(REFD_SOCK, "DELETE", f"/images/{reg.host}/{repo}-dockerd:1?force=1")
    msgs, manifest = got["berth"]
    assert manifest["config"]["digest"] == inspect(b.sock, src)["Id"]
    layer_msgs = [m for m in msgs if "id" in m and "progressDetail" in m]
    assert {m["status"] for m in layer_msgs} == {"Preparing", f"Mounted from {repo}"}
    for d in manifest["layers"]:  # each mounted blob is there
        assert c.call("HEAD", f"/v2/{repo}-berth/blobs/{d['digest']}")[0] == 200

    def kinds(ms: list[dict]) -> list[tuple[str, str]]:
        return sorted((m["id"], m["status"].split(" from ")[0]) for m in ms if "id" in m and "progressDetail" in m)

    if "dockerd" in got:
        ref_msgs, ref_manifest = got["dockerd"]
        assert ref_manifest == manifest
        assert kinds(ref_msgs) == kinds(layer_msgs)
        assert ref_msgs[-2]["status"] == msgs[-2]["status"]
