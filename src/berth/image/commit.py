"""Image from a container's RW layer (moby/daemon/images/image_commit.go CommitImage,
moby/image/image.go NewChildImage and Image.MarshalJSON).

The container side (which config, pausing, the event) is daemon/commit.py; this
module only turns a layer and two configs into a stored child image.
"""
from __future__ import annotations

import contextlib
import os
import platform
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import ENGINE_VERSION, errdefs
from ..layer.difftar import EMPTY_TAR_DIGEST
from .image import now_rfc3339_nano
from .progress import go_json

if TYPE_CHECKING:
    from ..layer import RWLayer
    from .backend import ImageBackend

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x"}


@dataclass
class CommitConfig:
    """backend.CommitConfig. `config` and `container_config` are container.Config
    documents already in Go field order (as json.Marshal writes them)."""

    author: str
    comment: str
    config: dict[str, Any]
    container_config: dict[str, Any]
    container_id: str
    parent_image_id: str
    rw_layer: RWLayer


def new_child_image(parent: dict[str, Any] | None, cfg: CommitConfig, diff_id: str, created: str) -> bytes:
    """NewChildImage, marshalled as Image.MarshalJSON does: top-level keys sorted (it
    goes through a map), nested documents kept in their own order."""
    parent = parent or {}
    empty = diff_id == EMPTY_TAR_DIGEST
    rootfs = dict(parent.get("rootfs") or {"type": "layers"})
    diff_ids = list(rootfs.get("diff_ids") or [])
    if not empty:
        diff_ids.append(diff_id)
    rootfs = {"type": rootfs.get("type") or "layers"}
    if diff_ids:
        rootfs["diff_ids"] = diff_ids
    # image.NewHistory: omitempty author/created_by/comment/empty_layer.
    hist: dict[str, Any] = {"created": created}
    if cfg.author:
        hist["author"] = cfg.author
    created_by = " ".join(cfg.container_config.get("Cmd") or [])
    if created_by:
        hist["created_by"] = created_by
    if cfg.comment:
        hist["comment"] = cfg.comment
    if empty:
        hist["empty_layer"] = True
    arch = parent.get("architecture") or _GOARCH.get(platform.machine(), platform.machine())
    doc: dict[str, Any] = {
        "architecture": arch,
        "config": cfg.config,
        "container": cfg.container_id,
        "container_config": cfg.container_config,
        "created": created,
        "docker_version": ENGINE_VERSION,
        "history": list(parent.get("history") or []) + [hist],
        "os": "linux",
        "rootfs": rootfs,
    }
    if cfg.author:
        doc["author"] = cfg.author
    if parent.get("variant"):
        doc["variant"] = parent["variant"]
    for key in ("os.version", "os.features"):
        if parent.get(key):
            doc[key] = parent[key]
    return go_json(dict(sorted(doc.items())))


def commit_image(svc: ImageBackend, cfg: CommitConfig) -> str:
    """CommitImage: register the RW layer's diff on the parent's chain, store the child
    image, record its parent. Returns the new image ID."""

    parent = svc.image_by_id(cfg.parent_image_id) if cfg.parent_image_id else None
    fd, path = tempfile.mkstemp(prefix="berth-commit-", dir=svc.tmp_dir)
    f = os.fdopen(fd, "w+b")
    try:
        try:
            cfg.rw_layer.tar_stream(f)
            f.flush()
        except OSError as e:
            if e.filename is not None:
                raise
            # the spooled diff did not fit (a full data root): worded as Go's write error
            raise errdefs.PathError("write", path, e) from None
        f.seek(0)
        layer = svc.layers.register(f, parent.top_layer if parent is not None else None)
    finally:
        with contextlib.suppress(OSError):  # what stayed in the buffer is the error above
            f.close()
        os.unlink(path)
    try:
        raw = new_child_image(parent.doc if parent is not None else None, cfg, layer.diff_id,
                              now_rfc3339_nano())
        img = svc.create_image(raw)
        if cfg.parent_image_id:
            svc.set_parent(img.id, cfg.parent_image_id)
    finally:
        svc.layers.release(layer.chain_id)  # ReleaseAndLog: the image holds its own reference
    return img.id
