"""The Linux mount parser and the container mount point.

Follows moby v20.10.24 volume/mounts/linux_parser.go (`ParseMountRaw`,
`ParseMountSpec`, `ValidateMountConfig`, `ParseVolumesFrom`, `ConvertTmpfsOptions`,
`ValidateTmpfsMountDestination`), volume/mounts/validate.go (the error texts),
volume/mounts/volume_copy.go (`nocopy`), volume/mounts/mounts.go (`MountPoint`),
daemon/volumes_linux.go (`validateBindDaemonRoot`) and daemon/inspect.go
(`addMountPoints`).

Error classes follow what dockerd answers, not where the Go parser is: `Binds`
errors are untyped in dockerd (`registerMountPoints` returns them as they are, so a
bad bind is a 500), while `Mounts` and `VolumesFrom` errors reach the client as 400.
"""
from __future__ import annotations

import os
import posixpath
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from .. import errdefs
from ..pkg.stringid import generate_random_id
from ..types.container import GoStruct
from ..types.mount import (
    PROPAGATION_RPRIVATE,
    PROPAGATION_RSHARED,
    PROPAGATION_RSLAVE,
    PROPAGATIONS,
    TYPE_BIND,
    TYPE_TMPFS,
    TYPE_VOLUME,
    BindOptions,
    Driver,
    Mount,
    VolumeOptions,
    flag,
    is_set,
    text,
)
from ..types.mount import MountPoint as APIMountPoint

DEFAULT_PROPAGATION_MODE = PROPAGATION_RPRIVATE
# The Linux parser's DefaultCopyMode: volumes are populated from the image unless `nocopy`.
DEFAULT_COPY_MODE = True

_RW_MODES = frozenset({"rw", "ro"})
_LABEL_MODES = frozenset({"z", "Z"})
_PROPAGATION_MODES = frozenset(PROPAGATIONS)
_CONSISTENCY_MODES = frozenset({"consistent", "cached", "delegated"})
# volume_copy.go copyModes: the only copy mode is "nocopy", meaning copy=false.
_COPY_MODES = {"nocopy": False}

ERR_VOLUME_TARGET_IS_ROOT = "invalid specification: destination can't be '/'"


class MountRuntime:
    """The Go fields tagged `json:"-"`: plain instance attributes (a non-Struct base, so
    never encoded), with class-level defaults until a caller sets them."""

    Volume: Any = None  # the attached volume.Volume, when the mount is a volume
    CopyData: bool = False  # copy the image's content into a fresh volume at the first mount
    active: int = 0  # how many setups (a start, a docker cp) hold the volume mounted under ID


class MountPoint(GoStruct, MountRuntime, dict=True):
    """mounts.MountPoint: a container's mount, as kept in `config.v2.json` `MountPoints`.

    Go's field order and JSON names; `Mode` goes on the wire as `Relabel` (its old
    name). The Go fields tagged `json:"-"` (`Volume`, `CopyData`) are plain instance
    attributes here, outside the encoded fields, so they are lost across a restart
    exactly as in dockerd (and across `copy.copy`, which a caller must not rely on).
    """

    _go_name = "MountPoint"
    Source: str = ""
    Destination: str = ""
    RW: bool = False
    Name: str = ""
    Driver: str = ""
    Type: str | UnsetType = UNSET
    Mode: str | UnsetType = msgspec.field(default=UNSET, name="Relabel")
    Propagation: str | UnsetType = UNSET
    ID: str | UnsetType = UNSET
    Spec: Mount = msgspec.field(default_factory=Mount)
    SkipMountpointCreation: bool = False

    def path(self) -> str:
        """MountPoint.Path: the volume's path when a volume is attached, else Source."""
        if self.Volume is not None:
            return str(self.Volume.path())
        return self.Source


