"""berth.volume.mounts against dockerd 20.10.24's answers (messages taken from the
reference daemon and moby's linux_parser.go / validate.go)."""
from __future__ import annotations

import os
import tempfile

import msgspec
import pytest

from berth import errdefs
from berth.types import mount as mt
from berth.types.gojson import encode_response, encode_stream
from berth.volume import mounts

CFG = 'invalid mount config for type "{}": {}'


def _mount(body: bytes) -> mt.Mount:
    # Plain msgspec: these tests are about the parser, not about Go's decoding quirks.
    return msgspec.json.decode(body, type=mt.Mount)


# --- Binds (ParseMountRaw): untyped errors -------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("/a:/b:zz", "invalid mode: zz"),
        ("/a:/b:ro,rw", "invalid mode: ro,rw"),
        ("/a:/b:z,Z", "invalid mode: z,Z"),
        ("/a:/b:private,shared", "invalid mode: private,shared"),
        ("/a:/b:nocopy,nocopy", "invalid mode: nocopy,nocopy"),
        ("/a:/b:cached,delegated", "invalid mode: cached,delegated"),
        ("/a:rel", "invalid volume specification: '/a:rel': "
         + CFG.format("bind", "invalid mount path: 'rel' mount path must be absolute")),
        ("/etc/passwd/x:/rel:nocopy", "invalid volume specification: '/etc/passwd/x:/rel:nocopy': "
         + CFG.format("bind", "field VolumeOptions must not be specified")),
        ("a:/", "invalid volume specification: 'a:/': " + CFG.format("volume", "invalid specification: destination can't be '/'")),
        ("/h://", "invalid volume specification: '/h://': " + CFG.format("bind", "invalid specification: destination can't be '/'")),
        ("x", "invalid volume specification: 'x': " + CFG.format("volume", "invalid mount path: 'x' mount path must be absolute")),
        ("::", "invalid volume specification: '::'"),
        (":/x", "invalid volume specification: ':/x'"),
        ("/foo:rw", "invalid volume specification: '/foo:rw'"),
        ("/foo:ro,z", "invalid volume specification: '/foo:ro,z'"),
        ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
        ("a:/b:ro:x", "invalid volume specification: 'a:/b:ro:x'"),
    ],
)
def test_parse_mount_raw_errors(raw: str, message: str) -> None:
    with pytest.raises(errdefs.Untyped) as exc:
        mounts.parse_mount_raw(raw, "")
    assert str(exc.value) == message


def test_parse_mount_raw_bind_matches_dockerd_config() -> None:
    # The MountPoints entry dockerd 20.10 wrote to config.v2.json for this bind.
    mp = mounts.parse_mount_raw("/tmp//bvsrc/:/x/../y:ro,rshared", "")
    assert encode_stream(mp) == (
        b'{"Source":"/tmp/bvsrc","Destination":"/y","RW":false,"Name":"","Driver":"","Type":"bind",'
        b'"Relabel":"ro,rshared","Propagation":"rshared","Spec":{"Type":"bind","Source":"/tmp//bvsrc/",'
        b'"Target":"/x/../y","ReadOnly":true,"BindOptions":{"Propagation":"rshared"}},'
        b'"SkipMountpointCreation":false}\n'
    )


def test_parse_mount_raw_default_propagation_and_rw() -> None:
    mp = mounts.parse_mount_raw("/src:/dst", "")
    assert (mp.Type, mp.Source, mp.Destination, mp.RW, mp.Propagation) == ("bind", "/src", "/dst", True, "rprivate")
    assert mp.Mode is msgspec.UNSET  # no "Relabel" key on disk for an empty mode
    assert encode_stream(mp.Spec) == b'{"Type":"bind","Source":"/src","Target":"/dst"}\n'


def test_parse_mount_raw_named_volume_nocopy() -> None:
    mp = mounts.parse_mount_raw("bvn:/data:nocopy", "")
    assert (mp.Type, mp.Name, mp.Driver, mp.Mode, mp.RW) == ("volume", "bvn", "", "nocopy", True)
    assert mp.CopyData is False
    assert encode_stream(mp.Spec) == b'{"Type":"volume","Source":"bvn","Target":"/data","VolumeOptions":{"NoCopy":true}}\n'


def test_parse_mount_raw_anonymous_volume_gets_random_name() -> None:
    mp = mounts.parse_mount_raw("/data2", "")
    assert mp.Type == "volume" and len(mp.Name) == 64 and mp.CopyData is True
    assert encode_stream(mp.Spec) == b'{"Type":"volume","Target":"/data2"}\n'
    assert mounts.parse_mount_raw("/data2", "").Name != mp.Name


