"""POST /containers/prune (moby/daemon/prune.go ContainersPrune)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errdefs
from ..types import gojson
from ..types.filters import Args
from ..types.timestamp import get_timestamp, parse_timestamps

if TYPE_CHECKING:
    from .daemon import Daemon

ACCEPTED = {"label", "label!", "until"}


async def containers_prune(d: "Daemon", filters: Args) -> tuple[list[str], int]:
    filters.validate(ACCEPTED)
    until_ns: int | None = None
    for v in filters.get("until"):
        ts = get_timestamp(v)
        sec, nsec = parse_timestamps(ts, 0)
        until_ns = sec * 1_000_000_000 + nsec
    deleted: list[str] = []
    reclaimed = 0
    from .delete import cleanup_container
    from .inspect import _sizes

    for ctr in list(d.containers.values()):
        if ctr.State.Running or ctr.State.RemovalInProgress:
            continue
        if until_ns is not None and gojson.parse_go_time(ctr.Created) >= until_ns:
            continue
        if not filters.match_kv_list("label", ctr.Config.Labels):
            continue
        if filters.contains("label!") and _label_not(filters, ctr.Config.Labels or {}):
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


def _label_not(filters: Args, labels: dict[str, str]) -> bool:
    """True when a `label!` filter matches the container (so it is kept)."""
    for f in filters.get("label!"):
        k, sep, v = f.partition("=")
        if k in labels and (not sep or labels[k] == v):
            return True
    return False
