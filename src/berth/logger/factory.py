"""Which drivers Berth runs and how a container's logger is made (moby v20.10.24
daemon/logger/factory.go, container/container.go StartLogger).

- `local` and `none`: conmon writes (or drops) the output itself (berth.logger.rotate).
- `json-file` and the shipping drivers: conmon writes a private record file, and a pump
  (berth.logger.pump) makes dockerd's JSON lines or ships every message, with the
  dual-logging cache for `docker logs`.
- awslogs, splunk, gcplogs, logentries, etwlogs: dockerd has them, Berth does not ship to
  them: refused at create (`check_shipped`) rather than accepted and dropped.
"""
from __future__ import annotations

from .. import errdefs
from . import drivers, jsonlog
from .config import JSON_FILE, LOCAL, NONE, PUMPED, SHIPPING, LogFileConfig, file_config, uses_pump
from .info import Info, json_file_attrs
from .pump import Driver, SinkSpec

NOT_SHIPPED = ("awslogs", "splunk", "gcplogs", "logentries", "etwlogs")


def check_shipped(name: str) -> None:
    """Refuse a driver dockerd knows but Berth cannot deliver to (a 400 at create, and
    berthd refuses to start with it as the default)."""
    if name in NOT_SHIPPED:
        raise errdefs.InvalidParameter(
            f'logging driver "{name}" is not supported by Berth: its logs would not be shipped '
            f"(available: json-file, local, none, {', '.join(SHIPPING)})")


def sink_spec(info: Info, ctr_root: str, ctr_id: str, name: str, opts: dict[str, str]) -> SinkSpec | None:
    """The file the pump writes: json-file's own, or the cache of a shipping driver (None
    with cache-disabled). Raises the driver's option error (Untyped)."""
    cfg: LogFileConfig | None = file_config(ctr_root, ctr_id, name, opts)
    if cfg is None:
        return None
    if name == JSON_FILE:
        attrs = json_file_attrs(info)
        return cfg, (jsonlog.go_map(attrs).encode() if attrs else b"")
    return cfg, None


async def new_driver(info: Info, name: str, opts: dict[str, str], *, connect: bool) -> Driver | None:
    """The shipping driver of a container, connected now when `connect` (a start: an
    unreachable target fails it, as dockerd's New does), else on first use (a restore)."""
    if name in (JSON_FILE, LOCAL, NONE):
        return None
    return await drivers.new(info, name, opts, connect=connect)


__all__ = ["JSON_FILE", "NOT_SHIPPED", "PUMPED", "SHIPPING", "check_shipped", "new_driver", "sink_spec", "uses_pump"]
