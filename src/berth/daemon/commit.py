"""`docker commit` (moby/daemon/commit.go CreateImageFromContainer).

The container is paused for the copy when asked (the API default from 1.13), the
new config is the given one (or the container's) with the Dockerfile-style
`changes` applied (builder/dockerfile BuildFromConfig) and the container's config
merged under it (commit.go merge); the image itself is image/commit.py's.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .. import errdefs
from ..image.commit import CommitConfig
from ..image.image import normalize_config
from ..image.importer import build_from_config
from ..trace import traced
from ..types import gojson
from ..types.backend import CreateImageConfig
from ..types.container import Config
from .merge import merge

if TYPE_CHECKING:
    from .core import Daemon


def _doc(cfg: Config) -> dict[str, Any]:
    """The config as json.Marshal writes a container.Config (Go field order, omitempty)."""
    doc = normalize_config(json.loads(gojson.encode_response(cfg)))
    assert doc is not None
    return doc


def _from_doc(doc: dict[str, Any]) -> Config:
    return gojson.decode(json.dumps(doc).encode(), Config, go_type_name="container.Config")


@traced("CreateImageFromContainer", action="commit")
async def create_image_from_container(d: Daemon, name: str, c: CreateImageConfig) -> str:
    """CreateImageFromContainer: returns the new image ID."""
    ctr = d.get_container(name)
    if ctr.State.Dead:
        raise errdefs.Conflict(f"You cannot commit container {ctr.ID} which is Dead")
    if ctr.State.RemovalInProgress:
        raise errdefs.Conflict(f"You cannot commit container {ctr.ID} which is being removed")

    paused = False
    if c.pause and not ctr.State.Paused:
        # dockerd ignores both errors: a stopped container is committed as it is.
        try:
            await d.container_pause(ctr.ID)
            paused = True
        except errdefs.DockerError:
            pass
    try:
        base = _doc(c.config if c.config is not None else ctr.Config)
        new_doc = build_from_config(c.changes, base) if c.changes else base
        new_config = _from_doc(new_doc)
        merge(new_config, ctr.Config)
        rw = d.layers.get_rw_layer(ctr.ID)
        image_id = await d.run_blocking(d.images.commit, CommitConfig(
            author=c.author,
            comment=c.comment,
            config=_doc(new_config),
            container_config=_doc(ctr.Config),
            container_id=ctr.ID,
            parent_image_id=ctr.Image,
            rw_layer=rw,
        ))
    finally:
        if paused:
            try:
                await d.container_unpause(ctr.ID)
            except errdefs.DockerError:
                pass

    image_ref = ""
    if c.repo:
        image_ref = await d.run_blocking(d.images.tag, image_id, c.repo, c.tag)
    d.log_container_event(ctr, "commit", {"comment": c.comment, "imageID": image_id, "imageRef": image_ref})
    return image_id