def go_quote(value: str) -> str:
    """Go's `%q` (strconv.Quote) for the strings that appear in dockerd's messages."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate is invalid UTF-8 in Go
            out.append("\\ufffd")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


# --- mode strings (linux_parser.go) -------------------------------------------------


def valid_mount_mode(mode: str) -> bool:
    """linuxValidMountMode: a comma list with at most one option of each kind."""
    if mode == "":
        return True
    counts = [0, 0, 0, 0, 0]
    for o in mode.split(","):
        if o in _RW_MODES:
            counts[0] += 1
        elif o in _LABEL_MODES:
            counts[1] += 1
        elif o in _PROPAGATION_MODES:
            counts[2] += 1
        elif o in _COPY_MODES:
            counts[3] += 1
        elif o in _CONSISTENCY_MODES:
            counts[4] += 1
        else:
            return False
    return max(counts) <= 1


def read_write(mode: str) -> bool:
    """linuxParser.ReadWrite: false for an invalid mode or one containing `ro`."""
    if not valid_mount_mode(mode):
        return False
    return "ro" not in mode.split(",")


def has_propagation(mode: str) -> bool:
    """linuxHasPropagation."""
    return any(o in _PROPAGATION_MODES for o in mode.split(","))


def get_propagation(mode: str) -> str:
    """linuxGetPropagation: the first propagation option, else `rprivate`."""
    for o in mode.split(","):
        if o in _PROPAGATION_MODES:
            return o
    return DEFAULT_PROPAGATION_MODE


def get_copy_mode(mode: str, default: bool = DEFAULT_COPY_MODE) -> tuple[bool, bool]:
    """getCopyMode: (copy data?, was a copy mode given?)."""
    for o in mode.split(","):
        if o in _COPY_MODES:
            return _COPY_MODES[o], True
    return default, False


def _err_invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def _err_invalid_mode(mode: str) -> str:
    return f"invalid mode: {mode}"


# --- validation (linux_parser.go validateMountConfigImpl, validate.go) ---------------


class _MountConfigError(Exception):
    """validate.go errMountConfig: `invalid mount config for type %q: %v`."""

    def __init__(self, mnt: Mount, cause: str) -> None:
        super().__init__(f"invalid mount config for type {go_quote(text(mnt.Type))}: {cause}")


def _validate_not_root(p: str) -> str | None:
    if posixpath.normpath(p.replace("\\", "/")) in ("/", "//"):
        return ERR_VOLUME_TARGET_IS_ROOT
    return None


def _validate_absolute(p: str) -> str | None:
    p = p.replace("\\", "/")
    if p.startswith("/"):
        return None
    return f"invalid mount path: '{p}' mount path must be absolute"


def _file_info(path: str) -> bool:
    """defaultFileInfoProvider.fileInfo: exists?, or the stat error as Go prints it.

    Only ENOENT counts as "does not exist" (os.IsNotExist); ENOTDIR and EACCES are
    reported, e.g. `stat /etc/passwd/x: not a directory`.
    """
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise _StatError(f"stat {path}: {go_errno_text(e)}") from None
    return True


class _StatError(Exception):
    pass


def go_errno_text(err: OSError) -> str:
    """The text Go's syscall.Errno gives for an errno (lower-case, as in zerrors_linux.go)."""
    msg = os.strerror(err.errno) if err.errno else str(err)
    return msg[:1].lower() + msg[1:]


def _validate_mount_config_impl(mnt: Mount, validate_bind_source_exists: bool) -> None:
    target = text(mnt.Target)
    if not target:
        raise _MountConfigError(mnt, "field Target must not be empty")
    err = _validate_not_root(target) or _validate_absolute(target)
    if err:
        raise _MountConfigError(mnt, err)

    typ = text(mnt.Type)
    source = text(mnt.Source)
    if typ == TYPE_BIND:
        if not source:
            raise _MountConfigError(mnt, "field Source must not be empty")
        # Don't error out just because the propagation mode is not supported on the platform.
        if is_set(mnt.BindOptions):
            prop = text(mnt.BindOptions.Propagation)
            if prop and prop not in _PROPAGATION_MODES:
                raise _MountConfigError(mnt, f"invalid propagation mode: {prop}")
        if is_set(mnt.VolumeOptions):
            raise _MountConfigError(mnt, "field VolumeOptions must not be specified")
        err = _validate_absolute(source)
        if err:
            raise _MountConfigError(mnt, err)
        if validate_bind_source_exists:
            try:
                exists = _file_info(source)
            except _StatError as e:
                raise _MountConfigError(mnt, str(e)) from None
            if not exists:
                raise _MountConfigError(mnt, f"bind source path does not exist: {source}")
    elif typ == TYPE_VOLUME:
        if is_set(mnt.BindOptions):
            raise _MountConfigError(mnt, "field BindOptions must not be specified")
        if not source and flag(mnt.ReadOnly):
            raise _MountConfigError(mnt, "must not set ReadOnly mode when using anonymous volumes")
    elif typ == TYPE_TMPFS:
        if is_set(mnt.BindOptions):
            raise _MountConfigError(mnt, "field BindOptions must not be specified")
        if source:
            raise _MountConfigError(mnt, "field Source must not be specified")
        # ConvertTmpfsOptions cannot fail in 20.10 (TmpfsOptions has no free-form Options).
    else:
        raise _MountConfigError(mnt, "mount type unknown")


