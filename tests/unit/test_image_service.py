"""ImageService: load (docker-save and OCI), inspect/list/history shapes, tag, delete
conflicts, import, save round trip, restart. Messages as the reference dockerd 20.10 gives."""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

import pytest

from berth import errdefs
from berth.image import ImageService
from berth.image.reference import parse_normalized_named
from berth.layer import LayerStore

sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: make the helper importable
from imagetar import Entry, docker_save_tar, layer_tar, oci_layout_tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

L1 = layer_tar([Entry("etc", kind="dir"), Entry("etc/a", data=b"hello"), Entry("bin", kind="dir"),
                Entry("bin/x", data=b"x" * 100000, mode=0o755)])
L2 = layer_tar([Entry("etc", kind="dir"), Entry("etc/.wh.a"), Entry("bin/.wh..wh..opq"), Entry("bin/y", data=b"y")])


class Env:
    def __init__(self, root: str) -> None:
        self.root = root
        self.events: list[tuple[str, str, dict[str, str]]] = []
        self.open()

    def open(self) -> None:
        self.layers = LayerStore(os.path.join(self.root, "image", "overlay2", "layerdb"))
        self.svc = ImageService(os.path.join(self.root, "image", "overlay2"), self.layers,
                                emit=lambda a, i, attrs: self.events.append((a, i, attrs)))

    def load_bytes(self, data: bytes, quiet: bool = True) -> list[dict[str, object]]:
        path = os.path.join(self.root, "in.tar")
        with open(path, "wb") as f:
            f.write(data)
        raw = b"".join(self.svc.load(path, quiet))
        assert raw.endswith(b"\r\n")
        return [json.loads(line) for line in raw.split(b"\r\n") if line]


@pytest.fixture
def env() -> Iterator[Env]:
    root = tempfile.mkdtemp(prefix="berth-imagetest-")
    e = None
    try:
        e = Env(root)
        yield e
    finally:
        if e is not None:
            e.layers.close()
        shutil.rmtree(root)


def test_load_docker_save(env: Env) -> None:
    data, image_id = docker_save_tar([L1, L2], ["imgltest/two:v1"], labels={"lab": "x"})
    msgs = env.load_bytes(data, quiet=False)
    assert msgs[-1] == {"stream": "Loaded image: imgltest/two:v1\n"}
    progress = [m for m in msgs if m.get("status") == "Loading layer"]
    assert progress[0]["progressDetail"] == {"current": 32768, "total": 112640}
    assert progress[0]["progress"] == "[==============>                                    ]  32.77kB/112.6kB"
    assert progress[0]["id"] == json.loads(env.svc.store.read(image_id))["rootfs"]["diff_ids"][0][7:19]
    assert env.events[-1] == ("load", image_id, {"lab": "x", "name": image_id})
    # a second load: layers exist, quiet by default, same answer
    assert env.load_bytes(data) == [{"stream": "Loaded image: imgltest/two:v1\n"}]
    img = env.svc.get_image("imgltest/two:v1")
    assert img.id == image_id and img.size == 100006 and img.repo_tags == ["imgltest/two:v1"]


def test_load_untagged_and_retag_message(env: Env) -> None:
    data, image_id = docker_save_tar([L1], [])
    assert env.load_bytes(data) == [{"stream": f"Loaded image ID: {image_id}\n"}]
    env.load_bytes(docker_save_tar([L1], ["x:1"])[0])
    data2, id2 = docker_save_tar([L1, L2], ["x:1"])
    msgs = env.load_bytes(data2)
    old = env.svc.get_image(image_id).id
    assert msgs[0] == {"stream": f"The image x:1 already exists, renaming the old one with ID {old} to empty string\n"}


def test_load_oci_layout(env: Env) -> None:
    data, image_id = oci_layout_tar([L1], "docker.io/imgltest/oci:v2")
    assert env.load_bytes(data) == [{"stream": "Loaded image: imgltest/oci:v2\n"}]
    assert env.svc.get_image("imgltest/oci:v2").id == image_id


def test_load_errors(env: Env) -> None:
    msgs = env.load_bytes(b"garbage\n")
    assert msgs == [{"errorDetail": {"message": "Error processing tar file(exit status 1): unexpected EOF"},
                     "error": "Error processing tar file(exit status 1): unexpected EOF"}]
    msgs = env.load_bytes(layer_tar([Entry("x", data=b"1")]))
    assert msgs[0]["error"].startswith("open ") and msgs[0]["error"].endswith("/repositories: no such file or directory")


def test_get_image_resolution(env: Env) -> None:
    data, image_id = docker_save_tar([L1], ["busybox:latest"])
    env.load_bytes(data)
    hexid = image_id[7:]
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox", image_id, hexid, hexid[:12],
                "sha256:" + hexid[:6]):
        assert env.svc.get_image(ref).id == image_id, ref
    for ref, msg in (("nope", "No such image: nope:latest"), ("abc123", "No such image: abc123:latest"),
                     ("localhost:5000/x", "No such image: localhost:5000/x:latest"),
                     ("sha256:" + "0" * 64, "No such image: sha256:" + "0" * 64)):
        with pytest.raises(errdefs.NotFound) as exc:
            env.svc.get_image(ref)
        assert str(exc.value) == msg
    with pytest.raises(errdefs.InvalidParameter, match="^invalid reference format: repository name must be lowercase$"):
        env.svc.get_image("BAD")


