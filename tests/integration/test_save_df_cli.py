"""docker save's names (tarexporter.parseNames) and docker system df -v's shared and
unique image sizes, through the CLI, as dockerd 20.10."""
from __future__ import annotations

import io
import json
import subprocess
import tarfile
import uuid

from berthd_harness import Berthd


def _manifest(data: bytes) -> list[dict]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile("manifest.json")
        assert f is not None
        return json.loads(f.read())


def test_save_names(berthd: Berthd, tmp_path) -> None:
    repo = "sv" + uuid.uuid4().hex[:8]
    berthd.docker("tag", "busybox", f"{repo}:a")
    berthd.docker("tag", "busybox", f"{repo}:b")
    try:
        # A repository without `latest`: every tag of it.
        data = berthd.docker("save", repo).stdout
        assert [m["RepoTags"] for m in _manifest(data)] == [[f"{repo}:a", f"{repo}:b"]]
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            f = tf.extractfile("repositories")
            assert f is not None
            assert sorted(json.loads(f.read())[repo]) == ["a", "b"]
        # -o, a tag and another repository; a tag named twice is saved once.
        out = tmp_path / "o.tar"
        berthd.docker("save", "-o", str(out), f"{repo}:a", "busybox", repo)
        assert [m["RepoTags"] for m in _manifest(out.read_bytes())] == \
            [[f"{repo}:a", "busybox:latest", f"{repo}:b"]]
        # An ID (or a prefix of one) saves the image untagged.
        image_id = berthd.docker("inspect", "-f", "{{.Id}}", "busybox").stdout.decode().strip()
        for name in (image_id, image_id[7:19]):
            assert [m["RepoTags"] for m in _manifest(berthd.docker("save", name).stdout)] == [None]
        missing = "sha256:" + "0" * 64
        for name, message in (
            ("nosuch" + repo, f"No such image: nosuch{repo}"),
            (f"{repo}:nosuch", "reference does not exist"),
            ("nosuch:tag", "reference does not exist"),
            ("sha256:abcd", "No such image: sha256:abcd"),
            (f"busybox@{missing}", "reference does not exist"),
            ("UPPER", "invalid reference format: repository name must be lowercase"),
            ("0" * 64, f"failed to get digest {missing}: open {berthd.data_root}/image/overlay2/imagedb/"
                       f"content/sha256/{'0' * 64}: no such file or directory"),
        ):
            r = berthd.docker("save", name, check=False)
            assert r.returncode == 1, name
            assert r.stderr.decode().strip() == f"Error response from daemon: {message}"
    finally:
        berthd.docker("rmi", f"{repo}:a", f"{repo}:b", check=False)


def test_system_df_shared_and_unique_size(berthd: Berthd) -> None:
    import docker

    name = "df" + uuid.uuid4().hex[:8]
    berthd.docker("run", "--network", "none", "--name", name, "busybox", "sh", "-c",
                  "head -c 100000 /dev/zero > /big")
    client = docker.DockerClient(base_url=berthd.host, version="1.41")
    try:
        berthd.docker("commit", name, f"{name}:1")
        base = client.images.get("busybox").attrs["Size"]
        top = client.images.get(f"{name}:1").attrs["Size"]
        assert top > base + 100000 - 1
        images = {i["Id"]: i for i in client.df()["Images"]}
        busybox_id = client.images.get("busybox").id
        # the busybox layer is in both images: shared by both, unique to none
        assert images[busybox_id]["SharedSize"] == base
        assert images[client.images.get(f"{name}:1").id]["SharedSize"] == base
        # images/json computes it only when asked, from API 1.42 on
        assert {i["SharedSize"] for i in client.api.images()} == {-1}
        out = subprocess.run(["curl", "-sf", "--unix-socket", berthd.sock,
                              "http://x/v1.42/images/json?shared-size=1"], capture_output=True, check=True).stdout
        shared = json.loads(out)
        assert {i["Id"]: i["SharedSize"] for i in shared}[busybox_id] == base
        table = berthd.docker("system", "df", "-v").stdout.decode()
        row = next(line for line in table.splitlines() if line.startswith(name))
        assert "N/A" not in row and "100kB" in row.split()[-2:][0]
    finally:
        client.close()
        berthd.docker("rm", "-f", name, check=False)
        berthd.docker("rmi", f"{name}:1", check=False)
