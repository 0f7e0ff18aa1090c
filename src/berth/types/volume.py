"""Volume API types (moby v20.10.24 api/types/volume.go, api/types/volume/*.go,
api/types/types.go VolumesPruneReport).

Go declaration order and wire names. `Labels` and `Options` are not omitempty: a
volume created without them shows `null`, one created with `{}` shows `{}`, so None
and {} are kept apart from the request to the disk and back.
"""
from __future__ import annotations

from typing import Any

from msgspec import UNSET, UnsetType

from .container import GoStruct


class VolumeUsageData(GoStruct):
    """types.VolumeUsageData: only in `GET /system/df`."""

    _go_name = "VolumeUsageData"
    RefCount: int = 0
    Size: int = 0


class Volume(GoStruct):
    """types.Volume."""

    _go_name = "Volume"
    _omitempty_ptr = frozenset({"UsageData"})
    CreatedAt: str | UnsetType = UNSET
    Driver: str = ""
    Labels: dict[str, str] | None = None
    Mountpoint: str = ""
    Name: str = ""
    Options: dict[str, str] | None = None
    Scope: str = ""
    Status: dict[str, Any] | None | UnsetType = UNSET
    UsageData: VolumeUsageData | None | UnsetType = UNSET


class VolumeCreateBody(GoStruct):
    """volume.VolumeCreateBody: the body of `POST /volumes/create`."""

    _go_name = "VolumeCreateBody"
    Driver: str = ""
    DriverOpts: dict[str, str] | None = None
    Labels: dict[str, str] | None = None
    Name: str = ""


class VolumeListOKBody(GoStruct):
    """volume.VolumeListOKBody: `Volumes` is `[]` when empty, `Warnings` null."""

    _go_name = "VolumeListOKBody"
    Volumes: list[Volume] | None = None
    Warnings: list[str] | None = None


class VolumesPruneReport(GoStruct):
    """types.VolumesPruneReport: `VolumesDeleted` is `[]` when nothing was removed."""

    _go_name = "VolumesPruneReport"
    VolumesDeleted: list[str] | None = None
    SpaceReclaimed: int = 0
