"""POST /containers/prune (moby/daemon/prune.go ContainersPrune)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errdefs
from ..types import gojson
from ..types.filters import Args, match_labels, until_from_prune_filters
from .delete import cleanup_container
from .inspect import _sizes

if TYPE_CHECKING:
    from .core import Daemon

ACCEPTED = {"label", "label!", "until"}


async def containers_prune(d: Daemon, filters: Args) -> tuple[list[str], int]:
    filters.validate(ACCEPTED)
    until_ns = until_from_prune_filters(filters)
    deleted: list[str] = []
    reclaimed = 0
    for ctr in list(d.containers.values()):
        if ctr.State.Running or ctr.State.RemovalInProgress:
            continue
        if until_ns is not None and gojson.parse_go_time(ctr.Created) >= until_ns:
            continue
        if not match_labels(filters, ctr.Config.Labels):
            continue
        size_rw, _ = await d.run_blocking(_sizes, d, ctr)
        try:
            await cleanup_container(d, ctr, force=False, remove_volume=False)
        except errdefs.DockerError:
            continue
        deleted.append(ctr.ID)
        reclaimed += size_rw
    d.events.log("prune", "container", "", {"reclaimed": str(reclaimed)})
    return deleted, reclaimed