def test_parse_mount_raw_volume_driver_only_for_volumes() -> None:
    mp = mounts.parse_mount_raw("vol:/data:ro", "mydrv")
    assert mp.Driver == "mydrv" and mp.RW is False
    assert encode_stream(mp.Spec) == (
        b'{"Type":"volume","Source":"vol","Target":"/data","ReadOnly":true,'
        b'"VolumeOptions":{"DriverConfig":{"Name":"mydrv"}}}\n'
    )
    assert mounts.parse_mount_raw("/h:/data", "mydrv").Driver == ""


# --- Mounts (ParseMountSpec / ValidateMountConfig): InvalidParameter ------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"Type":"bind","Source":"/tmp"}', CFG.format("bind", "field Target must not be empty")),
        (b'{"Type":"bind","Source":"/tmp","Target":"/x/.."}', CFG.format("bind", "invalid specification: destination can't be '/'")),
        (b'{"Type":"volume","Target":"rel"}', CFG.format("volume", "invalid mount path: 'rel' mount path must be absolute")),
        (b'{"Type":"bind","Target":"/x"}', CFG.format("bind", "field Source must not be empty")),
        (b'{"Type":"bind","Source":"/tmp","Target":"/x","BindOptions":{"Propagation":"bogus"}}',
         CFG.format("bind", "invalid propagation mode: bogus")),
        (b'{"Type":"bind","Source":"/tmp","Target":"/x","VolumeOptions":{}}',
         CFG.format("bind", "field VolumeOptions must not be specified")),
        (b'{"Type":"bind","Source":"rel","Target":"/x"}', CFG.format("bind", "invalid mount path: 'rel' mount path must be absolute")),
        (b'{"Type":"bind","Source":"/nonexist-bv","Target":"/x"}', CFG.format("bind", "bind source path does not exist: /nonexist-bv")),
        (b'{"Type":"bind","Source":"/etc/passwd/x","Target":"/x"}', CFG.format("bind", "stat /etc/passwd/x: not a directory")),
        (b'{"Type":"volume","Target":"/x","BindOptions":{}}', CFG.format("volume", "field BindOptions must not be specified")),
        (b'{"Type":"volume","Target":"/x","ReadOnly":true}',
         CFG.format("volume", "must not set ReadOnly mode when using anonymous volumes")),
        (b'{"Type":"tmpfs","Target":"/x","BindOptions":{}}', CFG.format("tmpfs", "field BindOptions must not be specified")),
        (b'{"Type":"tmpfs","Target":"/x","Source":"y"}', CFG.format("tmpfs", "field Source must not be specified")),
        (b'{"Type":"","Target":"/x"}', CFG.format("", "mount type unknown")),
        (b'{"Type":"npipe","Target":"/x"}', CFG.format("npipe", "mount type unknown")),
    ],
)
def test_parse_mount_spec_errors(body: bytes, message: str) -> None:
    m = _mount(body)
    with pytest.raises(errdefs.InvalidParameter) as exc:
        mounts.parse_mount_spec(m)
    assert str(exc.value) == message
    with pytest.raises(errdefs.InvalidParameter) as exc2:
        mounts.validate_mount_config(m, True)
    assert str(exc2.value) == message


def test_validate_mount_config_without_bind_source_check() -> None:
    mounts.validate_mount_config(_mount(b'{"Type":"bind","Source":"/nonexist-bv","Target":"/x"}'), False)


def test_parse_mount_spec_shapes_match_dockerd() -> None:
    with tempfile.TemporaryDirectory(prefix="bv-mounts-") as d:
        mp = mounts.parse_mount_spec(_mount(
            b'{"Type":"bind","Source":"' + d.encode() + b'/","Target":"/m3","BindOptions":{},"ReadOnly":false,"Consistency":"cached"}'
        ))
        assert (mp.Source, mp.Destination, mp.Propagation, mp.RW) == (d, "/m3", "rprivate", True)
    mp = mounts.parse_mount_spec(_mount(b'{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576,"Mode":448}}'))
    assert encode_stream(mp) == (
        b'{"Source":"","Destination":"/t","RW":true,"Name":"","Driver":"","Type":"tmpfs",'
        b'"Spec":{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576,"Mode":448}},'
        b'"SkipMountpointCreation":false}\n'
    )
    mp = mounts.parse_mount_spec(_mount(
        b'{"Type":"volume","Source":"bvm2","Target":"/m1","VolumeOptions":{"NoCopy":true,"DriverConfig":{"Name":"local"}}}'
    ))
    assert (mp.Name, mp.Driver, mp.CopyData) == ("bvm2", "local", False)


def test_mount_point_round_trips_through_disk_json() -> None:
    mp = mounts.parse_mount_raw("bvn:/data:nocopy", "")
    mp.Source, mp.Driver = "/var/lib/berth/volumes/bvn/_data", "local"
    back = msgspec.json.decode(encode_stream(mp), type=mounts.MountPoint)
    assert back == mp
    assert back.CopyData is False  # json:"-": not persisted, as in dockerd


