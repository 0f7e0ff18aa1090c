"""GET /system/df (moby/daemon/disk_usage.go SystemDiskUsage)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec import Struct

from ..types.filters import Args
from .list import containers

if TYPE_CHECKING:
    from .core import Daemon


class DiskUsage(Struct):
    LayersSize: int
    Images: list[Any]
    Containers: list[Any]
    Volumes: list[Any]
    BuildCache: Any
    BuilderSize: int


async def system_disk_usage(d: Daemon, anonymous_label: bool = False) -> DiskUsage:
    """Every container (with sizes), top-level image, layer total and volume (with usage).

    `anonymous_label`: show anonymous volumes labelled `com.docker.volume.anonymous`
    (dockerd 23+; the API layer asks for it from API 1.42, volume/service.py).
    """
    ctrs = await containers(d, True, 0, True, Args())
    images = await d.run_blocking(lambda: d.images.list_images(all=False, shared_size=True))
    for img in images:
        img["Containers"] = len(d.containers_using_image(img["Id"]))
    layers_size = await d.run_blocking(lambda: sum(layer.size for layer in d.layers.layers()))
    vols = await d.run_blocking(lambda: d.volumes.local_volumes_size(anonymous_label))
    return DiskUsage(LayersSize=layers_size, Images=images, Containers=ctrs, Volumes=vols, BuildCache=None,
                     BuilderSize=0)
