"""What the routers need from the daemon, one Protocol per role
(moby/api/server/router/container/backend.go, system/backend.go)."""
from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from ..types.container import ContainerCreateCreatedBody
from ..types.filters import Args


class ContainerBackend(Protocol):
    cgroup_v2: bool

    async def container_create(self, params: Any) -> ContainerCreateCreatedBody: ...
    async def list_containers(self, all_: bool, limit: int, size: bool, filters: Args) -> list[Any]: ...
    async def container_inspect(self, name: str, size: bool) -> Any: ...
    async def container_inspect_legacy(self, name: str, pre120: bool) -> bytes: ...
    async def container_rm(self, name: str, force: bool, remove_volume: bool, remove_link: bool) -> None: ...
    async def container_rename(self, old: str, new: str) -> None: ...
    async def containers_prune(self, filters: Args) -> tuple[list[str], int]: ...


class SystemBackend(Protocol):
    async def system_info(self) -> Any: ...
    async def system_version(self) -> Any: ...
    async def system_disk_usage(self, anonymous_label: bool = False) -> Any: ...


class DistributionBackend(Protocol):
    """Pull, push, login and search (moby/api/server/router/image/backend.go, system/backend.go)."""

    async def pull_image(self, image: str, tag: str, platform: str, auth: Any, meta_headers: dict[str, str],
                         upstream_ua: str, write: Any) -> None: ...
    async def push_image(self, image: str, tag: str, auth: Any, meta_headers: dict[str, str], upstream_ua: str,
                         write: Any) -> None: ...
    async def auth(self, auth: Any, upstream_ua: str) -> tuple[str, str]: ...
    async def search_registry(self, term: str, limit: int | None, filters: Any, auth: Any,
                              meta_headers: dict[str, str], upstream_ua: str) -> list[dict[str, Any]]: ...


class Backend(ContainerBackend, SystemBackend, DistributionBackend, Protocol):
    pass


BACKEND = web.AppKey("backend", Backend)
