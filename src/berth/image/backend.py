"""What the image operations (commit, delete, import, prune, load/save) need of the
ImageService, which satisfies it: a protocol below them, so they do not import the
service that calls them."""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..layer import LayerStore
from ..pkg.platforms import Platform
from . import reference as refmod
from .image import Image
from .store import ImageStore, ReferenceStore


class ImageBackend(Protocol):
    @property
    def layers(self) -> LayerStore: ...  # the layer store under the images
    @property
    def tmp_dir(self) -> str: ...  # where uploads and loads are spooled
    @property
    def store(self) -> ImageStore: ...  # image configs by ID
    @property
    def refs(self) -> ReferenceStore: ...  # repositories.json
    @property
    def _lock(self) -> AbstractContextManager[Any]: ...  # held across a multi-step change

    def create_image(self, raw: bytes) -> Image: ...
    def set_parent(self, image_id: str, parent_id: str) -> None: ...
    def children(self, image_id: str) -> list[str]: ...
    def _remove_image(self, image_id: str) -> list[str]: ...
    def log_image_event(self, image_id: str, ref_name: str, action: str) -> None: ...
    def image_by_id(self, image_id: str) -> Image | None: ...
    def search(self, term: str) -> str | None: ...
    def get_image(self, ref_or_id: str, platform: Platform | None = None) -> Image: ...
    def tag_image_with_reference(self, image_id: str, new: refmod.Reference) -> None: ...
    def delete(self, ref: str, force: bool, prune: bool, is_used_by: Any = None) -> list[dict[str, str]]: ...
    def all_images(self) -> list[Image]: ...
