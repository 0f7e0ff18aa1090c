"""What the API hands the daemon (moby api/types/backend, types.ContainerCreateConfig):
request structs below both, so the routers and the builder name them without importing
the daemon."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import msgspec

from ..pkg.platforms import Platform
from .container import Config, HostConfig, NetworkingConfig


class ContainerCreateConfig(msgspec.Struct):
    """types.ContainerCreateConfig: what the router hands the daemon."""

    name: str
    config: Config | None
    host_config: HostConfig | None
    networking_config: NetworkingConfig | None
    adjust_cpu_shares: bool = False
    platform: Platform | None = None


class ClientStreams(Protocol):
    """The client's side of an attach (a hijacked connection or a websocket)."""

    gone: asyncio.Event

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


class ContainerAttachConfig(NamedTuple):
    """backend.ContainerAttachConfig. get_streams(multiplexed) writes the response head."""

    get_streams: Callable[[bool], Awaitable[ClientStreams]]
    use_stdin: bool
    use_stdout: bool
    use_stderr: bool
    logs: bool
    stream: bool
    detach_keys: str
    mux_streams: bool


@dataclass
class CreateImageConfig:
    """backend.CreateImageConfig."""

    repo: str = ""
    tag: str = ""
    pause: bool = True
    author: str = ""
    comment: str = ""
    config: Config | None = None
    changes: list[str] = field(default_factory=list)


class LogsConfig(NamedTuple):
    """types.ContainerLogsOptions, as the router decodes them."""

    stdout: bool
    stderr: bool
    since: str
    until: str
    timestamps: bool
    follow: bool
    tail: str
    details: bool