# --- VolumesFrom ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("c1", ("c1", "rw")), ("c1:ro", ("c1", "ro")), ("c1:", ("c1", "")), ("c1:ro,z", ("c1", "ro,z"))],
)
def test_parse_volumes_from(spec: str, expected: tuple[str, str]) -> None:
    assert mounts.parse_volumes_from(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "volumes-from specification cannot be an empty string"),
        ("c:zz", "invalid mode: zz"),
        ("c:ro,rshared", "invalid mode: ro,rshared"),
        ("c:nocopy", "invalid mode: nocopy"),
    ],
)
def test_parse_volumes_from_errors(spec: str, message: str) -> None:
    with pytest.raises(errdefs.InvalidParameter) as exc:
        mounts.parse_volumes_from(spec)
    assert str(exc.value) == message


# --- modes, tmpfs, daemon root --------------------------------------------------------


def test_mode_helpers() -> None:
    assert mounts.valid_mount_mode("") and mounts.valid_mount_mode("ro,Z,rslave,nocopy,delegated")
    assert not mounts.valid_mount_mode("ro,") and not mounts.valid_mount_mode("RO")
    assert mounts.read_write("") and mounts.read_write("rw,z") and not mounts.read_write("ro")
    assert not mounts.read_write("bogus")
    assert mounts.get_propagation("z,shared") == "shared" and mounts.get_propagation("z") == "rprivate"
    assert mounts.get_copy_mode("ro,nocopy") == (False, True) and mounts.get_copy_mode("ro") == (True, False)


def test_convert_tmpfs_options() -> None:
    assert mounts.convert_tmpfs_options(1 << 20, 0o700, True) == "ro,mode=700,size=1m"
    assert mounts.convert_tmpfs_options(3 << 30, 0, False) == "size=3g"
    assert mounts.convert_tmpfs_options(1000, 0o1777, False) == "mode=1777,size=1000"
    assert mounts.convert_tmpfs_options(0, 0, False) == ""


def test_validate_tmpfs_mount_destination() -> None:
    mounts.validate_tmpfs_mount_destination("/run")
    with pytest.raises(errdefs.Untyped, match="^invalid specification: destination can't be '/'$"):
        mounts.validate_tmpfs_mount_destination("/")
    with pytest.raises(errdefs.Untyped, match="^invalid mount path: 'run' mount path must be absolute$"):
        mounts.validate_tmpfs_mount_destination("run")


def test_validate_bind_daemon_root() -> None:
    root = "/tmp/refd/root"
    bind = lambda src, prop=None: mt.Mount(  # noqa: E731
        Type="bind", Source=src, Target="/x",
        BindOptions=msgspec.UNSET if prop is None else mt.BindOptions(Propagation=prop),
    )
    assert mounts.validate_bind_daemon_root(bind("/tmp/refd/root/x"), root) is True
    assert mounts.validate_bind_daemon_root(bind("/tmp"), root) is True  # contains the root
    assert mounts.validate_bind_daemon_root(bind("/home"), root) is False
    assert mounts.validate_bind_daemon_root(bind("/tmp/refd/root/x", "rslave"), root) is False
    assert mounts.validate_bind_daemon_root(bind("/tmp/refd/root/x", ""), root) is True
    assert mounts.validate_bind_daemon_root(mt.Mount(Type="volume", Source="v", Target="/x"), root) is False
    with pytest.raises(errdefs.InvalidParameter) as exc:
        mounts.validate_bind_daemon_root(bind("/tmp/refd/root/x", "private"), root)
    assert str(exc.value) == (
        'invalid mount config: must use either propagation mode "rslave" or "rshared" when mount source is '
        'within the daemon root, daemon root: "/tmp/refd/root", bind mount source: "/tmp/refd/root/x", '
        'propagation: "private"'
    )


def test_inspect_mount_point_shapes() -> None:
    mp = mounts.parse_mount_raw("bvn:/data:nocopy", "")
    mp.Source, mp.Driver = "/r/volumes/bvn/_data", "local"
    assert encode_response(mounts.inspect_mount_point(mp)) == (
        b'{"Type":"volume","Name":"bvn","Source":"/r/volumes/bvn/_data","Destination":"/data",'
        b'"Driver":"local","Mode":"nocopy","RW":true,"Propagation":""}\n'
    )
    t = mounts.parse_mount_spec(_mount(b'{"Type":"tmpfs","Target":"/t"}'))
    assert encode_response(mounts.inspect_mount_point(t)) == (
        b'{"Type":"tmpfs","Source":"","Destination":"/t","Mode":"","RW":true,"Propagation":""}\n'
    )


def test_go_quote() -> None:
    assert mounts.go_quote('a\tb"\\') == '"a\\tb\\"\\\\"'
    assert mounts.go_quote("\x01é") == '"\\x01é"'
    assert os.sep == "/"
