"""Legacy links (moby/daemon/daemon_unix.go registerLinks, opts/opts.go ParseLink)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errdefs
from ..types.container import HostConfig

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

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


def register_links(d: Daemon, ctr: Container, hc: HostConfig) -> None:
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


def links_for(d: Daemon, ctr: Container) -> list[str] | None:
    """Inspect's `HostConfig.Links`: `/<child>:/<parent>/<alias>` from the name table."""
    out = []
    for link_name, child_id in sorted(d.names.children(ctr.Name).items()):
        child = d.containers.get(child_id)
        if child is not None:
            out.append(f"{child.Name}:{link_name}")
    return out or None


# -- environment (daemon/container_operations_unix.go setupLinkedContainers, daemon/links/links.go) --
def _port_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return int(port.split("-")[0]), (proto or "tcp").lower()


def link_env_vars(name: str, child_ip: str, child_env: list[str] | None, exposed: list[str]) -> list[str]:
    """links.Link.ToEnv as 20.10 writes it: the default port (lowest, tcp first on a tie),
    the START/END block of each contiguous run, four variables per port, the link's name,
    then the child's environment (without HOME and PATH). Duplicates are left in, as
    dockerd leaves them (the range block repeats some per-port keys); see dedup_env."""
    alias = name.rsplit("/", 1)[-1].upper().replace("-", "_")
    # getDefaultPort's nat.Sort: by number; on a tie tcp sorts first.
    ports = sorted({_port_key(k) for k in exposed}, key=lambda p: (p[0], p[1] != "tcp"))
    env: list[str] = []
    if ports:
        n, proto = ports[0]
        env.append(f"{alias}_PORT={proto}://{child_ip}:{n}")
    i = 0
    while i < len(ports):
        j = _next_contiguous(ports, ports[i][0], i)
        if j > i + 1:
            (n, proto), (qn, qproto) = ports[i], ports[j]
            pre = f"{alias}_PORT_{n}_{proto.upper()}"
            env += [f"{pre}_START={proto}://{child_ip}:{n}", f"{pre}_ADDR={child_ip}", f"{pre}_PROTO={proto}",
                    f"{pre}_PORT_START={n}"]
            end = f"{alias}_PORT_{n}_{qproto.upper()}"
            env += [f"{end}_END={qproto}://{child_ip}:{qn}", f"{end}_PORT_END={qn}"]
            i = j + 1
        else:
            i += 1
    for n, proto in ports:
        pre = f"{alias}_PORT_{n}_{proto.upper()}"
        env += [f"{pre}={proto}://{child_ip}:{n}", f"{pre}_ADDR={child_ip}", f"{pre}_PORT={n}", f"{pre}_PROTO={proto}"]
    env.append(f"{alias}_NAME={name}")
    for v in child_env or []:
        k, sep, val = v.partition("=")
        if sep and k not in ("HOME", "PATH"):
            env.append(f"{alias}_ENV_{k}={val}")
    return env


def _next_contiguous(ports: list[tuple[int, str]], value: int, index: int) -> int:
    """nextContiguous: the last index of the run of consecutive numbers from `index`."""
    for i in range(index + 1, len(ports)):
        if ports[i][0] > value + 1:
            return i - 1
        value += 1
    return len(ports) - 1


def dedup_env(env: list[str]) -> list[str]:
    """Keep the first of repeated keys: what the container ends up seeing of dockerd's
    list (the range block's _ADDR/_PROTO win over the per-port ones)."""
    seen: set[str] = set()
    out = []
    for e in env:
        k = e.partition("=")[0]
        if k not in seen:
            seen.add(k)
            out.append(e)
    return out


def setup_linked_containers(d: Daemon, ctr: Container) -> list[str]:
    """setupLinkedContainers: the environment a start gives the container for its legacy
    links (pass it as create_daemon_environment's linked_env). Only a container on the
    default bridge gets any; a stopped child fails the start (errdefs.System, as createSpec
    wraps it)."""
    nets = ctr.NetworkSettings.Networks or {}
    if "bridge" not in nets:
        return []
    env: list[str] = []
    for link_name, child_id in sorted(d.names.children(ctr.Name).items()):
        child = d.containers.get(child_id)
        if child is None:
            continue
        if not child.State.Running:
            raise errdefs.System(f"Cannot link to a non running container: {child.Name} AS {link_name}")
        cep = (child.NetworkSettings.Networks or {}).get("bridge")
        if cep is None:
            raise errdefs.System(f"container {child.ID} not attached to default bridge network")
        exposed = list(child.Config.ExposedPorts or {}) if isinstance(child.Config.ExposedPorts, dict) else []
        env += link_env_vars(link_name, cep.IPAddress, list(child.Config.Env or []), exposed)
    return dedup_env(env)
