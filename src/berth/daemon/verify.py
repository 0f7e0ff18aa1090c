"""verifyContainerSettings (moby/daemon/container.go): checks on the user's Config
and HostConfig before anything is made. Every error here is answered 400.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import errdefs
from ..pkg import caps, signal
from ..trace import traced
from ..types.container import Config, HealthConfig, HostConfig, PortBinding
from ..volume import mounts
from . import platform

if TYPE_CHECKING:
    from .sysinfo import SysInfo

MINIMUM_DURATION = 1_000_000  # container.MinimumDuration: 1ms in nanoseconds


@traced("verifyContainerSettings", leaf=True)
def verify_container_settings(
    hc: HostConfig | None, config: Config | None, sysinfo: SysInfo, default_runtime: str, runtimes: set[str],
    update: bool = False, systemd_cgroup: bool = False,
) -> list[str]:
    """Run the Config, HostConfig and platform checks in dockerd's order; return warnings."""
    try:
        if config is not None:
            validate_container_config(config)
        if hc is None:
            return []
        validate_host_config(hc)
        return platform.verify_platform_container_settings(hc, sysinfo, default_runtime, runtimes, update,
                                                           systemd_cgroup)
    except errdefs.InvalidParameter:
        raise
    except (errdefs.DockerError, ValueError) as e:
        raise errdefs.InvalidParameter(str(e)) from e


def validate_container_config(config: Config) -> None:
    if config.WorkingDir and not config.WorkingDir.startswith("/"):
        raise errdefs.InvalidParameter(
            f"the working directory '{config.WorkingDir}' is invalid, it needs to be an absolute path"
        )
    if config.StopSignal:
        signal.parse_signal(config.StopSignal)  # ValueError("Invalid signal: …")
    for env in config.Env or []:
        if env.split("=", 1)[0] == "":
            raise errdefs.InvalidParameter(f"invalid environment variable: {env}")
    hc = config.Healthcheck
    if isinstance(hc, HealthConfig):
        _validate_health_check(hc)


def _validate_health_check(h: HealthConfig) -> None:
    def short(v: object) -> bool:
        return isinstance(v, int) and v != 0 and v < MINIMUM_DURATION

    if short(h.Interval):
        raise errdefs.InvalidParameter("Interval in Healthcheck cannot be less than 1ms")
    if short(h.Timeout):
        raise errdefs.InvalidParameter("Timeout in Healthcheck cannot be less than 1ms")
    if isinstance(h.Retries, int) and h.Retries < 0:
        raise errdefs.InvalidParameter("Retries in Healthcheck cannot be negative")
    if short(h.StartPeriod):
        raise errdefs.InvalidParameter("StartPeriod in Healthcheck cannot be less than 1ms")
    # moby 25+ validateHealthCheck; the field only reaches here from API 1.44 requests.
    if short(h.StartInterval):
        raise errdefs.InvalidParameter("StartInterval in Healthcheck cannot be less than 1ms")


def validate_host_config(hc: HostConfig) -> None:
    if hc.AutoRemove and hc.RestartPolicy.Name not in ("", "no"):
        raise errdefs.InvalidParameter("can't create 'AutoRemove' container with restart policy")
    for m in hc.Mounts or []:
        mounts.validate_mount_config(m, check_bind_source=True)
    for h in hc.ExtraHosts or []:
        validate_extra_host(h)
    validate_port_bindings(hc.PortBindings)
    validate_restart_policy(hc.RestartPolicy.Name, hc.RestartPolicy.MaximumRetryCount)
    try:
        caps.normalize_legacy_capabilities(hc.CapAdd)
    except ValueError as e:
        raise errdefs.InvalidParameter(f"invalid CapAdd: {e}") from None
    try:
        caps.normalize_legacy_capabilities(hc.CapDrop)
    except ValueError as e:
        raise errdefs.InvalidParameter(f"invalid CapDrop: {e}") from None
    if hc.Isolation and hc.Isolation.lower() != "default":
        raise errdefs.InvalidParameter(f"invalid isolation '{hc.Isolation}' on linux")


def _go_quote(s: str) -> str:
    """Go's %q for the printable strings these messages carry."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def validate_extra_host(val: str) -> None:
    """opts.ValidateExtraHost: `name:ip` or `name:host-gateway`."""
    name, sep, addr = val.partition(":")
    if not sep or not name:
        raise errdefs.InvalidParameter(f"bad format for add-host: {_go_quote(val)}")
    if addr == "host-gateway":
        return
    try:
        ipaddress.ip_address(addr.strip())
    except ValueError:
        raise errdefs.InvalidParameter(f"invalid IP address in add-host: {_go_quote(addr)}") from None


def _parse_port(p: str) -> bool:
    if p == "":
        return True
    # strconv.ParseUint(p, 10, 16): ASCII digits only, no sign or spaces
    return p.isascii() and p.isdigit() and int(p) <= 65535


def validate_port_bindings(bindings: Mapping[str, list[PortBinding] | None] | None) -> None:
    """validatePortBindings: container port a single port; host port a port or a range."""
    for key, value in (bindings or {}).items():
        port = key.split("/", 1)[0]
        if not _parse_port(port):
            raise errdefs.InvalidParameter(f"invalid port specification: {_go_quote(port)}")
        for b in value or []:
            hp = b.HostPort
            if hp == "":
                continue
            start, sep, end = hp.partition("-")
            if not _parse_port(start) or (sep and not _parse_port(end)) or (sep and end == ""):
                raise errdefs.InvalidParameter(f"invalid port specification: {_go_quote(hp)}")


def validate_restart_policy(name: str, count: int) -> None:
    if name in ("always", "unless-stopped", "no"):
        if count != 0:
            raise errdefs.InvalidParameter(f"maximum retry count cannot be used with restart policy '{name}'")
    elif name == "on-failure":
        if count < 0:
            raise errdefs.InvalidParameter("maximum retry count cannot be negative")
    elif name == "":
        pass
    else:
        raise errdefs.InvalidParameter(f"invalid restart policy '{name}'")
