"""`POST /build` (classic builder) driven by `DOCKER_BUILDKIT=0 docker build` and docker-py."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.berthd_harness import Berthd


def _build(b: Berthd, ctx: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(b.env(), DOCKER_BUILDKIT="0")
    r = subprocess.run(["docker", "build", *args, str(ctx)], env=env, capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"build failed: {r.stdout}\n{r.stderr}")
    return r


def _ctx(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


@pytest.fixture
def tag(berthd: Berthd) -> Iterator[str]:
    """A fresh tag; the image, its dangling parents and leftover build containers go afterwards."""
    name = f"bt-{uuid.uuid4().hex[:10]}:t"
    before = set(berthd.docker("ps", "-aq").stdout.decode().split())
    yield name
    for cid in set(berthd.docker("ps", "-aq").stdout.decode().split()) - before:
        berthd.docker("rm", "-f", cid, check=False)
    berthd.docker("rmi", "-f", name, check=False)
    for img in berthd.docker("images", "-q", "-f", "dangling=true").stdout.decode().split():
        berthd.docker("rmi", "-f", img, check=False)


def test_cli_build_runs_and_caches(berthd: Berthd, tmp_path: Path, tag: str) -> None:
    ctx = _ctx(tmp_path, {
        "Dockerfile": "# escape=\\\nFROM busybox\nARG X=1\nENV A=b \\\n    C=\"d e\"\nLABEL k=v\nWORKDIR /app\n"
                      "COPY f.txt sub/ ./\nRUN echo hi $X && ls /app\nEXPOSE 80 90/udp\nUSER 0:0\n"
                      "CMD [\"sh\", \"-c\", \"cat /app/f.txt; echo $A $C; cat /app/g.txt\"]\n",
        "f.txt": "hello\n",
        "sub/g.txt": "gee\n",
    })
    r = _build(berthd, ctx, "-t", tag, "--build-arg", "X=7")
    out = r.stdout
    assert "Step 1/10 : FROM busybox" in out
    assert " ---> Running in " in out and "Removing intermediate container" in out
    assert "hi 7" in out
    assert f"Successfully tagged {tag}" in out
    run = berthd.docker("run", "--rm", tag).stdout.decode()
    assert run == "hello\nb d e\ngee\n"
    doc = json.loads(berthd.docker("image", "inspect", tag).stdout)[0]
    assert doc["Config"]["WorkingDir"] == "/app"
    assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}}
    assert doc["Config"]["Labels"] == {"k": "v"}
    assert "C=d e" in doc["Config"]["Env"]
    hist = berthd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout.decode().splitlines()
    assert hist[0] == '/bin/sh -c #(nop)  CMD ["sh" "-c" "cat /app/f.txt; echo $A $C; cat /app/g.txt"]'
    assert "|1 X=7 /bin/sh -c echo hi $X && ls /app" in hist
    assert "/bin/sh -c #(nop)  ENV A=b C=d e" in hist
    # the same build again is served from the cache
    again = _build(berthd, ctx, "-t", tag, "--build-arg", "X=7").stdout
    assert again.count(" ---> Using cache") == 9
    nocache = _build(berthd, ctx, "-t", tag, "--build-arg", "X=7", "--no-cache").stdout
    assert "Using cache" not in nocache


def test_multistage_target_and_dockerignore(berthd: Berthd, tmp_path: Path, tag: str) -> None:
    ctx = _ctx(tmp_path, {
        "Dockerfile": "FROM busybox AS builder\nRUN echo built > /out.txt\n"
                      "FROM scratch AS final\nCOPY --from=builder /out.txt /\nCOPY . /ctx/\n"
                      "FROM busybox AS other\nRUN false\n",
        "keep.txt": "k\n",
        "secret.txt": "s\n",
        ".dockerignore": "secret.txt\n",
    })
    r = _build(berthd, ctx, "-t", tag, "--target", "final")
    assert "Step 5/5" in r.stdout
    exported = berthd.docker("create", tag, "x").stdout.decode().strip()
    try:
        tar = berthd.docker("export", exported).stdout
    finally:
        berthd.docker("rm", exported)
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        names = tf.getnames()
    assert "out.txt" in names and "ctx/keep.txt" in names
    assert "ctx/secret.txt" not in names


def test_failing_run_and_errors(berthd: Berthd, tmp_path: Path, tag: str) -> None:
    ctx = _ctx(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo err >&2; exit 3\n"})
    r = _build(berthd, ctx, "-t", tag, check=False)
    assert r.returncode != 0
    assert "The command '/bin/sh -c echo err >&2; exit 3' returned a non-zero code: 3" in r.stderr

    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY nofile /x\n")
    r = _build(berthd, tmp_path, check=False)
    assert ("COPY failed: file not found in build context or excluded by .dockerignore: "
            "stat nofile: file does not exist") in r.stderr

    (tmp_path / "Dockerfile").write_text("FROM busybox\nFOO bar\n")
    r = _build(berthd, tmp_path, check=False)
    assert "dockerfile parse error line 2: unknown instruction: FOO" in r.stderr

    r = _build(berthd, tmp_path, "-f", str(tmp_path / "nope"), check=False)
    assert r.returncode != 0


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_sdk_build(berthd: Berthd, tag: str) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=berthd.host, version="1.41")
    try:
        ctx = _tar({"Dockerfile": "FROM busybox\nARG V\nLABEL v=$V\nCMD [\"echo\", \"ok\"]\n"})
        img, logs = client.images.build(fileobj=io.BytesIO(ctx), custom_context=True, encoding="gzip", tag=tag,
                                        buildargs={"V": "42"}, labels={"extra": "1"})
        assert img.labels == {"v": "42", "extra": "1"}
        assert any("aux" in m for m in logs)
        assert client.containers.run(tag, remove=True) == b"ok\n"
        # the raw API: a missing Dockerfile is an HTTP error, as dockerd's
        with pytest.raises(docker.errors.APIError) as e:
            list(client.api.build(fileobj=io.BytesIO(ctx), custom_context=True, encoding="gzip", dockerfile="nope",
                                  decode=True))
        assert "Cannot locate specified Dockerfile: nope" in str(e.value)
        # an escaping context member is refused
        bad = io.BytesIO()
        with tarfile.open(fileobj=bad, mode="w") as tf:
            ti = tarfile.TarInfo("../escape")
            tf.addfile(ti, io.BytesIO(b""))
        with pytest.raises(docker.errors.APIError):
            list(client.api.build(fileobj=io.BytesIO(bad.getvalue()), custom_context=True, decode=True))
        assert not os.path.exists(os.path.join(os.path.dirname(berthd.data_root), "escape"))
    finally:
        client.close()
