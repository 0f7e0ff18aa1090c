"""Pull, push, login and search against real registries (Debian's docker-registry on
loopback ports, started here), driven with the docker CLI, the SDK and the raw API, and
compared with the reference dockerd where one runs (REFD_SOCK)."""
from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from berthd_harness import Berthd, start_berthd, stop_berthd
from registry_helpers import (
    REFD_SOCK,
    Client,
    FaultProxy,
    Registry,
    call,
    file_layer,
    free_port,
    refd_available,
    restart,
    start_registry,
)

from berth.tools import busybox


def lines(body: bytes) -> list[dict]:
    assert body.endswith(b"\r\n") or not body
    return [json.loads(x) for x in body.split(b"\r\n") if x]


def per_layer(msgs: list[dict]) -> dict[str, list[str]]:
    """Statuses per layer id with the coalescable progress lines dropped."""
    out: dict[str, list[str]] = {}
    for m in msgs:
        if m.get("id") and "progressDetail" in m and m["status"] not in ("Downloading", "Extracting", "Pushing"):
            out.setdefault(m["id"], []).append(m["status"])
    return out


def auth_header(user: str = "", password: str = "", **extra: str) -> dict[str, str]:
    doc = {"username": user, "password": password, **extra}
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()}


@pytest.fixture(scope="module")
def env() -> Iterator[dict]:
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")
    regs: dict[str, Registry] = {}
    tmp = tempfile.mkdtemp(prefix="berth-test-")
    certs = os.path.join(tmp, "certs.d")
    os.makedirs(certs)
    b: Berthd | None = None
    try:
        regs["anon"] = start_registry()
        regs["basic"] = start_registry("htpasswd", {"u": "pw"})
        regs["token"] = start_registry("token", {"u": "pw"})
        regs["tls"] = start_registry(tls=True)
        dead = f"127.0.0.1:{free_port(15190)}"  # a registry nobody runs, mirrored by the anonymous one
        with open(os.path.join(tmp, "daemon.json"), "w") as f:
            json.dump({"max-download-attempts": 1, "berth-certs-dirs": [certs], "berth-download-stall-timeout": 2,
                       "registry-mirrors": [f"http://{regs['anon'].host}"],
                       "berth-registry-mirrors": {dead: [f"http://{regs['anon'].host}"]}}, f)
        b = start_berthd(tmp)
        b.docker("load", input=busybox.save_tar("busybox:latest"))
        e = {"berthd": b, "regs": regs, "certs": certs, "dead": dead, "tmp": tmp}
        yield e
        b = e["berthd"]  # a test may have restarted it
    finally:
        if b is not None:
            stop_berthd(b)
        for r in regs.values():
            r.close()


def seed(reg: Registry, repo: str, **kw: object) -> dict:
    """A runnable three-layer image: a unique layer, busybox, an app layer."""
    layers = [file_layer({"unique": uuid.uuid4().hex.encode()}), busybox.rootfs_tar(),
              file_layer({"etc/app.conf": b"hello from the registry\n", "big": os.urandom(300_000)})]
    return Client(f"http://{reg.host}").image(repo, "1.2", layers, **kw)  # type: ignore[arg-type]




def test_pull_stream_ids_and_digests_as_dockerd(env: dict) -> None:
    b, reg = env["berthd"], env["regs"]["anon"]
    img = seed(reg, "cmp/app")
    name = f"{reg.host}/cmp/app"
    status, body = call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1.2")
    assert status == 200
    msgs = lines(body)
    assert msgs[0] == {"status": "Pulling from cmp/app", "id": "1.2"}
    assert msgs[-2:] == [{"status": f"Digest: {img['digest']}"},
                         {"status": f"Status: Downloaded newer image for {name}:1.2"}]
    ids = [d.split(":")[1][:12] for d in img["layers"]]
    assert per_layer(msgs) == {i: ["Pulling fs layer", "Verifying Checksum", "Download complete", "Pull complete"]
                               for i in ids}
    down = [m for m in msgs if m["status"] == "Downloading"]
    assert down and all(m["progress"].startswith("[") and m["progressDetail"]["total"] > 0 for m in down)
    inspect = json.loads(b.docker("image", "inspect", f"{name}:1.2").stdout)[0]
    assert inspect["Id"] == img["id"]
    assert inspect["RepoDigests"] == [f"{name}@{img['digest']}"]
    # again: nothing downloaded
    status, body = call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1.2")
    assert lines(body) == [{"status": "Pulling from cmp/app", "id": "1.2"}, {"status": f"Digest: {img['digest']}"},
                           {"status": f"Status: Image is up to date for {name}:1.2"}]
    out = b.docker("run", "--rm", f"{name}:1.2", "cat", "/etc/app.conf").stdout
    assert out == b"hello from the registry\n"
    if refd_available():
        try:
            status, ref_body = call(REFD_SOCK, "POST", f"/images/create?fromImage={name}&tag=1.2")
            ref_msgs = lines(ref_body)
            # dockerd's watchers see only the latest progress, so it may skip a status
            # ("Verifying Checksum", "Download complete"); what it shows, Berth shows in order
            ours, theirs = per_layer(msgs), per_layer(ref_msgs)
            assert ours.keys() == theirs.keys()
            for k, seq in theirs.items():
                it = iter(ours[k])
                assert all(x in it for x in seq), (k, seq, ours[k])
                assert seq[0] == "Pulling fs layer" and seq[-1] == "Pull complete"
            assert ref_msgs[0] == msgs[0] and ref_msgs[-2:] == msgs[-2:]
            ref_inspect = json.loads(call(REFD_SOCK, "GET", f"/images/{name}:1.2/json")[1])
            assert (ref_inspect["Id"], ref_inspect["RepoDigests"]) == (inspect["Id"], inspect["RepoDigests"])
        finally:
            call(REFD_SOCK, "DELETE", f"/images/{name}:1.2")
    b.docker("rmi", f"{name}:1.2")


