"""Images and volumes through the real docker CLI and SDK."""
from __future__ import annotations

import json
import os
import tarfile
import uuid

import pytest


def uniq(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def test_import_tag_save_rmi(berthd, tmp_path):
    from berth.tools import busybox

    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(busybox.rootfs_tar())
    repo = uniq("imp")
    out = berthd.docker("import", "-c", 'CMD ["sh"]', str(rootfs), f"{repo}:v1").stdout.decode()
    assert out.startswith("sha256:")
    img = json.loads(berthd.docker("image", "inspect", f"{repo}:v1").stdout)[0]
    assert img["Config"]["Cmd"] == ["sh"] and img["RepoTags"] == [f"{repo}:v1"]
    berthd.docker("tag", f"{repo}:v1", f"{repo}:v2")
    tags = berthd.docker("images", "--format", "{{.Repository}}:{{.Tag}}", repo).stdout.decode().split()
    assert sorted(tags) == [f"{repo}:v1", f"{repo}:v2"]
    saved = tmp_path / "saved.tar"
    berthd.docker("save", "-o", str(saved), f"{repo}:v1")
    with tarfile.open(saved) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [f"{repo}:v1"]
    # a container keeps its image from being removed without force
    cid = berthd.docker("create", f"{repo}:v1").stdout.decode().strip()
    berthd.docker("rmi", f"{repo}:v2")
    r = berthd.docker("rmi", f"{repo}:v1", check=False)
    assert r.returncode != 0 and b"must force" in r.stderr and cid[:12].encode() in r.stderr
    berthd.docker("rm", cid)
    out = berthd.docker("rmi", f"{repo}:v1").stdout.decode()
    assert f"Untagged: {repo}:v1" in out and "Deleted: sha256:" in out


def test_create_from_image_id_and_short_id(berthd):
    img = json.loads(berthd.docker("image", "inspect", "busybox").stdout)[0]
    for ref in (img["Id"], img["Id"][7:19], "docker.io/library/busybox:latest"):
        cid = berthd.docker("create", ref).stdout.decode().strip()
        c = json.loads(berthd.docker("inspect", cid).stdout)[0]
        assert c["Image"] == img["Id"] and c["Config"]["Image"] == ref
        berthd.docker("rm", cid)


def test_volumes(berthd):
    name = uniq("vol")
    berthd.docker("volume", "create", "--label", "k=v", name)
    v = json.loads(berthd.docker("volume", "inspect", name).stdout)[0]
    assert v["Name"] == name and v["Driver"] == "local" and v["Labels"] == {"k": "v"}
    assert v["Mountpoint"] == os.path.join(berthd.data_root, "volumes", name, "_data")
    assert name in berthd.docker("volume", "ls", "-q", "--filter", "label=k=v").stdout.decode().split()
    cid = berthd.docker("create", "-v", f"{name}:/d", "busybox").stdout.decode().strip()
    r = berthd.docker("volume", "rm", name, check=False)
    assert r.returncode != 0 and f"volume is in use - [{cid}]".encode() in r.stderr
    berthd.docker("rm", cid)
    berthd.docker("volume", "rm", name)
    r = berthd.docker("volume", "inspect", name, check=False)
    assert r.returncode != 0 and b"no such volume" in r.stderr


def test_anonymous_volume_removed_with_v(berthd):
    cid = berthd.docker("create", "-v", "/anon", "busybox").stdout.decode().strip()
    c = json.loads(berthd.docker("inspect", cid).stdout)[0]
    (m,) = c["Mounts"]
    assert m["Type"] == "volume" and len(m["Name"]) == 64 and m["Mode"] == "" and m["Destination"] == "/anon"
    assert m["Name"] in berthd.docker("volume", "ls", "-q").stdout.decode().split()
    berthd.docker("rm", "-v", cid)
    assert m["Name"] not in berthd.docker("volume", "ls", "-q").stdout.decode().split()


def test_sdk_images_and_volumes(berthd):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=berthd.host, version="auto")
    assert any("busybox:latest" in i.tags for i in client.images.list())
    v = client.volumes.create(uniq("sdkv"))
    assert client.volumes.get(v.name).attrs["Driver"] == "local"
    v.remove()
    info = client.info()
    assert info["Driver"] in ("overlay2", "vfs") and info["OSType"] == "linux"
    assert client.version()["ApiVersion"]
    client.close()
