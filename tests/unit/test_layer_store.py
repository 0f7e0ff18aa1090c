"""LayerStore: unpacking, whiteouts, sharing, tar-split round trips, RW layers, escapes.

Needs root (overlay mounts, mknod, chown); each test works in its own temp dir.
"""
from __future__ import annotations

import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator

import pytest

from berth import errdefs
from berth.layer import LayerStore, chain_id_of

sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: make the helper importable
from imagetar import Entry, layer_tar, sha256

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

BASE = layer_tar([
    Entry("etc", kind="dir"), Entry("etc/a", data=b"hello"), Entry("etc/keep", data=b"k"),
    Entry("bin", kind="dir"), Entry("bin/x", data=b"x" * 1000, mode=0o755), Entry("bin/z", data=b"z"),
    Entry("lnk", kind="symlink", linkname="/etc/a"), Entry("hard", kind="hardlink", linkname="etc/a"),
    Entry("dev", kind="dir"), Entry("dev/null", kind="chardev"), Entry("fifo", kind="fifo"),
    Entry("owned", data=b"o", uid=1000, gid=1001, mode=0o4750),
    Entry("xa", data=b"", pax={"SCHILY.xattr.user.test": "v"}),
])
TOP = layer_tar([
    Entry("etc", kind="dir"), Entry("etc/.wh.a"), Entry("bin/.wh..wh..opq"), Entry("bin/y", data=b"y"),
])


@pytest.fixture(params=["overlay2", "vfs"])
def store(request: pytest.FixtureRequest) -> Iterator[LayerStore]:
    root = tempfile.mkdtemp(prefix="berth-layertest-")
    ls = LayerStore(os.path.join(root, "image", request.param, "layerdb"), driver=request.param)
    assert ls.driver_name == request.param
    try:
        yield ls
    finally:
        for rw in list(ls._mounts):
            try:
                ls.remove_rw_layer(rw)
            except errdefs.DockerError:
                pass
        ls.close()
        shutil.rmtree(root)


def _tree(path: str) -> set[str]:
    out = set()
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), path))
    return out


