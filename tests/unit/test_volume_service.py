"""berth.volume.service / local / copy_content, checked against dockerd 20.10.24's
answers (messages and shapes captured from the reference daemon)."""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from berth import errdefs
from berth.types.filters import Args
from berth.types.gojson import encode_response
from berth.volume import local
from berth.volume.copy_content import copy_existing_contents
from berth.volume.service import VolumeService, directory_size

RFC3339_UTC = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)\Z")


@pytest.fixture
def tmp() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="bv-svc-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, action: str, name: str, attrs: dict[str, str]) -> None:
        self.events.append((action, name, attrs))


def _svc(tmp: str) -> tuple[VolumeService, Recorder]:
    rec = Recorder()
    return VolumeService(os.path.join(tmp, "volumes"), emit=rec), rec


def test_create_shape_and_layout(tmp: str) -> None:
    svc, rec = _svc(tmp)
    v = svc.create("bvtest1")
    root = os.path.join(tmp, "volumes")
    body = encode_response(v)
    assert body == (
        b'{"CreatedAt":"' + v.CreatedAt.encode() + b'","Driver":"local","Labels":null,"Mountpoint":"'  # type: ignore[union-attr]
        + root.encode() + b'/bvtest1/_data","Name":"bvtest1","Options":null,"Scope":"local"}\n'
    )
    assert RFC3339_UTC.match(v.CreatedAt)  # type: ignore[arg-type]
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o701
    assert stat.S_IMODE(os.stat(os.path.join(root, "bvtest1")).st_mode) == 0o701
    assert stat.S_IMODE(os.stat(os.path.join(root, "bvtest1", "_data")).st_mode) == 0o755
    assert rec.events == [("create", "bvtest1", {"driver": "local"})]


