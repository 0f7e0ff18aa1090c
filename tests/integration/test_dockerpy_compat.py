"""Regressions found by running docker-py's own integration suite against Berth and
dockerd (scripts/dockerpy-suite): `commit` (with parents, history and image delete of
parent chains) and HostConfig.StorageOpt on overlay2. Expected values are dockerd
20.10's answers to the same requests."""
from __future__ import annotations

import io
import json
import tarfile
import time
import uuid

import docker
import pytest


def uniq(prefix: str = "dpy") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def client(berthd):
    c = docker.APIClient(base_url=berthd.host, version="1.41", timeout=60)
    made: list[str] = []
    c.made_containers = made  # type: ignore[attr-defined]
    yield c
    for cid in made:
        try:
            c.remove_container(cid, force=True)
        except docker.errors.APIError:
            pass
    c.close()


def _run(client, cmd: list[str], image: str = "busybox", **kw) -> str:
    cid = client.create_container(image, cmd, **kw)["Id"]
    client.made_containers.append(cid)
    client.start(cid)
    assert client.wait(cid)["StatusCode"] == 0
    return cid


def _layer_members(client, image: str) -> dict[str, tarfile.TarInfo]:
    data = b"".join(client.get_image(image))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        layer = t.extractfile(manifest[0]["Layers"][-1]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as lt:
        return {m.name: m for m in lt.getmembers()}


def test_commit_config_changes_history_and_event(client):
    cid = _run(client, ["sh", "-c", "echo hi > /f; rm /bin/ls; rm -rf /home; mkdir /home; touch /home/x"],
               environment=["A=1"])
    repo = uniq()
    t0 = int(time.time())
    res = client.commit(cid, repository=repo, tag="t1", message="cmt", author="me",
                        changes=["ENV B=2", "ENV A=3", 'CMD ["ls"]'])
    assert set(res) == {"Id"} and res["Id"].startswith("sha256:")
    img = client.inspect_image(f"{repo}:t1")
    busybox = client.inspect_image("busybox")
    assert img["Parent"] == busybox["Id"]
    assert img["Comment"] == "cmt" and img["Author"] == "me" and img["Container"] == cid
    # ENV replaces a variable where it stands; the container's config is kept under the changes.
    assert img["Config"]["Env"][0] == "A=3" and img["Config"]["Env"][-1] == "B=2"
    assert img["Config"]["Cmd"] == ["ls"] and img["Config"]["Labels"] == {}
    assert img["ContainerConfig"]["Cmd"][0] == "sh"
    assert img["RootFS"]["Layers"][:-1] == busybox["RootFS"]["Layers"]
    hist = client.history(f"{repo}:t1")
    assert [h["Id"] for h in hist[:2]] == [img["Id"], busybox["Id"]]
    assert hist[0]["Comment"] == "cmt" and hist[0]["CreatedBy"].startswith("sh -c echo hi")
    # The layer: overlay whiteouts as `.wh.` files, an opaque dir marked inside it.
    members = _layer_members(client, f"{repo}:t1")
    assert members["f"].size == 3 and members["bin/.wh.ls"].isreg()
    assert members["home/.wh..wh..opq"].mtime == 0 and "home/x" in members
    events = list(client.events(since=t0, until=int(time.time()) + 1, decode=True,
                                filters={"event": "commit", "container": cid}))
    assert len(events) == 1
    first = events[0]
    assert first["Actor"]["Attributes"]["imageID"] == img["Id"]
    assert first["Actor"]["Attributes"]["imageRef"] == f"{repo}:t1"
    assert first["Actor"]["Attributes"]["comment"] == "cmt"
    client.remove_image(f"{repo}:t1")


def test_commit_errors_and_body_config(client):
    cid = _run(client, ["true"])
    with pytest.raises(docker.errors.NotFound, match="No such container: nosuch"):
        client.commit("nosuch")
    with pytest.raises(docker.errors.APIError, match="run is not a valid change command") as e:
        client.commit(cid, changes=["RUN x"])
    assert e.value.status_code == 400
    with pytest.raises(docker.errors.APIError, match="ENV must have two arguments") as e:
        client.commit(cid, changes=["ENV B"])
    assert e.value.status_code == 400
    # A body config replaces the container's, which only fills its gaps.
    repo = uniq()
    client.commit(cid, repository=repo, tag="cfg", conf={"Cmd": ["x"]})
    cfg = client.inspect_image(f"{repo}:cfg")["Config"]
    assert cfg["Cmd"] == ["x"] and cfg["Hostname"] == "" and cfg["Image"] == ""
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in cfg["Env"]
    client.remove_image(f"{repo}:cfg")
    # A bad repository fails after the image exists, with a 500 (TagImage's parse error).
    before = {i["Id"] for i in client.images(all=True)}
    with pytest.raises(docker.errors.APIError, match="repository name must be lowercase") as e:
        client.commit(cid, repository="UPPER")
    assert e.value.status_code == 500
    for new in {i["Id"] for i in client.images(all=True)} - before:
        client.remove_image(new)


def test_commit_running_container_pauses_and_resumes(client):
    cid = client.create_container("busybox", ["sh", "-c", "echo x > /r; sleep 60"])["Id"]
    client.made_containers.append(cid)
    client.start(cid)
    img = client.commit(cid)["Id"]
    state = client.inspect_container(cid)["State"]
    assert state["Running"] and not state["Paused"]
    client.remove_image(img)


def test_parent_chain_delete_and_list(client):
    a_repo, b_repo = uniq("a"), uniq("b")
    c1 = _run(client, ["sh", "-c", "echo a > /a"])
    a_id = client.commit(c1, repository=a_repo, tag="1")["Id"]
    c2 = _run(client, ["sh", "-c", "echo b > /b"], image=f"{a_repo}:1")
    b_id = client.commit(c2, repository=b_repo, tag="1")["Id"]
    for c in (c1, c2):
        client.remove_container(c)
    client.made_containers.clear()
    assert client.remove_image(f"{a_repo}:1") == [{"Untagged": f"{a_repo}:1"}]
    # An untagged parent is an intermediate image: only `all` lists it, dangling never.
    assert a_id not in {i["Id"] for i in client.images()}
    assert a_id in {i["Id"] for i in client.images(all=True)}
    assert a_id not in {i["Id"] for i in client.images(filters={"dangling": True})}
    with pytest.raises(docker.errors.APIError, match="image has dependent child images") as e:
        client.remove_image(a_id, force=True)
    assert e.value.status_code == 409
    out = client.remove_image(f"{b_repo}:1")
    deleted = [r["Deleted"] for r in out if "Deleted" in r]
    assert out[0] == {"Untagged": f"{b_repo}:1"}
    assert b_id in deleted and a_id in deleted and deleted.index(b_id) < deleted.index(a_id)


@pytest.mark.parametrize("opts,message", [
    ({"size": "120G"}, "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
    ({"size": "abc"}, "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
    ({"Foo": "1"}, "Unknown option foo"),
])
def test_storage_opt_refused_on_overlay2(client, opts, message):
    name = uniq("so")
    hc = client.create_host_config(storage_opt=opts)
    with pytest.raises(docker.errors.APIError) as e:
        client.create_container("busybox", ["true"], host_config=hc, name=name)
    assert e.value.status_code == 500 and e.value.explanation == message
    # Nothing is left behind: the name is free again.
    cid = client.create_container("busybox", ["true"], name=name)["Id"]
    client.made_containers.append(cid)


@pytest.mark.parametrize("mode,kind", [("rshared", "shared"), ("rslave", "shared or slave")])
def test_bind_propagation_needs_shared_source(client, tmp_path, mode, kind):
    """setMounts' ensureShared/ensureSharedOrSlave: the test's temp dir sits on a private mount."""
    from berth.daemon.propagation import get_source_mount

    src = str(tmp_path)
    mp, optional = get_source_mount(src)
    if "shared:" in optional or ("master:" in optional and mode == "rslave"):
        pytest.skip(f"{mp} is a {kind} mount here")
    hc = client.create_host_config(binds=[f"{src}:/x:{mode}"])
    cid = client.create_container("busybox", ["true"], host_config=hc)["Id"]
    client.made_containers.append(cid)
    with pytest.raises(docker.errors.APIError) as e:
        client.start(cid)
    msg = f"path {src} is mounted on {mp} but it is not a {kind} mount"
    assert e.value.status_code == 500 and e.value.explanation == msg
    state = client.inspect_container(cid)["State"]
    assert state["Status"] == "created" and state["ExitCode"] == 128 and state["Error"] == msg


def test_get_source_mount_longest_prefix(tmp_path):
    from berth.daemon.propagation import get_source_mount

    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        "30 22 0:5 / /tmp rw shared:7 - tmpfs tmpfs rw\n"
        "31 22 0:6 / /tmp/a\\040b rw master:3 - tmpfs tmpfs rw\n"
    )
    assert get_source_mount("/tmp/x", str(info)) == ("/tmp", "shared:7")
    assert get_source_mount("/tmp/a b/c", str(info)) == ("/tmp/a b", "master:3")
    assert get_source_mount("/usr", str(info)) == ("/", "")
