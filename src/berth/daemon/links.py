"""Legacy links (moby/daemon/daemon_unix.go registerLinks, opts/opts.go ParseLink)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errdefs
from ..types.container import HostConfig

if TYPE_CHECKING:
    from ..container.container import Container
    from .daemon import Daemon

_PREDEFINED = ("default", "bridge", "host", "none")


def parse_link(val: str) -> tuple[str, str]:
    """ParseLink: `name:alias`, `name` (alias = name) or `/child:/parent/alias`; untyped errors."""
    if not val:
        raise errdefs.Untyped("empty string specified for links")
    arr = val.split(":")
    if len(arr) > 2:
        raise errdefs.Untyped(f"bad format for links: {val}")
    if len(arr) == 1:
        return val, val
    if arr[1].startswith("/"):
        return arr[0].lstrip("/"), arr[1].rsplit("/", 1)[-1]
    return arr[0].lstrip("/"), arr[1]


def is_user_defined(mode: str) -> bool:
    return not (mode in _PREDEFINED or mode.startswith("container:"))


def register_links(d: "Daemon", ctr: "Container", hc: HostConfig) -> None:
    """Check each link's child; the alias name is reserved when the container registers."""
    if not hc.Links or is_user_defined(hc.NetworkMode):
        return
    for link in hc.Links:
        name, alias = parse_link(link)
        try:
            child = d.get_container(name)
        except errdefs.NotFound as e:
            raise errdefs.InvalidParameter(f"could not get container for {name}: {e}") from None
        seen = 0
        while child.host_config.NetworkMode.startswith("container:") and seen < 10:
            target = child.host_config.NetworkMode.split(":", 1)[1]
            try:
                child = d.get_container(target)
            except errdefs.DockerError as e:
                raise errdefs.InvalidParameter(f"Could not get container for {target}: {e}") from None
            seen += 1
        if child.host_config.NetworkMode == "host":
            raise errdefs.InvalidParameter(
                "conflicting options: host type networking can't be used with links. "
                "This would result in undefined behavior"
            )
        link_name = f"{ctr.Name}/{alias}"
        try:
            d.names.reserve(link_name, child.ID)
        except Exception:
            pass  # a clash is only logged by dockerd


def links_for(d: "Daemon", ctr: "Container") -> list[str] | None:
    """Inspect's `HostConfig.Links`: `/<child>:/<parent>/<alias>` from the name table."""
    out = []
    for link_name, child_id in sorted(d.names.children(ctr.Name).items()):
        child = d.containers.get(child_id)
        if child is not None:
            out.append(f"{child.Name}:{link_name}")
    return out or None
