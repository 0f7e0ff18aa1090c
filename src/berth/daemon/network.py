"""Network settings at create (moby/daemon/container_operations.go
updateContainerNetworkSettings, runconfig SetDefaultNetModeIfBlank)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from ..container.container import NetworkEndpoint
from ..types.container import NetworkingConfig

if TYPE_CHECKING:
    from ..container.container import Container
    from .daemon import Daemon

DEFAULT_NETWORK = "bridge"


def network_name(d: "Daemon", mode: str) -> str:
    if mode == "default":
        return DEFAULT_NETWORK
    return mode


def update_container_network_settings(d: "Daemon", ctr: "Container", nc: NetworkingConfig | None) -> None:
    hc = ctr.host_config
    if not hc.NetworkMode:
        hc.NetworkMode = "default"
    mode = hc.NetworkMode
    if ctr.Config.NetworkDisabled is True or mode.startswith("container:"):
        return
    name = network_name(d, mode)
    networks: dict[str, NetworkEndpoint] = {}
    if nc is not None and nc.EndpointsConfig:
        for key, ep in nc.EndpointsConfig.items():
            if ep is None:
                continue
            if key == "default":
                key = DEFAULT_NETWORK
            networks[key] = msgspec.convert(msgspec.to_builtins(ep), NetworkEndpoint)
    else:
        networks[name] = NetworkEndpoint()
    ctr.NetworkSettings.Networks = networks


async def initialize_networking(d: "Daemon", ctr: "Container") -> str | None:
    """Set up the container's network before its spec is built (daemon/container_operations.go
    initializeNetworking). Returns the network namespace path the container joins, or None
    to let the runtime make a fresh one (or use the host's, for `host` mode).

    Stub until networks exist: every non-host container gets a private namespace with only
    loopback.
    """
    return None


async def release_network(d: "Daemon", ctr: "Container") -> None:
    """Tear down what initialize_networking made (releaseNetwork)."""
    return None
