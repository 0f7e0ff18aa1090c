"""What the builder needs from the daemon (moby/builder/builder.go Backend): the
image and layer stores, the I/O pool, and the container steps a RUN takes."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..image.service import ImageService
from ..layer import LayerStore

T = TypeVar("T")


class BuildBackend(Protocol):
    images: ImageService  # the image store the build reads its bases from and commits to
    layers: LayerStore  # the layer store a COPY/ADD writes its rw layer in

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T: ...
    async def container_create(self, params: Any) -> Any: ...
    async def container_rm(self, name: str, force: bool, remove_volume: bool, remove_link: bool) -> None: ...
    async def container_start(self, name: str, checkpoint: str = "", checkpoint_dir: str = "") -> None: ...
    async def container_wait(self, name: str, condition: str) -> Any: ...
    async def container_logs(self, name: str, config: Any) -> Any: ...
