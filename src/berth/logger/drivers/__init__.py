"""The shipping drivers (moby v20.10.24 daemon/logger/{syslog,gelf,fluentd,journald}) and
what they share: a connection made at container start (an unreachable target fails the
start, as each driver's New does), a dedicated thread that does the blocking socket work,
and dockerd's `mode`:

- blocking (the default): every message is delivered. A send that fails closes the
  connection and the batch is sent again on a new one, as long as it takes (dockerd's
  writers reconnect the same way; the container itself never waits in Berth, conmon keeps
  writing the private file meanwhile).
- non-blocking: messages go to a buffer of `max-buffer-size` bytes (dockerd's ring
  logger, 1 MB by default) that a sender drains; what does not fit is dropped.
"""
from __future__ import annotations

from ..info import Info
from . import fluentd, gelf, journald, syslog
from .base import (
    CONNECT_TIMEOUT,
    DEFAULT_MAX_BUFFER,
    RETRY_DELAY,
    SEND_TIMEOUT,
    DriverError,
    Shipper,
    dial_error,
    go_errno,
    log,
    open_datagram,
    open_stream,
    send_datagram,
)


async def new(info: Info, name: str, opts: dict[str, str], *, connect: bool) -> Shipper:
    cls: type[Shipper] = {"syslog": syslog.Syslog, "gelf": gelf.Gelf, "fluentd": fluentd.Fluentd,
                          "journald": journald.Journald}[name]
    drv = cls(info, opts)
    if connect and drv.connect_at_start():
        try:
            await drv.connect()
        except BaseException:
            await drv.close()
            raise
    return drv


__all__ = ["CONNECT_TIMEOUT", "DEFAULT_MAX_BUFFER", "RETRY_DELAY", "SEND_TIMEOUT", "DriverError", "Shipper",
           "dial_error", "go_errno", "log", "new", "open_datagram", "open_stream", "send_datagram"]