def validate_mount_config(mnt: Mount, check_bind_source: bool = True) -> None:
    """linuxParser.ValidateMountConfig, as `validateHostConfig` uses it: InvalidParameter.

    dockerd's ValidateMountConfig always checks that a bind source exists;
    `check_bind_source=False` is the variant ParseMountRaw uses.
    """
    try:
        _validate_mount_config_impl(mnt, check_bind_source)
    except _MountConfigError as e:
        raise errdefs.InvalidParameter(str(e)) from None


def _parse_mount_spec(cfg: Mount, validate_bind_source_exists: bool) -> MountPoint:
    """linuxParser.parseMountSpec; raises _MountConfigError."""
    _validate_mount_config_impl(cfg, validate_bind_source_exists)
    typ = text(cfg.Type)
    mp = MountPoint(
        RW=not flag(cfg.ReadOnly),
        Destination=posixpath.normpath(text(cfg.Target)),
        Type=typ,
        Spec=cfg,
    )
    # posixpath keeps a leading "//" (POSIX allows it); Go's path.Clean does not.
    if mp.Destination.startswith("//"):
        mp.Destination = "/" + mp.Destination.lstrip("/")
    if typ == TYPE_VOLUME:
        # 20.10 names an anonymous volume here, in the parser (later versions moved it).
        mp.Name = text(cfg.Source) or generate_random_id()
        mp.CopyData = DEFAULT_COPY_MODE
        vo = cfg.VolumeOptions
        if is_set(vo):
            assert isinstance(vo, VolumeOptions)
            if is_set(vo.DriverConfig):
                assert isinstance(vo.DriverConfig, Driver)
                mp.Driver = text(vo.DriverConfig.Name)
            if flag(vo.NoCopy):
                mp.CopyData = False
    elif typ == TYPE_BIND:
        src = posixpath.normpath(text(cfg.Source))
        mp.Source = "/" + src.lstrip("/") if src.startswith("//") else src
        bo = cfg.BindOptions
        if is_set(bo) and text(bo.Propagation):
            mp.Propagation = text(bo.Propagation)
        else:
            mp.Propagation = DEFAULT_PROPAGATION_MODE
    return mp


def parse_mount_spec(cfg: Mount) -> MountPoint:
    """linuxParser.ParseMountSpec for a `HostConfig.Mounts[]` entry (bind source must exist).

    dockerd's registerMountPoints wraps its error as InvalidParameter.
    """
    try:
        return _parse_mount_spec(cfg, True)
    except _MountConfigError as e:
        raise errdefs.InvalidParameter(str(e)) from None