def test_register_ids_sizes_and_metadata(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    assert base.diff_id == sha256(BASE)
    assert base.chain_id == base.diff_id
    top = store.register(io.BytesIO(TOP), base.chain_id)
    assert top.chain_id == chain_id_of([sha256(BASE), sha256(TOP)])
    assert top.parent is base and top.diff_ids() == [sha256(BASE), sha256(TOP)]
    d = store.driver.diff_dir(base.cache_id)
    st = os.lstat(os.path.join(d, "owned"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o4750)
    assert os.readlink(os.path.join(d, "lnk")) == "/etc/a"
    assert os.stat(os.path.join(d, "hard")).st_ino == os.stat(os.path.join(d, "etc/a")).st_ino
    assert stat.S_ISCHR(os.lstat(os.path.join(d, "dev/null")).st_mode)
    assert stat.S_ISFIFO(os.lstat(os.path.join(d, "fifo")).st_mode)
    assert os.lstat(os.path.join(d, "bin/x")).st_mtime == 1700000000
    assert os.lstat(os.path.join(d, "etc")).st_mtime == 1700000000  # dir times set last
    assert os.getxattr(os.path.join(d, "xa"), "user.test") == b"v"


def test_whiteouts(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    top = store.register(io.BytesIO(TOP), base.chain_id)
    d = store.driver.diff_dir(top.cache_id)
    if store.driver_name == "overlay2":
        st = os.lstat(os.path.join(d, "etc/a"))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        assert os.getxattr(os.path.join(d, "bin"), "trusted.overlay.opaque") == b"y"
        assert not os.path.exists(os.path.join(d, "bin/.wh..wh..opq"))
    else:
        assert not os.path.lexists(os.path.join(d, "etc/a"))
        assert os.path.exists(os.path.join(d, "etc/keep"))
        assert sorted(os.listdir(os.path.join(d, "bin"))) == ["y"]
    rw = store.create_rw_layer("c" * 64, top.chain_id)
    root = rw.mount()
    try:
        assert not os.path.exists(os.path.join(root, "etc/a"))
        assert os.path.exists(os.path.join(root, "etc/keep"))
        assert sorted(os.listdir(os.path.join(root, "bin"))) == ["y"]
    finally:
        rw.unmount()


def test_idempotent_register_and_release(store: LayerStore) -> None:
    a = store.register(io.BytesIO(BASE), None)
    b = store.register(io.BytesIO(BASE), None)
    assert a is b and a.references == 2
    top = store.register(io.BytesIO(TOP), a.chain_id)
    assert store.release(a.chain_id) == [] and store.release(a.chain_id) == []  # the child holds one
    assert store.release(top.chain_id) == [top.chain_id, a.chain_id]
    assert os.listdir(os.path.join(store.root, "sha256")) == []
    home = os.path.dirname(store.driver.dir("x"))
    assert [n for n in os.listdir(home) if n not in ("l", ".trash")] == []
    store.close()  # removed directories leave the disk in the background
    assert os.listdir(store.driver.trash.dir) == []


def test_tar_split_round_trip(store: LayerStore) -> None:
    a = store.register(io.BytesIO(BASE), None)
    top = store.register(io.BytesIO(TOP), a.chain_id)
    for layer, data in ((a, BASE), (top, TOP)):
        out = io.BytesIO()
        store.tar_stream(layer.chain_id, out)
        assert out.getvalue() == data


def test_gzip_layer(store: LayerStore) -> None:
    import gzip

    layer = store.register(io.BytesIO(gzip.compress(BASE)), None)
    assert layer.diff_id == sha256(BASE)  # digest of the uncompressed tar


def test_restore_keeps_layers_and_mounts(store: LayerStore) -> None:
    a = store.register(io.BytesIO(BASE), None)
    store.create_rw_layer("d" * 64, a.chain_id)
    again = LayerStore(store.root, driver=store.driver_name,
                       graph_root=os.path.dirname(os.path.dirname(os.path.dirname(store.root))))
    layer = again.lookup(a.chain_id)
    assert layer is not None and layer.size == a.size and layer.references == 1  # the mount's
    assert again.get_rw_layer("d" * 64).mount_id == store.get_rw_layer("d" * 64).mount_id


def test_rw_layer_init_and_changes(store: LayerStore) -> None:
    a = store.register(io.BytesIO(BASE), None)
    rw = store.create_rw_layer("e" * 64, a.chain_id)
    with pytest.raises(errdefs.Conflict):
        store.create_rw_layer("e" * 64, a.chain_id)
    data = rw.graph_driver_data()
    if store.driver_name == "overlay2":
        assert data is not None and list(data) == ["LowerDir", "MergedDir", "UpperDir", "WorkDir"]
        lowers = data["LowerDir"].split(":")
        assert lowers[0].endswith(rw.mount_id + "-init/diff")
        assert lowers[1] == store.driver.diff_dir(a.cache_id)
        # computed in memory, it names what the layer's `lower` file does
        assert data == store.driver.metadata(rw.mount_id)
        b = store.register(io.BytesIO(TOP), a.chain_id)
        rw2 = store.create_rw_layer("f" * 64, b.chain_id)
        assert rw2.graph_driver_data() == store.driver.metadata(rw2.mount_id)
        store.remove_rw_layer("f" * 64)
    else:
        assert data is None
    root = rw.mount()
    try:
        for p in ("etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv", "dev/console"):
            assert os.path.isfile(os.path.join(root, p)), p
        assert os.readlink(os.path.join(root, "etc/mtab")) == "/proc/mounts"
        for p in ("proc", "sys", "dev/pts", "dev/shm"):
            assert os.path.isdir(os.path.join(root, p))
        with open(os.path.join(root, "etc/new"), "w") as f:
            f.write("12345")
        os.unlink(os.path.join(root, "etc/keep"))
        changes = {(c.Path, c.Kind) for c in rw.changes()}
        assert ("/etc/new", 1) in changes and ("/etc/keep", 2) in changes and ("/etc", 0) in changes
        assert rw.diff_size() >= 5
    finally:
        rw.unmount()
    assert store.remove_rw_layer("e" * 64) == []
    with pytest.raises(errdefs.NotFound):
        store.get_rw_layer("e" * 64)


# -- escapes ------------------------------------------------------------------------------

@pytest.fixture
def outside() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="berth-layertest-outside-")
    yield d
    shutil.rmtree(d)


def _assert_clean(store: LayerStore) -> None:
    assert os.listdir(os.path.join(store.root, "sha256")) == []
    home = os.path.dirname(store.driver.dir("x"))
    assert [n for n in os.listdir(home) if n != "l" and not n.startswith(".")] == []
    if store.driver_name == "overlay2":
        assert os.listdir(os.path.join(home, "l")) == []


def test_dotdot_and_absolute_names_are_contained(store: LayerStore, outside: str) -> None:
    # dockerd unpacks in a chroot: "../x" and "/x" both land at <layer>/x.
    evil = os.path.relpath(os.path.join(outside, "evil"), "/")
    layer = store.register(io.BytesIO(layer_tar([
        Entry("../../../../../../../../" + evil, data=b"x"), Entry("/abs", data=b"y")])), None)
    d = store.driver.diff_dir(layer.cache_id)
    assert os.listdir(outside) == []
    assert os.path.isfile(os.path.join(d, evil)) and os.path.isfile(os.path.join(d, "abs"))


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_symlink_parent_escape_is_refused(store: LayerStore, outside: str, target: str) -> None:
    link = outside if target == "absolute" else "../../../../../../../.." + outside
    tar = layer_tar([Entry("lnk", kind="symlink", linkname=link), Entry("lnk/evil", data=b"x")])
    with pytest.raises(errdefs.System) as exc:
        store.register(io.BytesIO(tar), None)
    assert str(exc.value) == "Error processing tar file(exit status 1): open /lnk/evil: no such file or directory"
    assert os.listdir(outside) == []
    _assert_clean(store)


def test_symlink_parent_is_resolved_inside(store: LayerStore) -> None:
    tar = layer_tar([Entry("etc", kind="dir"), Entry("lnk", kind="symlink", linkname="/etc"),
                     Entry("lnk/passwd", data=b"p")])
    layer = store.register(io.BytesIO(tar), None)
    with open(os.path.join(store.driver.diff_dir(layer.cache_id), "etc/passwd"), "rb") as f:
        assert f.read() == b"p"


@pytest.mark.parametrize("linkname", ["../../../../../../etc/passwd", "/etc/passwd"])
def test_hardlink_escape_is_refused(store: LayerStore, linkname: str) -> None:
    with pytest.raises(errdefs.System) as exc:
        store.register(io.BytesIO(layer_tar([Entry("hl", kind="hardlink", linkname=linkname)])), None)
    assert str(exc.value) == "Error processing tar file(exit status 1): link /etc/passwd /hl: no such file or directory"
    _assert_clean(store)


def test_hardlink_through_symlink_stays_inside(store: LayerStore, outside: str) -> None:
    with open(os.path.join(outside, "secret"), "w") as f:
        f.write("s")
    tar = layer_tar([Entry("lnk", kind="symlink", linkname=outside), Entry("hl", kind="hardlink",
                                                                          linkname="lnk/secret")])
    with pytest.raises(errdefs.System):
        store.register(io.BytesIO(tar), None)
    assert os.stat(os.path.join(outside, "secret")).st_nlink == 1
    _assert_clean(store)


def test_garbage_is_refused(store: LayerStore) -> None:
    with pytest.raises(errdefs.System, match=r"^Error processing tar file\(exit status 1\): unexpected EOF$"):
        store.register(io.BytesIO(b"garbage\n"), None)
    _assert_clean(store)


def _formats_tar(fmt: int) -> bytes:
    """Entries that need the extensions of each tar format: long names and link targets,
    a ustar prefix, ids too big for octal, an old-style (V7) directory."""
    import tarfile

    long_dir = "d/" + "n" * 120
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, kind, data, extra in (
            ("d", tarfile.DIRTYPE, b"", {}),
            (long_dir, tarfile.DIRTYPE, b"", {}),
            (long_dir + "/" + "f" * 90, tarfile.REGTYPE, b"long" * 300, {"mode": 0o640}),
            ("d/big-ids", tarfile.REGTYPE, b"i", {"uid": 3_000_000, "gid": 2_100_000}),
            ("d/far", tarfile.SYMTYPE, b"", {"linkname": "t" * 150}),
            ("d/hard", tarfile.LNKTYPE, b"", {"linkname": long_dir + "/" + "f" * 90}),
        ):
            if fmt == tarfile.USTAR_FORMAT and (extra.get("uid", 0) > 0o7777777 or len(extra.get("linkname", "")) > 100):
                continue
            ti = tarfile.TarInfo(name)
            ti.type, ti.size, ti.mtime, ti.mode = kind, len(data), 1600000000, extra.get("mode", 0o755)
            ti.uid, ti.gid, ti.linkname = extra.get("uid", 0), extra.get("gid", 0), extra.get("linkname", "")
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue() + b"trailing bytes after the end-of-archive blocks"


@pytest.mark.parametrize("fmt", ["GNU_FORMAT", "PAX_FORMAT", "USTAR_FORMAT"])
def test_tar_formats(store: LayerStore, fmt: str) -> None:
    import tarfile

    data = _formats_tar(getattr(tarfile, fmt))
    layer = store.register(io.BytesIO(data), None)
    assert layer.diff_id == sha256(data)  # trailing bytes included, as dockerd drains the stream
    d = store.driver.diff_dir(layer.cache_id)
    f = os.path.join(d, "d", "n" * 120, "f" * 90)
    with open(f, "rb") as fh:
        assert fh.read() == b"long" * 300
    assert stat.S_IMODE(os.lstat(f).st_mode) == 0o640
    if fmt != "USTAR_FORMAT":  # ustar has no room for the long link targets and ids
        assert os.lstat(os.path.join(d, "d/hard")).st_ino == os.lstat(f).st_ino
        st = os.lstat(os.path.join(d, "d/big-ids"))
        assert (st.st_uid, st.st_gid) == (3_000_000, 2_100_000)
        assert os.readlink(os.path.join(d, "d/far")) == "t" * 150
    out = io.BytesIO()
    store.tar_stream(layer.chain_id, out)
    assert out.getvalue() == data
    if store.driver_name == "overlay2":  # the size counted while unpacking is a walk's
        from berth.layer import archive

        assert layer.size == archive.directory_size(d)


def test_sparse_files_are_expanded(store: LayerStore) -> None:
    """GNU tar's sparse formats (old GNU and PAX 1.0) go to Python's tar reader from the
    sparse entry on; the entries after it still unpack."""
    import subprocess

    work = tempfile.mkdtemp(prefix="berth-sparse-")
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        with open(os.path.join(src, "sparse"), "wb") as f:
            f.truncate(3 << 20)
            f.seek(1 << 20)
            f.write(b"middle")
        with open(os.path.join(src, "zafter"), "wb") as f:
            f.write(b"after")
        for opts in (["--format=gnu"], ["--format=posix", "--sparse-version=1.0"]):
            tar = os.path.join(work, "l.tar")
            subprocess.run(["tar", *opts, "-S", "-cf", tar, "-C", src, "sparse", "zafter"], check=True)
            with open(tar, "rb") as f:
                data = f.read()
            layer = store.register(io.BytesIO(data), None)
            d = store.driver.diff_dir(layer.cache_id)
            with open(os.path.join(d, "sparse"), "rb") as f:
                body = f.read()
            assert len(body) == 3 << 20 and body[1 << 20:(1 << 20) + 6] == b"middle" and body.count(0) == len(body) - 6
            with open(os.path.join(d, "zafter"), "rb") as f:
                assert f.read() == b"after"
            assert layer.diff_id == sha256(data)
            store.release(layer.chain_id)
    finally:
        shutil.rmtree(work)


def test_a_layer_of_many_files_and_overwrites(store: LayerStore) -> None:
    """Entries replacing others (file over dir, dir over symlink, link over file) as Unpack
    does them, and the size then counted by a walk."""
    tar = layer_tar([
        Entry("a", data=b"1"), Entry("a", data=b"22"), Entry("b", kind="dir"), Entry("b/c", data=b"c"),
        Entry("b", data=b"file now"), Entry("c", kind="symlink", linkname="b"), Entry("c", kind="dir"),
        Entry("c/x", data=b"x"), Entry("a", kind="hardlink", linkname="c/x"),
        *[Entry(f"many/{i % 7}/f{i}", data=b"%d" % i) for i in range(300)],
    ])
    layer = store.register(io.BytesIO(tar), None)
    d = store.driver.diff_dir(layer.cache_id)
    with open(os.path.join(d, "b"), "rb") as f:
        assert f.read() == b"file now"
    assert os.path.isdir(os.path.join(d, "c")) and not os.path.islink(os.path.join(d, "c"))
    assert os.lstat(os.path.join(d, "a")).st_ino == os.lstat(os.path.join(d, "c/x")).st_ino
    assert len(os.listdir(os.path.join(d, "many/3"))) == len([i for i in range(300) if i % 7 == 3])
    if store.driver_name == "overlay2":
        from berth.layer import archive

        assert layer.size == archive.directory_size(d)


def test_tar_split_of_a_tar_ending_as_gos_writer_ends_it(store: LayerStore) -> None:
    """Two zero blocks and no record padding after a last entry that has no payload (what
    `docker commit` and dockerd's own layers look like): the tar-split still keeps them."""
    import tarfile

    buf = io.BytesIO()
    tf = tarfile.TarFile(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
    for name, data in (("f", b"hi\n"), ("d", None), ("d/.wh..wh..opq", b"")):
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
        ti.size, ti.mtime = len(data or b""), 0
        tf.addfile(ti, io.BytesIO(data) if data else None)
    tar = buf.getvalue() + bytes(1024)
    layer = store.register(io.BytesIO(tar), None)
    assert layer.diff_id == sha256(tar)
    out = io.BytesIO()
    store.tar_stream(layer.chain_id, out)
    assert out.getvalue() == tar


@pytest.mark.parametrize("case", ["nul-in-pax-path", "negative-uid"])
def test_malformed_headers_are_tar_errors(store: LayerStore, case: str) -> None:
    """What Go's reader refuses (a NUL in a PAX path) or the kernel would (a negative owner,
    which base-256 numbers can carry) ends as dockerd's tar error, not as an exception."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT if case == "negative-uid" else
                      tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("f")
        if case == "negative-uid":
            ti.uid = -5
        else:
            ti.pax_headers = {"path": "a\x00b"}
        tf.addfile(ti, io.BytesIO(b""))
    want = {"nul-in-pax-path": "archive/tar: invalid tar header", "negative-uid": "lchown /f: invalid argument"}[case]
    with pytest.raises(errdefs.System, match=rf"^Error processing tar file\(exit status 1\): {want}$"):
        store.register(io.BytesIO(buf.getvalue()), None)


def test_a_bad_header_midway_is_an_error_as_in_go(store: LayerStore) -> None:
    """Go's reader refuses a header whose numbers are not octal, PAX headers included, where
    Python's tarfile took it for the end of the archive and dropped the rest."""
    good = layer_tar([Entry("a", data=b"1"), Entry("b", data=b"2")])
    bad = bytearray(good)
    bad[512 * 2 + 108:512 * 2 + 116] = b"0000/00\x00"  # b's uid
    blk = bytes(bad[1024:1536])
    bad[1024 + 148:1024 + 156] = b"%06o\x00 " % (sum(blk[:148]) + 256 + sum(blk[156:]))
    with pytest.raises(errdefs.System, match=r"archive/tar: invalid tar header$"):
        store.register(io.BytesIO(bytes(bad)), None)


def test_a_gzip_layer_failing_its_crc(store: LayerStore) -> None:
    import gzip

    data = bytearray(gzip.compress(BASE))
    data[-6] ^= 0xFF  # the CRC-32 in the trailer
    with pytest.raises(errdefs.System, match=r"^Error processing tar file\(exit status 1\): gzip: invalid checksum$"):
        store.register(io.BytesIO(bytes(data)), None)


def test_register_right_after_the_last_release_of_that_chain(store: LayerStore,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`docker rmi X` racing a pull or load of X: the release has dropped the chain ID but
    not yet deleted its files when the same layer is registered again. The name is freed
    with the map entry (under the store's lock), so the register gets the chain ID, in a
    directory of its own; the old content is deleted in the background without touching it."""
    import threading

    import berth.layer.store as store_mod

    base = store.register(io.BytesIO(BASE), None)
    old_cache = base.cache_id
    meta = store._meta_dir(base.chain_id)
    real_rename = os.rename
    committing = threading.Event()

    def rename(src: str, dst: str) -> None:
        if src == meta and dst.endswith("-removing"):
            # hold the release here until the register has tried to commit (at most 1 s):
            # before the fix the release had left the lock here, and the register's rename
            # onto the still-present directory failed (ENOTEMPTY)
            committing.wait(1)
        try:
            real_rename(src, dst)
        finally:
            if dst == meta:
                committing.set()

    monkeypatch.setattr(store_mod.os, "rename", rename)
    errors: list[BaseException] = []
    released = threading.Thread(target=store.release, args=(base.chain_id,))
    released.start()
    deadline = 50
    while store.lookup(base.chain_id) is not None and deadline:  # the map entry is gone
        released.join(0.01)
        deadline -= 1

    def register() -> None:
        try:
            store.register(io.BytesIO(BASE), None)
        except BaseException as e:
            errors.append(e)

    again = threading.Thread(target=register)
    again.start()
    released.join(10)
    again.join(10)
    monkeypatch.undo()
    assert not errors, errors
    layer = store.lookup(base.chain_id)
    assert layer is not None and layer.cache_id != old_cache and layer.references == 1
    store.driver.trash.wait_empty()
    with open(os.path.join(store.driver.diff_dir(layer.cache_id), "etc", "a"), "rb") as f:
        assert f.read() == b"hello"
    assert os.listdir(os.path.join(store.root, "sha256")) == [base.chain_id.split(":")[1]]
    # and from the disk, as the next start finds it
    reopened = LayerStore(store.root, driver=store.driver_name,
                          graph_root=os.path.dirname(os.path.dirname(os.path.dirname(store.root))))
    assert reopened.lookup(base.chain_id) is not None
    reopened.close()
    store.release(base.chain_id)