def test_run_pulls_a_missing_image_and_events(env: dict) -> None:
    b, reg = env["berthd"], env["regs"]["anon"]
    seed(reg, "run/app", labels={"team": "berth"})
    name = f"{reg.host}/run/app:1.2"
    since = str(int(time.time()) - 5)
    r = b.docker("run", "--rm", name, "cat", "/etc/app.conf")
    assert r.stdout == b"hello from the registry\n"
    assert b"Unable to find image" in r.stderr and b"Status: Downloaded newer image for " + name.encode() in r.stderr
    time.sleep(1.1)  # `--until 0s` is now in whole seconds
    ev = b.docker("events", "--since", since, "--until", "0s", "--filter", "event=pull", "--format",
                  "{{json .}}").stdout.decode().splitlines()
    got = [json.loads(x) for x in ev if name in x]
    assert got and got[-1]["Actor"] == {"ID": name, "Attributes": {"name": f"{reg.host}/run/app", "team": "berth"}}
    b.docker("rmi", name)


def test_digest_oci_all_tags_and_platforms(env: dict) -> None:
    b, reg = env["berthd"], env["regs"]["anon"]
    c = Client(f"http://{reg.host}")
    layer = busybox.rootfs_tar()
    amd = c.image("multi/app", "amd", [layer, file_layer({"arch": b"amd64"})], oci=True)
    arm = c.image("multi/app", "arm", [layer, file_layer({"arch": b"arm64"})], oci=True, arch="arm64")
    index = c.index("multi/app", "1", [(amd, {"os": "linux", "architecture": "amd64"}),
                                       (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"})], oci=True)
    name = f"{reg.host}/multi/app"
    # by digest: the index digest is recorded, the host's entry chosen
    b.docker("pull", f"{name}@{index}")
    i = json.loads(b.docker("image", "inspect", f"{name}@{index}").stdout)[0]
    assert i["Id"] == amd["id"] and i["RepoDigests"] == [f"{name}@{index}"] and i["RepoTags"] == []
    # --platform picks the arm64 entry (variant v8 normalised away)
    r = b.docker("pull", "--platform", "linux/arm64", f"{name}:1")
    assert f"Digest: {index}".encode() in r.stdout
    i = json.loads(b.docker("image", "inspect", f"{name}:1").stdout)[0]
    assert (i["Id"], i["Architecture"]) == (arm["id"], "arm64")
    status, body = call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1&platform=linux/s390x")
    assert status == 200
    assert lines(body)[-1] == {"errorDetail": {"message": "no matching manifest for linux/s390x in the manifest "
                                                          "list entries"},
                               "error": "no matching manifest for linux/s390x in the manifest list entries"}
    status, body = call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1&platform=foo")
    assert status == 400
    # every tag
    r = b.docker("pull", "-a", name)
    out = r.stdout.decode()
    assert all(f"{t}: Pulling from multi/app" in out for t in ("1", "amd", "arm"))
    assert out.rstrip().endswith(f"Status: Downloaded newer image for {name}\n{name}".rstrip()) or \
        f"Status: Downloaded newer image for {name}\n" in out
    for t in ("1", "amd", "arm"):
        b.docker("rmi", "-f", f"{name}:{t}", check=False)
    b.docker("rmi", "-f", f"{name}@{index}", check=False)


def test_pull_errors_before_the_stream(env: dict) -> None:
    b, reg = env["berthd"], env["regs"]["anon"]
    seed(reg, "errs/app")
    cases = [
        (f"fromImage={reg.host}/errs/app&tag=nope", 404,
         f"manifest for {reg.host}/errs/app:nope not found: manifest unknown: manifest unknown"),
        (f"fromImage={reg.host}/errs/app&tag=bad:tag:x", 400, "invalid tag format"),
        ("fromImage=scratch&tag=latest", 403, "'scratch' is a reserved name"),
        (f"fromImage=127.0.0.1:{free_port()}/x&tag=1", 500, None),
    ]
    for query, want_status, want in cases:
        status, body = call(b.sock, "POST", f"/images/create?{query}")
        assert status == want_status, (query, body)
        msg = json.loads(body)["message"]
        if want is not None:
            assert msg == want
        else:
            assert msg.endswith("connect: connection refused") and msg.startswith('Get "http://127.0.0.1:')
    r = b.docker("pull", f"{reg.host}/errs/app:nope", check=False)
    assert r.returncode == 1


def test_push_exists_mount_and_cross_daemon(env: dict) -> None:
    b, reg = env["berthd"], env["regs"]["anon"]
    seed(reg, "src/app")
    src = f"{reg.host}/src/app:1.2"
    b.docker("pull", src)
    dst = f"{reg.host}/dst/app:2"
    b.docker("tag", src, dst)
    status, body = call(b.sock, "POST", f"/images/{reg.host}%2Fdst%2Fapp/push?tag=2", auth_header())
    msgs = lines(body)
    assert msgs[0] == {"status": f"The push refers to repository [{reg.host}/dst/app]"}
    layer_lines = per_layer(msgs)
    assert len(layer_lines) == 3
    # the busybox layer may come from any repository this daemon pulled it from
    assert all(v[0] == "Preparing" and v[1].startswith("Mounted from ") and len(v) == 2
               for v in layer_lines.values()), layer_lines
    tag_line = msgs[-2]["status"]
    assert tag_line.startswith("2: digest: sha256:") and " size: " in tag_line
    assert msgs[-1]["aux"]["Tag"] == "2" and msgs[-1]["progressDetail"] == {}
    # pushing again: every layer already there
    msgs = lines(call(b.sock, "POST", f"/images/{reg.host}%2Fdst%2Fapp/push?tag=2", auth_header())[1])
    assert all(v == ["Preparing", "Layer already exists"] for v in per_layer(msgs).values())
    # a fresh image pushed by Berth (uploads) and pulled back by the reference dockerd
    b.docker("import", "-", f"{reg.host}/fresh/bb:1", input=file_layer({"u": uuid.uuid4().bytes * 1000}))
    own = b.docker("push", f"{reg.host}/fresh/bb:1").stdout.decode()
    assert ": Pushed" in own
    dgst = own.strip().splitlines()[-1].split("digest: ")[1].split()[0]
    i = json.loads(b.docker("image", "inspect", f"{reg.host}/fresh/bb:1").stdout)[0]
    assert f"{reg.host}/fresh/bb@{dgst}" in i["RepoDigests"]
    if refd_available():
        try:
            status, body = call(REFD_SOCK, "POST", f"/images/create?fromImage={reg.host}/fresh/bb&tag=1")
            assert status == 200 and lines(body)[-1]["status"].startswith("Status: Downloaded newer image")
            ref_i = json.loads(call(REFD_SOCK, "GET", f"/images/{reg.host}/fresh/bb:1/json")[1])
            assert ref_i["Id"] == i["Id"]
        finally:
            call(REFD_SOCK, "DELETE", f"/images/{reg.host}/fresh/bb:1")
    for n in (src, dst, f"{reg.host}/fresh/bb:1"):
        b.docker("rmi", n, check=False)


def test_basic_auth_login_push_pull(env: dict) -> None:
    b, reg = env["berthd"], env["regs"]["basic"]
    r = b.docker("login", reg.host, "-u", "u", "--password-stdin", input=b"wrong\n", check=False)
    assert r.returncode == 1
    assert f"login attempt to http://{reg.host}/v2/ failed with status: 401 Unauthorized".encode() in r.stderr
    b.docker("login", reg.host, "-u", "u", "--password-stdin", input=b"pw\n")
    try:
        b.docker("tag", "busybox", f"{reg.host}/priv/bb:1")
        assert b": Pushed" in b.docker("push", f"{reg.host}/priv/bb:1").stdout
        b.docker("rmi", f"{reg.host}/priv/bb:1")
        assert b"Downloaded newer image" in b.docker("pull", f"{reg.host}/priv/bb:1").stdout
    finally:
        b.docker("logout", reg.host)
    r = b.docker("pull", f"{reg.host}/priv/bb:2", check=False)
    assert r.stderr.decode().strip() == (f'Error response from daemon: Head "http://{reg.host}/v2/priv/bb/manifests/2":'
                                         " no basic auth credentials")
    # the credentials went nowhere on disk or in the log
    assert "pw" not in Path(b.log_path).read_text().split() and b'"pw"' not in subprocess.run(
        ["grep", "-r", "-l", "-a", "cHc=", b.data_root], capture_output=True).stdout
    b.docker("rmi", f"{reg.host}/priv/bb:1")


def test_token_auth_sdk_login_identity_token(env: dict) -> None:
    import docker

    b, reg = env["berthd"], env["regs"]["token"]
    client = docker.DockerClient(base_url=b.host, version="1.41")
    with pytest.raises(docker.errors.APIError) as ei:
        client.login("u", "bad", registry=reg.host, reauth=True)
    assert ei.value.response.status_code == 401
    assert ei.value.explanation == f'Get "http://{reg.host}/v2/": unauthorized: incorrect username or password'
    res = client.login("u", "pw", registry=reg.host, reauth=True)
    assert res["Status"] == "Login Succeeded" and res["IdentityToken"]
    client.images.get("busybox").tag(f"{reg.host}/tok/bb", "1")
    out = list(client.images.push(f"{reg.host}/tok/bb", "1", stream=True, decode=True,
                                  auth_config={"identitytoken": res["IdentityToken"]}))
    assert out[-1]["aux"]["Tag"] == "1", out
    client.images.remove(f"{reg.host}/tok/bb:1")
    img = client.images.pull(f"{reg.host}/tok/bb", "1")  # anonymous pull token
    assert f"{reg.host}/tok/bb:1" in img.tags
    client.images.remove(f"{reg.host}/tok/bb:1")
    client.close()


def test_search_errors(env: dict) -> None:
    b, reg = env["berthd"], env["regs"]["anon"]
    assert call(b.sock, "GET", f"/images/search?term={reg.host}/app") == (
        500, b'{"message":"Unexpected status code 404"}\n')
    assert call(b.sock, "GET", f"/images/search?term={reg.host}/app&limit=101") == (
        400, b'{"message":"Limit 101 is outside the range of [1, 100]"}\n')
    assert call(b.sock, "GET", f"/images/search?term={reg.host}/app&limit=x") == (
        500, b'{"message":"strconv.Atoi: parsing \\"x\\": invalid syntax"}\n')
    status, body = call(b.sock, "GET", f"/images/search?term={reg.host}/app&filters=%7B%22is-official%22%3A%5B%22maybe%22%5D%7D")
    assert (status, json.loads(body)) == (400, {"message": "Invalid filter 'is-official=[maybe]'"})
    status, body = call(b.sock, "GET", f"/images/search?term={reg.host}/app&filters=%7B%22x%22%3A%5B%221%22%5D%7D")
    assert (status, json.loads(body)) == (400, {"message": "Invalid filter 'x'"})
    status, body = call(b.sock, "GET", "/images/search?term=a://b")
    assert json.loads(body)["message"] == 'Invalid repository name (ex: "registry.domain.tld/myrepos")'


def _layer_count(b: Berthd) -> int:
    return len(os.listdir(os.path.join(b.data_root, "image/overlay2/layerdb/sha256")))


def _layer_store_consistent(b: Berthd) -> None:
    """Every chain ID on disk names a complete record whose content directory exists, and
    nothing a release started is left once the trash is empty."""
    root = os.path.join(b.data_root, "image/overlay2/layerdb/sha256")
    for name in os.listdir(root):
        assert "-" not in name, name  # a release removes its record before rmi answers
        with open(os.path.join(root, name, "cache-id")) as f:
            cache_id = f.read().strip()
        assert os.path.isdir(os.path.join(b.data_root, "overlay2", cache_id, "diff")), name


def test_rmi_then_pull_or_load_of_the_same_image_in_a_tight_loop(env: dict) -> None:
    """Berth deletes a removed image's layer content in the background (dockerd before it
    answers): `docker rmi X && docker pull X` and `docker rmi X && docker load` of the same
    image, again and again, and both at once, never meet a half-deleted layer."""
    import threading

    b, reg = env["berthd"], env["regs"]["anon"]
    seed(reg, "race/app")
    name = f"{reg.host}/race/app:1.2"
    b.docker("pull", name)
    saved = os.path.join(b.tmp, "race-app.tar")
    b.docker("save", "-o", saved, name)
    try:
        for _ in range(10):
            b.docker("rmi", name)
            assert b"Downloaded newer image" in b.docker("pull", name).stdout
        for _ in range(10):
            b.docker("rmi", name)
            assert b"Loaded image: " + name.encode() in b.docker("load", "-i", saved).stdout
        _layer_store_consistent(b)
        # rmi racing a load or a pull of the same image: each ends as one of its two orders
        for i in range(8):
            out: list[subprocess.CompletedProcess[bytes]] = []
            second = ["load", "-i", saved] if i % 2 else ["pull", name]
            ts = [threading.Thread(target=lambda a=a, out=out: out.append(b.docker(*a, check=False)))  # type: ignore[misc]
                  for a in (["rmi", name], second)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            for r in out:
                assert r.returncode == 0 or b"No such image" in r.stderr, r.stderr
            b.docker("pull", name)  # whichever came last, the image is there again
            _layer_store_consistent(b)
        r = b.docker("run", "--rm", name, "cat", "/etc/app.conf")
        assert r.stdout == b"hello from the registry\n"
    finally:
        b.docker("rmi", name, check=False)


def test_faults_leave_nothing_half_stored(env: dict) -> None:
    b, reg = env["berthd"], env["regs"]["anon"]
    img = seed(reg, "fault/app")
    name = f"{reg.host}/fault/app"
    before = _layer_count(b)
    # a blob whose bytes do not match its digest
    path = reg.blob_path(img["layers"][2])  # type: ignore[index]
    good = Path(path).read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(bad))
    try:
        status, body = call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1.2")
        assert status == 200
        assert lines(body)[-1]["error"] == f"filesystem layer verification failed for digest {img['layers'][2]}"
        assert call(b.sock, "GET", f"/images/{name}:1.2/json")[0] == 404
        assert _layer_count(b) == before
    finally:
        Path(path).write_bytes(good)
    assert not [f for f in os.listdir(os.path.join(b.data_root, "tmp")) if f.startswith("GetImageBlob")]
    # a 500 on the blobs, then a dropped connection resumed with a Range request
    proxy = FaultProxy(f"http://{reg.host}", free_port())
    try:
        proxied = f"127.0.0.1:{proxy.port}/fault/app"
        proxy.mode = "500"
        status, body = call(b.sock, "POST", f"/images/create?fromImage={proxied}&tag=1.2")
        assert status == 200 and "received unexpected HTTP status: 500 Internal Server Error" in lines(body)[-1]["error"]
        assert _layer_count(b) == before
        proxy.mode = "cut"
        status, body = call(b.sock, "POST", f"/images/create?fromImage={proxied}&tag=1.2")
        assert lines(body)[-1]["status"] == f"Status: Downloaded newer image for {proxied}:1.2", body
        assert any(rng.startswith("bytes=") for _m, _p, rng in proxy.requests), proxy.requests
        b.docker("rmi", f"{proxied}:1.2")
        # a registry answering the Range request with 200 and the whole blob: the download
        # starts over from byte 0 with that answer (nothing appended to what was kept)
        proxy.requests.clear()
        proxy.mode = "cut-200"
        status, body = call(b.sock, "POST", f"/images/create?fromImage={proxied}&tag=1.2")
        assert lines(body)[-1]["status"] == f"Status: Downloaded newer image for {proxied}:1.2", body
        cut = [p for m, p, rng in proxy.requests if rng.startswith("bytes=")]
        assert len(cut) == 1, proxy.requests
        assert [m for m, p, _r in proxy.requests if p == cut[0]] == ["GET", "GET"]  # no third try
        retries = [x["status"] for x in lines(body) if x.get("status", "").startswith("Retrying")]
        assert retries[0] == "Retrying in 5 seconds" and retries.count(retries[0]) == 1  # the cut's only
        b.docker("rmi", f"{proxied}:1.2")
    finally:
        proxy.close()
    # the registry gone: the daemon answers, nothing stored
    reg.stop()
    try:
        status, body = call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1.2")
        assert status == 500 and b"connection refused" in body
        assert b.docker("version").returncode == 0
    finally:
        restart(reg)


def test_tls_registry_and_certs_d_trust(env: dict) -> None:
    """127.0.0.0/8 is insecure: https is tried first without verification (http would
    follow); a secure host's trust comes from certs.d (checked with the same code path)."""
    import asyncio

    from berth.registry.config import Endpoint
    from berth.registry.errors import URLError
    from berth.registry.session import Credentials, Session

    b, reg = env["berthd"], env["regs"]["tls"]
    Client(f"https://{reg.host}", cafile=reg.tls_cert).image(
        "tls/app", "1", [file_layer({"tls": uuid.uuid4().bytes})])
    assert b"Downloaded newer image" in b.docker("pull", f"{reg.host}/tls/app:1").stdout
    b.docker("tag", "busybox", f"{reg.host}/tls/bb:1")
    assert b"1: digest: sha256:" in b.docker("push", f"{reg.host}/tls/bb:1").stdout

    async def ping(certs_dir: str | None) -> None:
        ep = Endpoint(f"https://{reg.host}", True, True, certs_dir=certs_dir)
        async with Session(ep, Credentials(), []) as s:
            await s.ping()

    with pytest.raises(URLError, match="x509: certificate signed by unknown authority"):
        asyncio.run(ping(None))
    d = os.path.join(env["certs"], reg.host)
    os.makedirs(d, exist_ok=True)
    with open(reg.tls_cert, "rb") as src, open(os.path.join(d, "ca.crt"), "wb") as dst:
        dst.write(src.read())
    asyncio.run(ping(d))
    for n in ("tls/app:1", "tls/bb:1"):
        b.docker("rmi", f"{reg.host}/{n}")


def test_concurrent_pulls_share_downloads_and_disconnect_cancels(env: dict) -> None:
    import threading

    b, reg = env["berthd"], env["regs"]["anon"]
    img = seed(reg, "share/app")
    proxy = FaultProxy(f"http://{reg.host}", free_port())
    try:
        name = f"127.0.0.1:{proxy.port}/share/app"
        results: list[tuple[int, bytes]] = []

        def pull() -> None:
            results.append(call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1.2"))

        threads = [threading.Thread(target=pull) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert [s for s, _ in results] == [200, 200]
        finals = sorted(lines(body)[-1]["status"] for _, body in results)
        assert all(f.startswith("Status: ") and f.endswith(f"for {name}:1.2") for f in finals), finals
        blob_gets = [p for m, p, _ in proxy.requests if m == "GET" and "/blobs/" in p]
        for layer in img["layers"]:  # type: ignore[union-attr]
            assert sum(layer in p for p in blob_gets) == 1, blob_gets  # one download, two watchers
        b.docker("rmi", f"{name}:1.2")
        # a client that leaves cancels its pull: nothing tagged, no temp blob left
        proxy.requests.clear()
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(b.sock)
        sock.sendall(f"POST /v1.41/images/create?fromImage={name}&tag=1.2 HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 0\r\n\r\n".encode())
        sock.recv(200)
        sock.close()
        time.sleep(1)
        assert b.docker("version").returncode == 0
        assert call(b.sock, "GET", f"/images/{name}:1.2/json")[0] in (200, 404)
        # whatever the cancelled pull left (a partial blob, kept on purpose) the next one uses
        r = b.docker("pull", f"{name}:1.2")
        assert b"Status: " in r.stdout
        b.docker("rmi", f"{name}:1.2")
    finally:
        proxy.close()


def test_zstd_layers_pull(env: dict) -> None:
    """Beyond dockerd 20.10: zstd layers are pulled as dockerd 23+ pulls them."""
    import zstandard

    b, reg = env["berthd"], env["regs"]["anon"]
    layers = [busybox.rootfs_tar(), file_layer({"etc/z.conf": b"zstd layer\n"})]
    img = Client(f"http://{reg.host}").image("zstd/app", "1", layers, oci=True,
                                             compressed=[zstandard.ZstdCompressor().compress(x) for x in layers])
    name = f"{reg.host}/zstd/app:1"
    b.docker("pull", name)
    assert json.loads(b.docker("image", "inspect", name).stdout)[0]["Id"] == img["id"]
    assert b.docker("run", "--rm", name, "cat", "/etc/z.conf").stdout == b"zstd layer\n"
    b.docker("rmi", name)


def test_beyond_dockerd_stall_and_429(env: dict) -> None:
    """A download that receives nothing is dropped and resumed (moby#22598); a 429 with
    Retry-After waits instead of failing."""
    b, reg = env["berthd"], env["regs"]["anon"]
    seed(reg, "stall/app")
    proxy = FaultProxy(f"http://{reg.host}", free_port())
    try:
        name = f"127.0.0.1:{proxy.port}/stall/app"
        proxy.mode = "stall"
        t = time.time()
        status, body = call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1.2")
        msgs = lines(body)
        assert msgs[-1]["status"] == f"Status: Downloaded newer image for {name}:1.2", msgs[-3:]
        assert any(m["status"].startswith("Retrying in ") for m in msgs)
        assert any(rng.startswith("bytes=") for _m, _p, rng in proxy.requests)
        assert time.time() - t < 40
        b.docker("rmi", f"{name}:1.2")
        proxy.mode = "429"
        status, body = call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1.2")
        assert status == 200 and lines(body)[-1]["status"].startswith("Status: Downloaded newer image")
        b.docker("rmi", f"{name}:1.2")
    finally:
        proxy.close()


def test_mirrors(env: dict) -> None:
    """registry-mirrors for docker.io as dockerd; Berth's berth-registry-mirrors for any other
    registry (moby#18818). Only images the mirror holds are pulled here: a miss would go on to
    the next endpoint (the Hub, or the dead registry)."""
    b, reg = env["berthd"], env["regs"]["anon"]
    hub = seed(reg, "library/mirrored")
    r = b.docker("pull", "mirrored:1.2")
    assert b"1.2: Pulling from library/mirrored" in r.stdout and b"Status: Downloaded newer image for mirrored:1.2" in r.stdout
    i = json.loads(b.docker("image", "inspect", "mirrored:1.2").stdout)[0]
    assert i["Id"] == hub["id"] and i["RepoDigests"] == [f"mirrored@{hub['digest']}"]
    info = json.loads(b.docker("info", "--format", "{{json .RegistryConfig}}").stdout)
    assert info["Mirrors"] == [f"http://{reg.host}/"] and "127.0.0.0/8" in info["InsecureRegistryCIDRs"]
    other = seed(reg, "team/app")
    name = f"{env['dead']}/team/app:1.2"
    b.docker("pull", name)
    assert json.loads(b.docker("image", "inspect", name).stdout)[0]["Id"] == other["id"]
    b.docker("rmi", "mirrored:1.2", name)


def test_daemon_killed_mid_pull_then_pulls_cleanly(env: dict) -> None:
    import signal
    import threading

    b, reg = env["berthd"], env["regs"]["anon"]
    img = seed(reg, "killed/app")
    before = _layer_count(b)
    proxy = FaultProxy(f"http://{reg.host}", free_port())
    try:
        name = f"127.0.0.1:{proxy.port}/killed/app"
        proxy.mode = "stall"
        def pull() -> None:
            try:
                call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1.2")
            except (OSError, http.client.HTTPException):
                pass  # the daemon is killed under it

        threading.Thread(target=pull, daemon=True).start()
        deadline = time.time() + 20
        while time.time() < deadline and proxy.mode == "stall":  # until a blob hangs half-sent
            time.sleep(0.05)
        time.sleep(0.3)  # inside the 2 s stall timeout
        stop_berthd(b, sig=signal.SIGKILL, cleanup=False)
        b = env["berthd"] = start_berthd(env["tmp"])
        assert not [f for f in os.listdir(os.path.join(b.data_root, "tmp")) if f.startswith("GetImageBlob")]
        assert _layer_count(b) <= before + 3
        assert call(b.sock, "GET", f"/images/{name}:1.2/json")[0] == 404
        # beyond dockerd (moby#26146): the half-downloaded blob is kept and the next pull resumes it
        partial = os.path.join(b.data_root, "image/overlay2/distribution/partial")
        assert any(os.path.getsize(os.path.join(partial, f)) > 0 for f in os.listdir(partial))
        proxy.requests.clear()
        b.docker("pull", f"{name}:1.2")
        assert any(rng.startswith("bytes=") for _m, _p, rng in proxy.requests), proxy.requests
        assert json.loads(b.docker("image", "inspect", f"{name}:1.2").stdout)[0]["Id"] == img["id"]
        b.docker("rmi", f"{name}:1.2")
    finally:
        proxy.close()


def test_distribution_inspect(env: dict) -> None:
    """GET /distribution/{name}/json: the descriptor and platforms (null for OCI manifests)."""
    b, reg = env["berthd"], env["regs"]["anon"]
    c = Client(f"http://{reg.host}")
    img = seed(reg, "dist/app")
    oci = c.image("dist/app", "oci", [file_layer({"o": b"1"})], oci=True)
    idx = c.index("dist/app", "multi", [(img, {"os": "linux", "architecture": "amd64"}),
                                      (oci, {"os": "linux", "architecture": "arm", "variant": "v7"})])
    status, body = call(b.sock, "GET", f"/distribution/{reg.host}/dist/app:1.2/json")
    assert status == 200 and body == json.dumps(
        {"Descriptor": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "digest": img["digest"], "size": img["size"]},
         "Platforms": [{"architecture": "amd64", "os": "linux"}]}, separators=(",", ":")).encode() + b"\n"
    doc = json.loads(call(b.sock, "GET", f"/distribution/{reg.host}/dist/app:oci/json")[1])
    assert doc["Platforms"] is None and doc["Descriptor"]["digest"] == oci["digest"]
    doc = json.loads(call(b.sock, "GET", f"/distribution/{reg.host}/dist/app@{idx}/json")[1])
    assert doc["Platforms"] == [{"architecture": "amd64", "os": "linux"},
                                {"architecture": "arm", "os": "linux", "variant": "v7"}]
    assert call(b.sock, "GET", f"/distribution/{reg.host}/dist/app:nope/json") == (
        404, b'{"message":"manifest unknown: manifest unknown"}\n')


def test_push_refused_without_credentials(env: dict) -> None:
    """A push's layer errors come unwrapped, the first registry error only (retryOnError)."""
    b = env["berthd"]
    for kind, want in (("basic", "no basic auth credentials"),
                       ("token", "denied: requested access to the resource is denied")):
        host = env["regs"][kind].host
        b.docker("tag", "busybox", f"{host}/anon/bb:1")
        r = b.docker("push", f"{host}/anon/bb:1", check=False)
        assert (r.returncode, r.stderr.decode().strip()) == (1, want)
        b.docker("rmi", f"{host}/anon/bb:1")


def test_token_expiring_during_a_push_is_fetched_again(env: dict) -> None:
    """Beyond dockerd (moby#33558): tokens good for 3 s, and each blob upload held 4 s by a
    proxy after the registry took it, so the requests that follow carry a token the registry
    now refuses (401, `invalid_token`): each is sent again with a new one and the push ends
    with its digest line (dockerd keeps the token a minute and fails the push)."""
    b = env["berthd"]
    reg = start_registry("token", {"u": "pw"}, token_ttl=3)
    proxy = FaultProxy(f"http://{reg.host}", free_port())
    name = f"127.0.0.1:{proxy.port}/slow/bb"
    try:
        proxy.mode, proxy.delay = "slow-upload", 4
        b.docker("tag", "busybox", f"{name}:1")
        status, body = call(b.sock, "POST", f"/images/{name}/push?tag=1", auth_header("u", "pw"))
        assert status == 200 and "1: digest: sha256:" in lines(body)[-2]["status"], body
        # each upload held past the token's life: its closing PUT refused once, then taken
        held = [i for i, (m, _p, _st) in enumerate(proxy.answers) if m == "PATCH"]
        assert len(held) == 2, proxy.answers  # the layer and the config
        for i in held:
            assert [(m, st) for m, _p, st in proxy.answers[i + 1:i + 3]] == [("PUT", 401), ("PUT", 201)], proxy.answers
        assert proxy.answers[-1][0::2] == ("PUT", 201)  # the manifest
        b.docker("rmi", f"{name}:1")
        # what was pushed pulls back (the anonymous pull token is as short-lived)
        assert b"Downloaded newer image" in b.docker("pull", f"{name}:1").stdout
        b.docker("rmi", f"{name}:1")
    finally:
        proxy.close()
        reg.close()


def test_a_mirror_failing_midway_falls_back(env: dict) -> None:
    """As dockerd (continueOnError on a mirror): a layer the mirror serves wrong, after the
    stream has started, sends the pull on to the next endpoint, the registry itself, and the
    stream shows "Pulling from" twice."""
    b, mirror = env["berthd"], env["regs"]["anon"]
    upstream = start_registry(port=int(env["dead"].rsplit(":", 1)[1]))  # the mirrored registry, up this time
    try:
        layers = [file_layer({"a": uuid.uuid4().bytes}), file_layer({"b": os.urandom(200_000)})]
        img = Client(f"http://{mirror.host}").image("team/midway", "1", layers)
        assert Client(f"http://{upstream.host}").image("team/midway", "1", layers)["digest"] == img["digest"]
        path = mirror.blob_path(img["layers"][1])  # type: ignore[index]
        with open(path, "r+b") as f:
            f.seek(1000)
            byte = f.read(1)
            f.seek(1000)
            f.write(bytes([byte[0] ^ 0xFF]))
        name = f"{env['dead']}/team/midway"
        status, body = call(b.sock, "POST", f"/images/create?fromImage={name}&tag=1")
        msgs = lines(body)
        assert status == 200 and msgs[-1]["status"] == f"Status: Downloaded newer image for {name}:1", body
        assert [m["id"] for m in msgs if m.get("status") == "Pulling from team/midway"] == ["1", "1"]
        assert json.loads(b.docker("image", "inspect", f"{name}:1").stdout)[0]["Id"] == img["id"]
        b.docker("rmi", f"{name}:1")
    finally:
        upstream.close()


def test_up_to_date_pulls_use_the_kept_manifest(env: dict) -> None:
    """As dockerd's manifest store: a pull by tag whose HEAD names a manifest already fetched
    stops there (no GET), and a pull by a known digest asks the registry nothing but the ping;
    the reference dockerd's requests, where one runs, are the same."""
    reg = env["regs"]["anon"]
    layers = [file_layer({"cached": uuid.uuid4().bytes})]
    img = Client(f"http://{reg.host}").image("cache/app", "1.2", layers)
    assert Client(f"http://{reg.host}").image("cache/other", "1", layers)["digest"] == img["digest"]
    proxy = FaultProxy(f"http://{reg.host}", free_port())
    name = f"127.0.0.1:{proxy.port}/cache/app"
    manifest_path = "/v2/cache/app/manifests/"
    daemons = [("berth", env["berthd"].sock)] + ([("dockerd", REFD_SOCK)] if refd_available() else [])
    try:
        for who, sock in daemons:
            call(sock, "DELETE", f"/images/{name}:1.2?force=1")
            seen = []
            for ref in (f"{name}&tag=1.2", f"{name}&tag=1.2", f"{name}@{img['digest']}"):
                proxy.requests.clear()
                status, body = call(sock, "POST", f"/images/create?fromImage={ref}")
                assert status == 200 and b"errorDetail" not in body, (who, body)
                seen.append([(m, p) for m, p, _r in proxy.requests if p == "/v2/" or p.startswith(manifest_path)])
            first, again, by_digest = seen
            assert ("GET", manifest_path + img["digest"]) in first, (who, first)  # type: ignore[operator]
            assert again == [("GET", "/v2/"), ("HEAD", manifest_path + "1.2")], (who, again)
            assert by_digest == [("GET", "/v2/")], (who, by_digest)
            # by digest from another repository: kept, but used only once a HEAD finds it there
            other = f"127.0.0.1:{proxy.port}/cache/other"
            proxy.requests.clear()
            status, body = call(sock, "POST", f"/images/create?fromImage={other}@{img['digest']}")
            assert status == 200 and b"errorDetail" not in body, (who, body)
            assert [(m, p) for m, p, _r in proxy.requests if p == "/v2/" or "/manifests/" in p] == [
                ("GET", "/v2/"), ("HEAD", f"/v2/cache/other/manifests/{img['digest']}")], (who, proxy.requests)
            for ref in (f"{name}:1.2", f"{name}@{img['digest']}", f"{other}@{img['digest']}"):
                call(sock, "DELETE", f"/images/{ref}?force=1")
    finally:
        proxy.close()


def test_sighup_reloads_registry_settings(env: dict) -> None:
    """dockerd's reload: SIGHUP reads daemon.json again; insecure registries, mirrors and the
    transfer concurrency change on the running daemon, with a `reload` event; an invalid
    setting is logged and changes nothing; a key left out keeps its value."""
    import signal

    b = env["berthd"]
    path = os.path.join(env["tmp"], "daemon.json")
    with open(path) as f:
        original = json.load(f)

    def hup(doc: dict) -> None:
        with open(path, "w") as f:
            json.dump(doc, f)
        os.kill(b.proc.pid, signal.SIGHUP)

    def registry_config() -> dict:
        return json.loads(b.docker("info", "--format", "{{json .RegistryConfig}}").stdout)

    def wait_for(pred) -> dict:  # type: ignore[no-untyped-def]
        deadline = time.time() + 10
        while True:
            rc = registry_config()
            if pred(rc) or time.time() > deadline:
                return rc
            time.sleep(0.1)

    t0 = int(time.time())
    mirror = "http://mirror.invalid:5000"
    try:
        hup({**original, "registry-mirrors": original["registry-mirrors"] + [mirror],
             "insecure-registries": ["10.99.0.0/16", "reg.invalid:5000"], "max-concurrent-downloads": 2})
        rc = wait_for(lambda rc: mirror + "/" in rc["Mirrors"])
        assert rc["Mirrors"] == [f"http://{env['regs']['anon'].host}/", mirror + "/"]
        assert "10.99.0.0/16" in rc["InsecureRegistryCIDRs"] and "reg.invalid:5000" in rc["IndexConfigs"]
        assert b.proc.poll() is None
        events = [json.loads(x) for x in call(b.sock, "GET", f"/events?since={t0}&until={int(time.time()) + 1}"
                                                         "&filters=%7B%22type%22%3A%5B%22daemon%22%5D%7D")[1].splitlines()]
        attrs = events[-1]["Actor"]["Attributes"]
        assert events[-1]["Action"] == "reload" and attrs["max-concurrent-downloads"] == "2"
        assert json.loads(attrs["registry-mirrors"])[-1] == mirror  # as written, as dockerd's configStore
        assert attrs["insecure-registries"] == '["10.99.0.0/16","reg.invalid:5000"]'  # Go's json.Marshal
        # an invalid mirror: nothing changes, the daemon goes on
        hup({**original, "registry-mirrors": ["ftp://nope"]})
        time.sleep(1)
        assert registry_config()["Mirrors"] == rc["Mirrors"] and b.proc.poll() is None
        assert "ftp://nope" in b.log()  # the refusal, logged
        # a key left out keeps the value the last good reload gave it
        hup({**{k: v for k, v in original.items() if k != "registry-mirrors"}, "insecure-registries": []})
        rc2 = wait_for(lambda rc: "10.99.0.0/16" not in rc["InsecureRegistryCIDRs"])
        assert rc2["Mirrors"] == rc["Mirrors"] and "10.99.0.0/16" not in rc2["InsecureRegistryCIDRs"]
    finally:
        hup({**original, "insecure-registries": []})  # the settings the daemon started with
        rc = wait_for(lambda rc: mirror + "/" not in rc["Mirrors"])
        with open(path, "w") as f:
            json.dump(original, f)
    assert rc["Mirrors"] == [f"http://{env['regs']['anon'].host}/"] and "10.99.0.0/16" not in rc["InsecureRegistryCIDRs"]


def test_a_layer_repeated_in_an_image_is_downloaded_once(env: dict) -> None:
    """dockerd's download manager fetches a blob that comes again higher in the same image
    once: the repeat has no lines of its own and is registered from the first one's layer."""
    b, reg = env["berthd"], env["regs"]["anon"]
    same = file_layer({"same": uuid.uuid4().hex.encode()})
    img = Client(f"http://{reg.host}").image("rep/app", "1", [same, file_layer({"mid": uuid.uuid4().hex.encode()}),
                                                               same])
    name = f"{reg.host}/rep/app"
    daemons = [("berth", b.sock)] + ([("dockerd", REFD_SOCK)] if refd_available() else [])
    got = {}
    try:
        for who, sock in daemons:
            status, body = call(sock, "POST", f"/images/create?fromImage={name}&tag=1")
            assert status == 200
            msgs = lines(body)
            got[who] = [(m.get("id"), m["status"]) for m in msgs if m.get("status") in ("Pulling fs layer",
                                                                                        "Pull complete")]
            inspect = json.loads(call(sock, "GET", f"/images/{name}:1/json")[1])
            assert inspect["Id"] == img["id"] and len(inspect["RootFS"]["Layers"]) == 3, who
    finally:
        for _, sock in daemons:
            call(sock, "DELETE", f"/images/{name}:1")
    first, mid = (d.split(":")[1][:12] for d in img["layers"][:2])
    assert sorted(got["berth"][:2]) == sorted([(first, "Pulling fs layer"), (mid, "Pulling fs layer")])
    assert got["berth"][2:] == [(first, "Pull complete"), (mid, "Pull complete")]
    if "dockerd" in got:
        assert sorted(got["dockerd"]) == sorted(got["berth"])
