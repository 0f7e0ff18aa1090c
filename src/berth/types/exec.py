"""Exec API objects (moby api/types/configs.go ExecConfig, client.go ExecStartCheck,
api/types/backend/backend.go ExecInspect, ExecProcessConfig), in Go declaration order."""
from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Struct, UnsetType

from .gojson import GoType


class ExecConfig(Struct):
    """types.ExecConfig: the body of POST /containers/{id}/exec."""

    User: str = ""
    Privileged: bool = False
    Tty: bool = False
    # 1.42+ only (api/versions.py exec_console_size drops it below)
    ConsoleSize: Annotated[list[int], GoType("[2]uint", "uint", 2)] | None | UnsetType = UNSET
    AttachStdin: bool = False
    AttachStderr: bool = False
    AttachStdout: bool = False
    Detach: bool = False
    DetachKeys: str = ""
    Env: list[str] | None = None
    WorkingDir: str = ""
    Cmd: list[str] | None = None


class ExecStartCheck(Struct):
    """types.ExecStartCheck: the body of POST /exec/{id}/start."""

    Detach: bool = False
    Tty: bool = False
    ConsoleSize: Annotated[list[int], GoType("[2]uint", "uint", 2)] | None | UnsetType = UNSET


class ExecProcessConfig(Struct):
    """backend.ExecProcessConfig; `user` is omitempty (UNSET when empty)."""

    tty: bool
    entrypoint: str
    arguments: list[str]
    privileged: bool
    user: str | UnsetType = UNSET


class ExecInspect(Struct):
    """backend.ExecInspect, as GET /exec/{id}/json answers (DetachKeys are []byte: base64)."""

    ID: str
    Running: bool
    ExitCode: int | None
    ProcessConfig: ExecProcessConfig
    OpenStdin: bool
    OpenStderr: bool
    OpenStdout: bool
    CanRemove: bool
    ContainerID: str
    DetachKeys: bytes
    Pid: int
