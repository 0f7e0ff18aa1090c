"""POST /containers/{id}/rename (moby/daemon/rename.go ContainerRename)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import errdefs
from . import names, network

log = logging.getLogger("berth.daemon")

if TYPE_CHECKING:
    from .core import Daemon


async def container_rename(d: Daemon, old_name: str, new_name: str) -> None:
    if not old_name or not new_name:
        raise errdefs.InvalidParameter("Neither old nor new names may be empty")
    if not new_name.startswith("/"):
        new_name = "/" + new_name
    ctr = d.get_container(old_name)
    async with ctr.lock:
        old = ctr.Name
        if old == new_name:
            raise errdefs.InvalidParameter("Renaming a container with the same name as its current name")
        children = [n for n in d.names.all_names().get(ctr.ID, []) if n != old]
        try:
            names.reserve_name(d, ctr.ID, new_name)
        except errdefs.DockerError as e:
            raise type(e)(f"Error when allocating new name: {e}") from None
        # Links named after the old parent move with it.
        for key, held in list(d.names.all_names().items()):
            for n in held:
                if n.startswith(old + "/"):
                    d.names.release(n)
                    d.names.reserve(new_name + n[len(old):], key)
        ctr.Name = new_name
        ctr.NetworkSettings.IsAnonymousEndpoint = False
        try:
            await d.run_blocking(ctr.to_disk)
        except BaseException:
            ctr.Name = old
            d.names.release(new_name)
            raise
        d.names.release(old)
        del children
        try:
            await d.run_blocking(network.rename_endpoints, d, ctr, old)
        except Exception as e:  # the rename stands, as in dockerd's log-only paths
            log.warning("container %s: renaming its DNS entries failed: %s", ctr.ID, e)
    d.log_container_event(ctr, "rename", {"oldName": old})
