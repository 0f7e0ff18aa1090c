"""Decoding a container-create body (moby/runconfig/config.go, config_unix.go).

The body is a `ContainerConfigWrapper`: the Config fields at the top level, a
`HostConfig` object, a `NetworkingConfig` object, a deprecated top-level `Cpuset`,
and, deprecated too, every HostConfig field again at the top level. Go allocates
an embedded struct as soon as one of its keys appears (even with `null`), which is
how dockerd tells "no Config" (→ "Config cannot be empty…") from an empty one.
"""
from __future__ import annotations

from typing import Annotated, TypeAlias

from .. import errdefs
from ..types import gojson
from ..types.container import Config, GoStruct, HostConfig, NetworkingConfig
from .hostconfig import set_default_net_mode_if_blank, validate_host_config_wrapper

HostConfigT: TypeAlias = HostConfig  # the type, under a name the field `HostConfig` does not hide


class ContainerConfigWrapper(GoStruct):
    """runconfig.ContainerConfigWrapper: Config and the deprecated HostConfig are embedded."""

    _go_name = "runconfig.ContainerConfigWrapper"
    EmbeddedConfig: Annotated[Config | None, gojson.EMBEDDED] = None
    HostConfig: HostConfigT | None = None
    Cpuset: str = ""
    NetworkingConfig: NetworkingConfig | None = None
    EmbeddedHostConfig: Annotated[HostConfigT | None, gojson.EMBEDDED] = None


def decode_container_config(
    body: bytes,
) -> tuple[Config | None, HostConfig | None, NetworkingConfig | None]:
    """runconfig decodeContainerConfig: decode and validate a create body.

    Decode errors are gojson.GoJSONError with Go's messages; the router decides their
    status.
    """
    w = gojson.decode(body, ContainerConfigWrapper, go_type_name="runconfig.ContainerConfigWrapper")
    config = w.EmbeddedConfig
    hc = get_host_config(w)
    if hc is not None:
        if w.Cpuset and not hc.CpusetCpus:
            hc.CpusetCpus = w.Cpuset
        set_default_net_mode_if_blank(hc)
    if config is not None and hc is not None and config.Volumes is None:
        config.Volumes = {}
    validate_host_config_wrapper(config, hc)
    return config, hc, w.NetworkingConfig


def get_host_config(w: ContainerConfigWrapper) -> HostConfig | None:
    """config_unix.go getHostConfig: the inner HostConfig wins; a few deprecated
    top-level values fill its empty fields."""
    inner, top = w.HostConfig, w.EmbeddedHostConfig
    if inner is None:
        return top
    if top is not None:
        for f in ("Memory", "MemorySwap", "CpuShares", "CpusetCpus", "VolumeDriver"):
            if not getattr(inner, f) and getattr(top, f):
                setattr(inner, f, getattr(top, f))
    return inner


def decode_host_config(body: bytes) -> HostConfig:
    """DecodeHostConfig, for the deprecated start-with-body of API < 1.24."""
    hc: HostConfig = gojson.decode(body, HostConfig, go_type_name="container.HostConfig")
    set_default_net_mode_if_blank(hc)
    return hc


__all__ = ["decode_container_config", "decode_host_config", "errdefs"]
