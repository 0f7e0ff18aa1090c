"""Image store: reference grammar, image configs, tags, load/save/import, history, delete.

Never imports berth.container or berth.daemon.
"""
from .image import Image
from .service import ImageService

__all__ = ["Image", "ImageService"]
