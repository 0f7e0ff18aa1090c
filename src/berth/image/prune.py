"""POST /images/prune (moby v20.10.24 daemon/images/image_prune.go ImagesPrune)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import errdefs
from ..types import gojson
from ..types.filters import Args, match_labels, until_from_prune_filters

if TYPE_CHECKING:
    from .backend import ImageBackend

log = logging.getLogger(__name__)

ACCEPTED = {"dangling", "label", "label!", "until"}
# pruneRunning: one image prune at a time, a second one is a conflict.
_running = threading.Lock()


def images_prune(svc: ImageBackend, filters: Args,
                 is_used_by: Callable[[str], list[tuple[str, bool]]]) -> tuple[list[dict[str, str]], int]:
    """ImagesPrune: the deleted/untagged records and the bytes of the layers removed."""
    if not _running.acquire(blocking=False):
        raise errdefs.Conflict("a prune operation is already running")
    try:
        return _prune(svc, filters, is_used_by)
    finally:
        _running.release()


def _prune(svc: ImageBackend, filters: Args,
           is_used_by: Callable[[str], list[tuple[str, bool]]]) -> tuple[list[dict[str, str]], int]:
    filters.validate(ACCEPTED)
    dangling_only = True
    if filters.contains("dangling"):
        if filters.exact_match("dangling", "false") or filters.exact_match("dangling", "0"):
            dangling_only = False
        elif not (filters.exact_match("dangling", "true") or filters.exact_match("dangling", "1")):
            raise errdefs.InvalidParameter(f"Invalid filter 'dangling=[{' '.join(filters.get('dangling'))}]'")
    until_ns = until_from_prune_filters(filters)

    images = svc.all_images()
    parents = {img.parent for img in images if img.parent}
    layer_sizes = {layer.chain_id: layer.size for layer in svc.layers.layers()}
    # Heads() when only dangling images go: an image another was built on is never one.
    candidates = [img for img in images if not dangling_only or img.id not in parents]
    top = []
    for img in candidates:
        refs = svc.refs.references(img.id)
        if not refs and img.id in parents:
            continue  # an intermediate image: it goes with the image built on it
        if until_ns is not None and img.created and gojson.parse_go_time(img.created) > until_ns:
            continue
        if img.config and not match_labels(filters, img.labels):
            continue
        top.append((img, refs))

    deleted: list[dict[str, str]] = []
    for img, refs in top:
        if refs:
            if dangling_only and any(r.tag for r in refs):
                continue  # only repo@digest references: `repo:<none>` is dangling too
            targets = [str(r) for r in refs]
        else:
            targets = [img.id[len("sha256:"):]]
        for target in targets:
            try:
                deleted += svc.delete(target, False, True, is_used_by)
            except errdefs.Conflict:
                continue  # in use by a container: kept, silently
            except errdefs.DockerError as e:
                log.warning("failed to prune image %s: %s", target, e)
    # SpaceReclaimed: the size of each removed layer (its chain ID is a `Deleted` record).
    reclaimed = sum(layer_sizes.get(r.get("Deleted", ""), 0) for r in deleted)
    return deleted, reclaimed
