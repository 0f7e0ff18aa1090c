"""Checks the decoder runs before the daemon sees a create request
(moby/runconfig/hostconfig.go, hostconfig_unix.go, errors.go)."""
from __future__ import annotations

import os

from .. import errdefs
from ..types.container import Config, HostConfig


def set_default_net_mode_if_blank(hc: HostConfig) -> None:
    if not hc.NetworkMode:
        hc.NetworkMode = "default"


def is_container_mode(mode: str) -> bool:
    return mode.startswith("container:")


def _container_part(mode: str) -> str:
    parts = mode.split(":", 1)
    return parts[1] if len(parts) > 1 else ""


def validate_net_mode(c: Config | None, hc: HostConfig) -> None:
    """validateNetMode, with validateNetContainerMode; all InvalidParameter."""
    mode = hc.NetworkMode
    parts = mode.split(":", 1)
    if parts[0] == "container" and (len(parts) < 2 or parts[1] == ""):
        raise errdefs.InvalidParameter("Invalid network mode: invalid container format container:<name|id>")
    is_container = parts[0] == "container"
    is_host = mode == "host"
    # dockerd dereferences the missing Config here and drops the connection; we answer instead.
    c = c or Config()
    if is_container:
        if c.Hostname:
            raise errdefs.InvalidParameter("conflicting options: hostname and the network mode")
        if hc.Links:
            raise errdefs.InvalidParameter(
                "conflicting options: container type network can't be used with links. "
                "This would result in undefined behavior"
            )
        if hc.Dns:
            raise errdefs.InvalidParameter("conflicting options: dns and the network mode")
        if hc.ExtraHosts:
            raise errdefs.InvalidParameter("conflicting options: custom host-to-IP mapping and the network mode")
    if (is_container or is_host) and c.MacAddress:
        raise errdefs.InvalidParameter("conflicting options: mac-address and the network mode")
    if is_container and (hc.PortBindings or hc.PublishAllPorts):
        raise errdefs.InvalidParameter("conflicting options: port publishing and the container type network mode")
    if is_container and c.ExposedPorts:
        raise errdefs.InvalidParameter("conflicting options: port exposing and the container type network mode")
    if hc.UTSMode == "host" and c.Hostname:
        raise errdefs.InvalidParameter("conflicting options: hostname and the UTS mode")
    if is_host and hc.Links:
        raise errdefs.InvalidParameter(
            "conflicting options: host type networking can't be used with links. "
            "This would result in undefined behavior"
        )


def validate_isolation(hc: HostConfig) -> None:
    if hc.Isolation and hc.Isolation.lower() != "default":
        raise errdefs.Untyped(f'Invalid isolation: "{hc.Isolation}" - linux only supports \'default\'')


def validate_qos(hc: HostConfig) -> None:
    if hc.IOMaximumBandwidth:
        raise errdefs.Untyped("Invalid QoS settings: linux does not support configuration of maximum bandwidth")
    if hc.IOMaximumIOps:
        raise errdefs.Untyped("Invalid QoS settings: linux does not support configuration of maximum IOPs")


def validate_resources(hc: HostConfig, rt_supported: bool) -> None:
    if (hc.CpuRealtimePeriod or hc.CpuRealtimeRuntime) and not rt_supported:
        raise errdefs.Untyped("Your kernel does not support CPU real-time scheduler")
    if hc.CpuRealtimePeriod and hc.CpuRealtimeRuntime and hc.CpuRealtimeRuntime > hc.CpuRealtimePeriod:
        raise errdefs.Untyped("cpu real-time runtime cannot be higher than cpu real-time period")


def _rt_supported() -> bool:
    return os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_period_us") or os.path.exists("/sys/fs/cgroup/cpu,cpuacct/cpu.rt_period_us")


_RT = _rt_supported()


def validate_host_config_wrapper(c: Config | None, hc: HostConfig | None) -> None:
    """The decoder's validations, in dockerd's order; skipped without a HostConfig."""
    if hc is None:
        return
    validate_net_mode(c, hc)
    validate_isolation(hc)
    validate_qos(hc)
    validate_resources(hc, _RT)
