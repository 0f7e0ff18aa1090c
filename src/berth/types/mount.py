"""Mount API types (moby/api/types/mount/mount.go at v20.10.24).

`Mount` is both the `HostConfig.Mounts[]` entry of a create request and the `Spec`
kept in each mount point of `config.v2.json`. Every field of every struct here is
`omitempty` in Go; following the convention of berth.types.container, omitempty
fields default to `UNSET` and `normalize_omitempty` turns empty values into UNSET
before encoding. The option structs are pointers in Go (`*BindOptions`): a nil one is
dropped, an empty one is written as `{}`, and validation tests them for nil only
(`"BindOptions": {}` on a volume mount is still "field BindOptions must not be
specified"), so code tests them with `is_set`, never with truthiness of their contents.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from msgspec import UNSET, UnsetType

from .gostruct import GoStruct

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing's own from Python 3.13

_T = TypeVar("_T")

# mount.Type values.
TYPE_BIND = "bind"
TYPE_VOLUME = "volume"
TYPE_TMPFS = "tmpfs"
TYPE_NAMED_PIPE = "npipe"  # Windows only; the Linux parser answers "mount type unknown"

# mount.Propagation values.
PROPAGATION_RPRIVATE = "rprivate"
PROPAGATION_PRIVATE = "private"
PROPAGATION_RSHARED = "rshared"
PROPAGATION_SHARED = "shared"
PROPAGATION_RSLAVE = "rslave"
PROPAGATION_SLAVE = "slave"
PROPAGATIONS = (
    PROPAGATION_RPRIVATE,
    PROPAGATION_PRIVATE,
    PROPAGATION_RSHARED,
    PROPAGATION_SHARED,
    PROPAGATION_RSLAVE,
    PROPAGATION_SLAVE,
)

# mount.Consistency values (only meaningful on Docker for Mac; accepted everywhere).
CONSISTENCY_FULL = "consistent"
CONSISTENCY_CACHED = "cached"
CONSISTENCY_DELEGATED = "delegated"
CONSISTENCY_DEFAULT = "default"


def is_set(value: _T | UnsetType | None) -> TypeIs[_T]:
    """Whether a Go pointer field is non-nil (neither UNSET nor None)."""
    return value is not UNSET and value is not None


class BindOptions(GoStruct):
    """mount.BindOptions."""

    _go_name = "mount.BindOptions"
    Propagation: str | UnsetType = UNSET
    NonRecursive: bool | UnsetType = UNSET


class Driver(GoStruct):
    """mount.Driver: the volume driver and its options for a volume mount."""

    _go_name = "mount.Driver"
    Name: str | UnsetType = UNSET
    Options: dict[str, str] | None | UnsetType = UNSET


class VolumeOptions(GoStruct):
    """mount.VolumeOptions."""

    _go_name = "mount.VolumeOptions"
    _omitempty_ptr = frozenset({"DriverConfig"})
    NoCopy: bool | UnsetType = UNSET
    Labels: dict[str, str] | None | UnsetType = UNSET
    DriverConfig: Driver | None | UnsetType = UNSET


class TmpfsOptions(GoStruct):
    """mount.TmpfsOptions (20.10 has no `Options` field yet)."""

    _go_name = "mount.TmpfsOptions"
    SizeBytes: int | UnsetType = UNSET
    Mode: int | UnsetType = UNSET  # os.FileMode: permission bits as a plain number


class Mount(GoStruct):
    """mount.Mount: one `HostConfig.Mounts[]` entry."""

    _go_name = "mount.Mount"
    _omitempty_ptr = frozenset({"BindOptions", "VolumeOptions", "TmpfsOptions"})
    Type: str | UnsetType = UNSET
    Source: str | UnsetType = UNSET
    Target: str | UnsetType = UNSET
    ReadOnly: bool | UnsetType = UNSET
    Consistency: str | UnsetType = UNSET
    BindOptions: BindOptions | None | UnsetType = UNSET
    VolumeOptions: VolumeOptions | None | UnsetType = UNSET
    TmpfsOptions: TmpfsOptions | None | UnsetType = UNSET


def text(value: str | UnsetType) -> str:
    """A Go string field's value: UNSET reads as the zero value ""."""
    return "" if value is UNSET else value


def flag(value: bool | UnsetType) -> bool:
    """A Go bool field's value: UNSET reads as false."""
    return value is True


class MountPoint(GoStruct):
    """types.MountPoint (moby/api/types/types.go): a `Mounts[]` entry of container inspect."""

    _go_name = "MountPoint"
    Type: str | UnsetType = UNSET
    Name: str | UnsetType = UNSET
    Source: str = ""
    Destination: str = ""
    Driver: str | UnsetType = UNSET
    Mode: str = ""
    RW: bool = False
    Propagation: str = ""