def test_inspect_shape(env: Env) -> None:
    data, image_id = docker_save_tar([L1, L2], ["imgltest/two:v1"], labels={"lab": "x"})
    env.load_bytes(data)
    info = env.svc.inspect("imgltest/two:v1")
    assert list(info) == ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container",
                          "ContainerConfig", "DockerVersion", "Author", "Config", "Architecture", "Os", "Size",
                          "VirtualSize", "GraphDriver", "RootFS", "Metadata"]
    assert info["RepoDigests"] == [] and info["Created"] == "2024-01-01T00:00:00Z"
    assert list(info["Config"])[:6] == ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr"]
    assert info["Config"]["Labels"] == {"lab": "x"} and info["Config"]["Cmd"] == ["sh"]
    assert info["Size"] == info["VirtualSize"] == 100006
    assert list(info["GraphDriver"]["Data"]) == ["LowerDir", "MergedDir", "UpperDir", "WorkDir"]
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) == 2
    assert info["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}
    with pytest.raises(errdefs.NotFound, match="^no such image: nope: No such image: nope:latest$"):
        env.svc.inspect("nope")


def test_history(env: Env) -> None:
    data, image_id = docker_save_tar([L1, L2], ["imgltest/two:v1"])
    env.load_bytes(data)
    assert env.svc.history("imgltest/two:v1") == [
        {"Comment": "", "Created": 1704067200, "CreatedBy": "layer 1", "Id": image_id, "Size": 1,
         "Tags": ["imgltest/two:v1"]},
        {"Comment": "", "Created": 1704067200, "CreatedBy": "layer 0", "Id": "<missing>", "Size": 100005, "Tags": None},
    ]


def test_list_and_filters(env: Env) -> None:
    a, id_a = docker_save_tar([L1], ["busybox:latest"])
    b, id_b = docker_save_tar([L1, L2], ["imgltest/two:v1"], labels={"lab": "x"})
    env.load_bytes(a)
    env.load_bytes(b)
    listed = env.svc.list_images()
    assert list(listed[0]) == ["Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests", "RepoTags",
                               "SharedSize", "Size", "VirtualSize"]
    assert {i["Id"] for i in listed} == {id_a, id_b}
    assert listed[0]["RepoDigests"] is None and listed[0]["Containers"] == -1
    assert [i["Id"] for i in env.svc.list_images(filters={"label": ["lab=x"]})] == [id_b]
    assert [i["RepoTags"] for i in env.svc.list_images(filters={"reference": ["busy*"]})] == [["busybox:latest"]]
    assert env.svc.list_images(filters={"dangling": ["true"]}) == []
    with pytest.raises(errdefs.InvalidParameter, match=r"^Invalid filter 'foo'$"):
        env.svc.list_images(filters={"foo": ["x"]})
    with pytest.raises(errdefs.InvalidParameter, match=r"^Invalid filter 'dangling=\[xyz\]'$"):
        env.svc.list_images(filters={"dangling": ["xyz"]})
    with pytest.raises(errdefs.Untyped, match="^syntax error in pattern$"):
        env.svc.list_images(filters={"reference": ["[["]})
    with pytest.raises(errdefs.NotFound, match="^No such image: nope:latest$"):
        env.svc.list_images(filters={"before": ["nope"]})
    # untag the only reference: the image is dangling now
    env.svc.refs.delete(parse_normalized_named("imgltest/two:v1"))
    dangling = env.svc.list_images(filters={"dangling": ["true"]})
    assert [(i["Id"], i["RepoTags"], i["RepoDigests"]) for i in dangling] == [(id_b, ["<none>:<none>"], ["<none>@<none>"])]


def test_tag(env: Env) -> None:
    data, image_id = docker_save_tar([L1], ["busybox:latest"])
    env.load_bytes(data)
    assert env.svc.tag("busybox", "imgl/y", "1") == "imgl/y:1"
    assert env.events[-1] == ("tag", image_id, {"name": "imgl/y:1"})
    assert env.svc.inspect("imgl/y:1")["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    with pytest.raises(errdefs.Untyped, match="^invalid reference format: repository name must be lowercase$"):
        env.svc.tag("busybox", "Bad", "")
    with pytest.raises(errdefs.Untyped, match="^invalid tag format$"):
        env.svc.tag("busybox", "x", "b@d")
    with pytest.raises(errdefs.InvalidParameter, match="^refusing to create an ambiguous tag using digest algorithm as name$"):
        env.svc.tag("busybox", "sha256", "x")
    with pytest.raises(errdefs.InvalidParameter, match="^refusing to create a tag with a digest reference$"):
        env.svc.tag("busybox", "x@sha256:" + image_id[7:], "")


def test_delete_conflicts_and_records(env: Env) -> None:
    data, image_id = docker_save_tar([L1, L2], ["imgltest/two:v1"])
    env.load_bytes(data)
    short = image_id[7:19]
    stopped = lambda i: [("c" * 64, False)] if i == image_id else []  # noqa: E731
    running = lambda i: [("d" * 64, True)] if i == image_id else []  # noqa: E731
    with pytest.raises(errdefs.Conflict) as exc:
        env.svc.delete("imgltest/two:v1", False, True, stopped)
    assert str(exc.value) == ('conflict: unable to remove repository reference "imgltest/two:v1" (must force) - '
                              f"container cccccccccccc is using its referenced image {short}")
    with pytest.raises(errdefs.Conflict) as exc:
        env.svc.delete(short, False, True, stopped)
    assert str(exc.value) == f"conflict: unable to delete {short} (must be forced) - image is being used by stopped container cccccccccccc"
    env.svc.tag(short, "imgltest/other", "")
    with pytest.raises(errdefs.Conflict) as exc:
        env.svc.delete(short, False, True, stopped)
    assert str(exc.value) == f"conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
    assert env.svc.delete("imgltest/two:v1", False, True, stopped) == [{"Untagged": "imgltest/two:v1"}]
    with pytest.raises(errdefs.Conflict) as exc:
        env.svc.delete(short, True, True, running)
    assert str(exc.value) == \
        f"conflict: unable to delete {short} (cannot be forced) - image is being used by running container dddddddddddd"
    chain2 = env.svc.get_image(short).top_layer
    records = env.svc.delete(short, True, True, stopped)
    assert records[:2] == [{"Untagged": "imgltest/other:latest"}, {"Deleted": image_id}]
    assert records[2] == {"Deleted": chain2} and len(records) == 4
    assert [e[0] for e in env.events[-2:]] == ["untag", "delete"]
    with pytest.raises(errdefs.NotFound):
        env.svc.get_image(image_id)
    assert os.listdir(os.path.join(env.layers.root, "sha256")) == []


def test_delete_keeps_shared_layers(env: Env) -> None:
    env.load_bytes(docker_save_tar([L1], ["a:1"])[0])
    env.load_bytes(docker_save_tar([L1, L2], ["b:1"])[0])
    records = env.svc.delete("b:1", False, True, lambda i: [])
    assert [list(r) for r in records] == [["Untagged"], ["Deleted"], ["Deleted"]]  # image + its top layer only
    assert env.svc.get_image("a:1").size == 100005


def test_import(env: Env) -> None:
    rootfs = layer_tar([Entry("etc", kind="dir"), Entry("etc/a", data=b"hello")])
    image_id = env.svc.import_image(io.BytesIO(rootfs), "imgltest/imp", "t1", ['CMD ["sh"]', "ENV A=b"], "hi")
    info = env.svc.inspect("imgltest/imp:t1")
    assert info["Id"] == image_id and info["Comment"] == "hi" and info["Size"] == 5
    assert info["Config"]["Cmd"] == ["sh"] and info["Config"]["Env"] == ["A=b"]
    assert info["DockerVersion"] == "20.10.24"
    raw = json.loads(env.svc.store.read(image_id))
    assert list(raw) == sorted(raw)  # image.Image marshals through a map: sorted keys
    assert env.svc.history(image_id)[0]["Comment"] == "hi"
    assert [e[0] for e in env.events[-2:]] == ["tag", "import"]
    with pytest.raises(errdefs.InvalidParameter, match="^foo is not a valid change command$"):
        env.svc.import_image(io.BytesIO(rootfs), "", "", ["FOO bar"], "")
    with pytest.raises(errdefs.InvalidParameter, match="^invalid reference format: repository name must be lowercase$"):
        env.svc.import_image(io.BytesIO(rootfs), "Bad", "", [], "")
    with pytest.raises(errdefs.System, match=r"^Error processing tar file\(exit status 1\): unexpected EOF$"):
        env.svc.import_image(io.BytesIO(b"garbage\n"), "", "", [], "")


def test_save_round_trip(env: Env) -> None:
    data, image_id = docker_save_tar([L1, L2], ["imgltest/two:v1"])
    env.load_bytes(data)
    out = io.BytesIO()
    env.svc.save(["imgltest/two:v1"], out)
    assert env.events[-1][0] == "save"
    other = Env(tempfile.mkdtemp(prefix="berth-imagetest-"))
    try:
        assert other.load_bytes(out.getvalue()) == [{"stream": "Loaded image: imgltest/two:v1\n"}]
        assert other.svc.get_image("imgltest/two:v1").id == image_id
    finally:
        shutil.rmtree(other.root)


def test_restart(env: Env) -> None:
    data, image_id = docker_save_tar([L1, L2], ["imgltest/two:v1"])
    env.load_bytes(data)
    env.svc.tag("imgltest/two:v1", "again", "x")
    env.open()
    img = env.svc.get_image("again:x")
    assert img.id == image_id and img.repo_tags == ["again:x", "imgltest/two:v1"]
    layer = env.layers.lookup(img.top_layer or "")
    assert layer is not None and layer.references == 1