def parse_mount_raw(raw: str, volume_driver: str = "") -> MountPoint:
    """linuxParser.ParseMountRaw for a `HostConfig.Binds[]` entry: `[src:]dst[:mode]`.

    Errors are untyped (a 500), as dockerd returns them unwrapped. The bind source is
    not required to exist (it is created at start unless it is a Mounts entry).
    """
    arr = raw.split(":", 3)
    if arr[0] == "":
        raise errdefs.Untyped(_err_invalid_spec(raw))
    spec = Mount()
    mode = ""
    if len(arr) == 1:
        spec.Target = arr[0]  # just a destination: an anonymous volume
    elif len(arr) == 2:
        if valid_mount_mode(arr[1]):
            # Destination + mode is not a valid volume (e.g. /foo:rw).
            raise errdefs.Untyped(_err_invalid_spec(raw))
        spec.Source, spec.Target = arr[0], arr[1]
    elif len(arr) == 3:
        spec.Source, spec.Target, mode = arr
    else:
        raise errdefs.Untyped(_err_invalid_spec(raw))

    if not valid_mount_mode(mode):
        raise errdefs.Untyped(_err_invalid_mode(mode))

    source = text(spec.Source)
    spec.Type = TYPE_BIND if source.startswith("/") else TYPE_VOLUME
    spec.ReadOnly = not read_write(mode)
    # A volume driver given for the container applies to named/anonymous volumes only.
    if volume_driver and spec.Type == TYPE_VOLUME:
        spec.VolumeOptions = VolumeOptions(DriverConfig=Driver(Name=volume_driver))
    copy_data, is_set_ = get_copy_mode(mode)
    if is_set_:
        if not is_set(spec.VolumeOptions):
            spec.VolumeOptions = VolumeOptions()
        spec.VolumeOptions.NoCopy = not copy_data
    if has_propagation(mode):
        spec.BindOptions = BindOptions(Propagation=get_propagation(mode))

    # Go keeps the decoded zero values (ReadOnly=false etc.) in the Spec, but writes
    # them omitempty; normalising keeps the in-memory Spec equal to a reloaded one.
    spec.normalize_omitempty()
    try:
        mp = _parse_mount_spec(spec, False)
    except _MountConfigError as e:
        raise errdefs.Untyped(f"{_err_invalid_spec(raw)}: {e}") from None
    mp.Mode = mode or UNSET  # omitempty: Go writes no "Relabel" for an empty mode
    return mp


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """linuxParser.ParseVolumesFrom: `<container>[:mode]` → (container, mode).

    No `:` gives mode `rw`; a trailing `:` gives mode "" (20.10's SplitN behaviour).
    Errors reach the client as 400.
    """
    if not spec:
        raise errdefs.InvalidParameter("volumes-from specification cannot be an empty string")
    parts = spec.split(":", 1)
    if len(parts) == 1:
        return parts[0], "rw"
    cid, mode = parts
    if not valid_mount_mode(mode):
        raise errdefs.InvalidParameter(_err_invalid_mode(mode))
    # Propagation is inherited from the source container's mounts, and volumes-from
    # never copies data, so neither may be given here.
    if has_propagation(mode) or get_copy_mode(mode)[1]:
        raise errdefs.InvalidParameter(_err_invalid_mode(mode))
    return cid, mode


def validate_tmpfs_mount_destination(dest: str) -> None:
    """linuxParser.ValidateTmpfsMountDestination (untyped errors, as in dockerd)."""
    err = _validate_not_root(dest) or _validate_absolute(dest)
    if err:
        raise errdefs.Untyped(err)


def convert_tmpfs_options(size_bytes: int, mode: int, read_only: bool) -> str:
    """linuxParser.ConvertTmpfsOptions: `ro`, `mode=%o`, `size=N[gmk]` joined by commas."""
    raw: list[str] = []
    if read_only:
        raw.append("ro")
    if mode:
        raw.append(f"mode={mode:o}")
    if size_bytes:
        size, suffix = size_bytes, ""
        for sfx, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                size, suffix = size // divisor, sfx
                break
        raw.append(f"size={size}{suffix}")
    return ",".join(raw)


def validate_bind_daemon_root(m: Mount, daemon_root: str) -> bool:
    """daemon/volumes_linux.go validateBindDaemonRoot: does the bind need `rslave`?

    A bind whose source is inside the daemon root (or contains it) must not hold
    private references to mounts under the root, which would stop the daemon from
    unmounting them. Without an explicit propagation the answer is True (the caller
    sets rslave); an explicit rslave/rshared is kept; any other is a 400.
    Plain string prefixes, as in dockerd (so `/var/lib/docker2` counts as inside).
    """
    if text(m.Type) != TYPE_BIND:
        return False
    source = text(m.Source)
    if not source.startswith(daemon_root) and not daemon_root.startswith(source):
        return False
    if not is_set(m.BindOptions):
        return True
    prop = text(m.BindOptions.Propagation)
    if prop in (PROPAGATION_RSLAVE, PROPAGATION_RSHARED, ""):
        return prop == ""
    raise errdefs.InvalidParameter(
        'invalid mount config: must use either propagation mode "rslave" or "rshared" when mount '
        f"source is within the daemon root, daemon root: {go_quote(daemon_root)}, bind mount source: "
        f"{go_quote(source)}, propagation: {go_quote(prop)}"
    )


def inspect_mount_point(mp: MountPoint) -> APIMountPoint:
    """daemon/inspect.go addMountPoints: one `Mounts[]` entry of container inspect."""
    return APIMountPoint(
        Type=text(mp.Type) or UNSET,
        Name=mp.Name or UNSET,
        Source=mp.path(),
        Destination=mp.Destination,
        Driver=mp.Driver or UNSET,
        Mode=text(mp.Mode),
        RW=mp.RW,
        Propagation=text(mp.Propagation),
    )
