"""docker diff (moby daemon/changes.go ContainerChanges): the RW layer's changes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..trace import traced

if TYPE_CHECKING:
    from .core import Daemon


@traced("ContainerChanges", action="changes")
async def container_changes(d: Daemon, name: str) -> list[Any] | None:
    ctr = d.get_container(name)
    rw = d.layers.get_rw_layer(ctr.ID)
    changes = await d.run_blocking(rw.changes)
    return [{"Path": c.Path, "Kind": c.Kind} for c in changes] or None