def test_create_keeps_null_and_empty_apart_and_sorts_keys(tmp: str) -> None:
    svc, _ = _svc(tmp)
    v = svc.create("bv4", "local", {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"}, {"b": "2", "a": "1"})
    assert b'"Labels":{"a":"1","b":"2"}' in encode_response(v)
    assert b'"Options":{"device":"tmpfs","o":"size=10m","type":"tmpfs"}' in encode_response(v)
    e = svc.create("bv5", "local", {}, {})
    assert b'"Labels":{},' in encode_response(e) and b'"Options":{},' in encode_response(e)


def test_create_existing_returns_it_unchanged_and_logs_again(tmp: str) -> None:
    svc, rec = _svc(tmp)
    first = svc.create("bv4", "", None, {"a": "1"})
    again = svc.create("bv4", "local", {"foo": "bad"}, {"z": "1"})  # opts not checked either
    assert again == first and again.Labels == {"a": "1"}
    assert [e[0] for e in rec.events] == ["create", "create"]


def test_create_empty_name_is_random(tmp: str) -> None:
    svc, _ = _svc(tmp)
    v = svc.create(None)
    assert re.fullmatch(r"[0-9a-f]{64}", v.Name)
    assert svc.create("").Name != v.Name


@pytest.mark.parametrize(
    ("name", "driver", "opts", "cls", "message"),
    [
        ("x", "local", None, errdefs.InvalidParameter,
         "create x: volume name is too short, names should be at least two alphanumeric characters"),
        ("b/v", "local", None, errdefs.InvalidParameter,
         'create b/v: "b/v" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" '
         "are allowed. If you intended to pass a host directory, use absolute path"),
        ("-bv", "local", None, errdefs.InvalidParameter,
         'create -bv: "-bv" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" '
         "are allowed. If you intended to pass a host directory, use absolute path"),
        ("a\tb", "local", None, errdefs.InvalidParameter,
         'create a\tb: "a\\tb" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" '
         "are allowed. If you intended to pass a host directory, use absolute path"),
        ("bv2", "nosuch", None, errdefs.NotFound,
         'create bv2: error looking up volume plugin nosuch: plugin "nosuch" not found'),
        ("x", "nosuch", None, errdefs.NotFound,  # the driver is looked up before the name is checked
         'create x: error looking up volume plugin nosuch: plugin "nosuch" not found'),
        ("bv3", "local", {"foo": "1"}, errdefs.InvalidParameter, 'create bv3: invalid option: "foo"'),
        ("bv3", "local", {"o": "1"}, errdefs.InvalidParameter, 'create bv3: missing required option: "device"'),
        ("bv3", "local", {"device": "1"}, errdefs.InvalidParameter, 'create bv3: missing required option: "type"'),
        ("bv3", "local", {"type": "tmpfs"}, errdefs.InvalidParameter, 'create bv3: missing required option: "device"'),
        # size is a quota option: parsed as a RAM size, refused above 0 without quota support
        ("bv3", "local", {"size": "1m"}, errdefs.InvalidParameter,
         "create bv3: quota size requested but no quota support"),
        ("bv3", "local", {"size": "bogus"}, errdefs.Untyped, "create bv3: invalid size: 'bogus'"),
        ("bv3", "local", {"size": "1g", "type": "tmpfs", "device": "tmpfs"}, errdefs.InvalidParameter,
         "create bv3: quota size requested but no quota support"),
        ("x", "local", {"foo": "1"}, errdefs.InvalidParameter,
         "create x: volume name is too short, names should be at least two alphanumeric characters"),
    ],
)
def test_create_errors(tmp: str, name: str, driver: str, opts: dict[str, str] | None,
                       cls: type[errdefs.DockerError], message: str) -> None:
    svc, rec = _svc(tmp)
    with pytest.raises(errdefs.DockerError) as exc:
        svc.create(name, driver, opts)
    assert type(exc.value) is cls
    assert str(exc.value) == message
    assert rec.events == []
    assert os.listdir(os.path.join(tmp, "volumes")) == []


def test_get_errors(tmp: str) -> None:
    svc, _ = _svc(tmp)
    with pytest.raises(errdefs.NotFound, match="^get nosuch: no such volume$"):
        svc.get("nosuch")
    with pytest.raises(errdefs.NotFound, match="^get: no such volume$"):
        svc.get("")
    with pytest.raises(errdefs.NotFound, match="^get a/b: no such volume$"):
        svc.get("a/b")
    assert svc.get(svc.create("bvg").Name).Name == "bvg"


def test_remove_in_use_missing_and_force(tmp: str) -> None:
    svc, rec = _svc(tmp)
    c1, c2 = "a" * 64, "b" * 64
    svc.create("bvuse", reference=c1)
    svc.get("bvuse", reference=c2)
    assert svc.refs("bvuse") == [c1, c2]
    for force in (False, True):
        with pytest.raises(errdefs.Conflict) as exc:
            svc.remove("bvuse", force=force)
        assert str(exc.value) == f"remove bvuse: volume is in use - [{c1}, {c2}]"
    with pytest.raises(errdefs.NotFound, match="^get nosuchbv: no such volume$"):
        svc.remove("nosuchbv")
    svc.remove("nosuchbv", force=True)  # 204, and no event
    svc.release("bvuse", c1)
    svc.release("bvuse", c1)  # releasing twice is fine
    svc.release("nosuch", c1)
    svc.release("bvuse", c2)
    assert svc.refs("bvuse") == []
    svc.remove("bvuse")
    assert not os.path.exists(os.path.join(tmp, "volumes", "bvuse"))
    assert rec.events[-1] == ("destroy", "bvuse", {"driver": "local"})
    assert [e[0] for e in rec.events] == ["create", "destroy"]


def test_acquire_requires_volume(tmp: str) -> None:
    svc, _ = _svc(tmp)
    with pytest.raises(errdefs.NotFound, match="^get gone: no such volume$"):
        svc.acquire("gone", "c")
    svc.create("here")
    svc.acquire("here", "c")
    assert svc.refs("here") == ["c"]


def _names(vols: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(v.Name for v in vols)


def test_list_filters(tmp: str) -> None:
    svc, _ = _svc(tmp)
    svc.create("bvtest1")
    svc.create("bv4", labels={"a": "1", "b": "2"})
    svc.create("other", labels={"a": "2"})
    svc.create("used", reference="c1")
    vols, warnings = svc.list(Args())
    assert warnings is None and _names(vols) == ["bv4", "bvtest1", "other", "used"]
    f = Args.from_json
    assert _names(svc.list(f('{"name":["bv"]}'))[0]) == ["bv4", "bvtest1"]
    assert _names(svc.list(f('{"name":["^o.*r$"]}'))[0]) == ["other"]
    assert _names(svc.list(f('{"driver":["loc"]}'))[0]) == []
    assert _names(svc.list(f('{"driver":["local"]}'))[0]) == ["bv4", "bvtest1", "other", "used"]
    assert _names(svc.list(f('{"label":["a"]}'))[0]) == ["bv4", "other"]
    assert _names(svc.list(f('{"label":["a=1"]}'))[0]) == ["bv4"]
    assert _names(svc.list(f('{"label":{"b=2":true}}'))[0]) == ["bv4"]
    assert _names(svc.list(f('{"dangling":["true"]}'))[0]) == ["bv4", "bvtest1", "other"]
    assert _names(svc.list(f('{"dangling":["1"]}'))[0]) == ["bv4", "bvtest1", "other"]
    assert _names(svc.list(f('{"dangling":["false"]}'))[0]) == ["used"]
    assert _names(svc.list(f('{"dangling":["0"]}'))[0]) == ["used"]
    # Both given: "true" wins, as in filtersToBy.
    assert _names(svc.list(f('{"dangling":["true","false"]}'))[0]) == ["bv4", "bvtest1", "other"]
    with pytest.raises(errdefs.InvalidParameter, match=r"^Invalid filter 'dangling=\[maybe\]'$"):
        svc.list(f('{"dangling":["maybe"]}'))
    with pytest.raises(errdefs.InvalidParameter, match="^Invalid filter 'foo'$"):
        svc.list(f('{"foo":["x"]}'))
    with pytest.raises(errdefs.InvalidParameter, match="^Invalid filter 'label!'$"):
        svc.list(f('{"label!":["zzz"]}'))


def test_prune(tmp: str) -> None:
    svc, rec = _svc(tmp)
    svc.create("bvlab", labels={"bvtest": "1"})
    svc.create("bvkeep", labels={"bvtest": "1", "keep": "yes"})
    svc.create("bvnolabel")
    svc.create("bvused", labels={"bvtest": "1"}, reference="c1")
    data = svc.get("bvlab").Mountpoint
    os.makedirs(os.path.join(data, "sub"))
    with open(os.path.join(data, "sub", "f"), "wb") as fh:
        fh.write(b"\0" * 5000)
    os.link(os.path.join(data, "sub", "f"), os.path.join(data, "hard"))  # counted once
    rec.events.clear()

    with pytest.raises(errdefs.InvalidParameter, match="^Invalid filter 'name'$"):
        svc.prune(Args.from_json('{"name":["bv"]}'))
    with pytest.raises(errdefs.InvalidParameter, match="^Invalid filter 'dangling'$"):
        svc.prune(Args.from_json('{"dangling":["true"]}'))

    none = svc.prune(Args.from_json('{"label":["bvnomatch"]}'))
    assert encode_response(none) == b'{"VolumesDeleted":[],"SpaceReclaimed":0}\n'
    rep = svc.prune(Args.from_json('{"label":["bvtest"],"label!":["keep=yes"]}'))
    assert encode_response(rep) == b'{"VolumesDeleted":["bvlab"],"SpaceReclaimed":5000}\n'
    # No destroy events: dockerd's prune removes through the store.
    assert rec.events == [("prune", "", {"reclaimed": "0"}), ("prune", "", {"reclaimed": "5000"})]
    rep = svc.prune(None)
    assert sorted(rep.VolumesDeleted or []) == ["bvkeep", "bvnolabel"]
    assert _names(svc.list()[0]) == ["bvused"]


def test_concurrent_prune_is_refused(tmp: str) -> None:
    svc, _ = _svc(tmp)
    assert svc._prune_running.acquire(blocking=False)
    try:
        with pytest.raises(errdefs.Conflict, match="^a prune operation is already running$"):
            svc.prune(None)
    finally:
        svc._prune_running.release()


def test_restart_restores_volumes_and_metadata(tmp: str) -> None:
    svc, _ = _svc(tmp)
    a = svc.create("bvpersist", "local", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}, {"k": "v"})
    b = svc.create("bvempty", "local", {}, {})
    c = svc.create("bvnull")
    svc.acquire("bvnull", "c1")
    svc2, _ = _svc(tmp)
    assert svc2.get("bvpersist") == a and svc2.get("bvempty") == b and svc2.get("bvnull") == c
    assert svc2.refs("bvnull") == []  # references are taken again by the daemon on restore
    # A volume directory with no metadata (crash before the write, or made by hand).
    os.makedirs(os.path.join(tmp, "volumes", "handmade", "_data"))
    with open(os.path.join(tmp, "volumes", "stray-file"), "w"):
        pass
    svc3, _ = _svc(tmp)
    v = svc3.get("handmade")
    assert v.Labels is None and v.Options is None and v.Driver == "local"
    with pytest.raises(errdefs.NotFound):
        svc3.get("stray-file")


def test_created_at_uses_local_zone(tmp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        assert local.format_rfc3339(1704207845.9) == "2024-01-02T16:04:05+01:00"
        assert local.format_rfc3339(1719932645) == "2024-07-02T17:04:05+02:00"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert local.format_rfc3339(1704207845) == "2024-01-02T15:04:05Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_concurrent_creates_of_one_name(tmp: str) -> None:
    svc, rec = _svc(tmp)
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(svc.create("bvsame").CreatedAt)) for _ in range(20)]  # type: ignore[misc]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 20 and len(set(out)) == 1
    assert len(rec.events) == 20
    assert os.listdir(os.path.join(tmp, "volumes")) == ["bvsame"]


def test_local_volumes_size(tmp: str) -> None:
    svc, _ = _svc(tmp)
    v = svc.create("bvdf", reference="c1")
    with open(os.path.join(v.Mountpoint, "f"), "wb") as fh:
        fh.write(b"x" * 123)
    (only,) = svc.local_volumes_size()
    assert encode_response(only).endswith(b'"Scope":"local","UsageData":{"RefCount":1,"Size":123}}\n')


def test_directory_size(tmp: str) -> None:
    os.makedirs(os.path.join(tmp, "d", "e"))
    with open(os.path.join(tmp, "d", "e", "f"), "wb") as fh:
        fh.write(b"y" * 10)
    os.link(os.path.join(tmp, "d", "e", "f"), os.path.join(tmp, "d", "g"))
    os.symlink("e/f", os.path.join(tmp, "d", "s"))  # a symlink counts its own length
    assert directory_size(os.path.join(tmp, "d")) == 10 + len("e/f")
    with pytest.raises(FileNotFoundError):
        directory_size(os.path.join(tmp, "nope"))


def test_copy_existing_contents(tmp: str) -> None:
    src = os.path.join(tmp, "src")
    os.makedirs(os.path.join(src, "sub"))
    os.chmod(src, 0o1777)
    with open(os.path.join(src, "sub", "file"), "wb") as fh:
        fh.write(b"hello")
    os.chmod(os.path.join(src, "sub", "file"), 0o640)
    os.utime(os.path.join(src, "sub", "file"), (1_000_000, 1_000_000))
    os.link(os.path.join(src, "sub", "file"), os.path.join(src, "hard"))
    os.symlink("sub/file", os.path.join(src, "link"))
    os.mkfifo(os.path.join(src, "fifo"), 0o600)
    if os.geteuid() == 0:
        os.chown(os.path.join(src, "sub"), 1234, 5678)
    dst = os.path.join(tmp, "dst")
    os.mkdir(dst, 0o755)
    copy_existing_contents(src, dst)
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o1777  # the volume root takes the image dir's mode
    st = os.stat(os.path.join(dst, "sub", "file"))
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == 1_000_000
    assert os.path.samefile(os.path.join(dst, "sub", "file"), os.path.join(dst, "hard"))
    assert os.readlink(os.path.join(dst, "link")) == "sub/file"
    assert stat.S_ISFIFO(os.lstat(os.path.join(dst, "fifo")).st_mode)
    if os.geteuid() == 0:
        st = os.stat(os.path.join(dst, "sub"))
        assert (st.st_uid, st.st_gid) == (1234, 5678)
    # A volume that already has content is left alone.
    other = os.path.join(tmp, "other")
    os.makedirs(other)
    with open(os.path.join(other, "keep"), "w"):
        pass
    copy_existing_contents(src, other)
    assert os.listdir(other) == ["keep"]


def test_size_zero_and_addr_resolution(tmp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from berth.volume import local

    svc, _ = _svc(tmp)
    assert svc.create("bvz", "local", {"size": "0"}).Options == {"size": "0"}
    assert svc.mount("bvz", "c1").endswith("/bvz/_data")  # no device, nothing to mount
    assert local.resolve_addr_option("addr=localhost,vers=4") == "addr=127.0.0.1,vers=4"
    assert local.resolve_addr_option("addr=10.0.0.1,nolock") == "addr=10.0.0.1,nolock"
    assert local.resolve_addr_option("nolock") == "nolock"
    def no_dns(host: str, *a: object, **k: object) -> list[object]:  # no query leaves the host
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(errdefs.System, match="^error resolving passed in network volume address: lookup x.invalid: "):
        local.resolve_addr_option("addr=x.invalid")
