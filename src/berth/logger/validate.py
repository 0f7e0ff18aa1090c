"""Per-driver log option checks at create (moby v20.10.24 daemon/logger/factory.go
ValidateLogOpts and each built-in driver's ValidateLogOpt: jsonfilelog, local, syslog,
journald, gelf, fluentd, awslogs, splunk, gcplogs, logentries).

Berth runs json-file, local, none, syslog, gelf, fluentd and journald (berth.logger.factory);
those are checked exactly as dockerd checks them at create (option names, required options
and the values dockerd checks before the logger exists). awslogs, splunk, gcplogs,
logentries and etwlogs are refused after their own checks: Berth would not ship their logs.
Every error here becomes a 400.
"""
from __future__ import annotations

from collections.abc import Callable

from .. import errdefs
from .drivers import DriverError
from .drivers.fluentd import parse_config
from .drivers.syslog import parse_address, parse_facility, parse_format
from .factory import check_shipped

_COMMON = ("env", "env-regex", "labels", "labels-regex", "tag")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")

Validator = Callable[[dict[str, str]], None]


def _bad(msg: str) -> errdefs.InvalidParameter:
    return errdefs.InvalidParameter(msg)


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _keys(allowed: tuple[str, ...], message: Callable[[str], str]) -> Validator:
    def check(cfg: dict[str, str]) -> None:
        for key in cfg:
            if key not in allowed:
                raise _bad(message(key))

    return check


def _gelf(cfg: dict[str, str]) -> None:
    """gelf.ValidateLogOpt: the address first, then each option and its value."""
    address = cfg.get("gelf-address", "")
    if not address:
        raise _bad("gelf-address is a required parameter")
    scheme, sep, _ = address.partition("://")
    if not sep or scheme not in ("udp", "tcp", "unix", "http", "https"):
        raise _bad(f"gelf-address should be in form proto://address, got {address}")
    for key, val in cfg.items():
        if key in ("gelf-address", *_COMMON):
            continue
        if key == "gelf-compression-level":
            try:
                ok = -1 <= int(val) <= 9
            except ValueError:
                ok = False
            if not ok:
                raise _bad(f"unknown value {_q(val)} for log opt {_q(key)} for gelf log driver")
        elif key == "gelf-compression-type":
            if val not in ("gzip", "zlib", "none"):
                raise _bad(f"unknown value {_q(val)} for log opt {_q(key)} for gelf log driver")
        elif key in ("gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay"):
            if scheme == "udp":
                raise _bad(f"{_q(key)} is only valid for TCP")
        else:
            raise _bad(f"unknown log opt {_q(key)} for gelf log driver")


_AWSLOGS_KEYS = (
    "awslogs-region", "awslogs-endpoint", "awslogs-group", "awslogs-create-group", "awslogs-stream",
    "awslogs-multiline-pattern", "awslogs-datetime-format", "awslogs-credentials-endpoint",
    "awslogs-force-flush-interval-seconds", "awslogs-max-buffered-events", "tag",
)


def _awslogs(cfg: dict[str, str]) -> None:
    _keys(_AWSLOGS_KEYS, lambda k: f"unknown log opt '{k}' for awslogs log driver")(cfg)
    if not cfg.get("awslogs-group"):
        raise _bad("must specify a value for log opt 'awslogs-group'")
    v = cfg.get("awslogs-create-group")
    if v is not None and v not in _GO_TRUE + _GO_FALSE:
        raise _bad(f"must specify valid value for log opt 'awslogs-create-group': "
                   f'strconv.ParseBool: parsing "{v}": invalid syntax')


def _logentries(cfg: dict[str, str]) -> None:
    if not cfg.get("logentries-token"):
        raise _bad("Missing logentries token")


_SPLUNK_KEYS = (*_COMMON, "splunk-url", "splunk-token", "splunk-source", "splunk-sourcetype", "splunk-index",
                "splunk-capath", "splunk-caname", "splunk-insecureskipverify", "splunk-format",
                "splunk-verify-connection", "splunk-gzip", "splunk-gzip-level", "splunk-index-acknowledgment")
_SYSLOG_KEYS = (*_COMMON, "syslog-address", "syslog-facility", "syslog-tls-ca-cert", "syslog-tls-cert",
                "syslog-tls-key", "syslog-tls-skip-verify", "syslog-format")
_FLUENTD_KEYS = (*_COMMON, "fluentd-address", "fluentd-buffer-limit", "fluentd-retry-wait", "fluentd-max-retries",
                 "fluentd-sub-second-precision", "fluentd-async-connect", "fluentd-async", "fluentd-request-ack")
_GCP_KEYS = ("env", "env-regex", "labels", "labels-regex", "gcp-project", "gcp-log-cmd", "gcp-meta-zone",
             "gcp-meta-name", "gcp-meta-id")

def _syslog(cfg: dict[str, str]) -> None:
    """syslog.ValidateLogOpt: the keys, then address (a unix path must exist), facility
    and format."""
    _keys(_SYSLOG_KEYS, lambda k: f"unknown log opt '{k}' for syslog log driver")(cfg)
    try:
        parse_address(cfg.get("syslog-address", ""))
        parse_facility(cfg.get("syslog-facility", ""))
        parse_format(cfg.get("syslog-format", ""))
    except DriverError as e:
        raise _bad(str(e)) from None


def _fluentd(cfg: dict[str, str]) -> None:
    _keys(_FLUENTD_KEYS, lambda k: f"unknown log opt '{k}' for fluentd log driver")(cfg)
    try:
        parse_config(cfg)
    except DriverError as e:
        raise _bad(str(e)) from None


# name → ValidateLogOpt of the drivers dockerd 20.10 registers on Linux.
VALIDATORS: dict[str, Validator] = {
    "json-file": _keys((*_COMMON, "max-file", "max-size", "compress"),
                       lambda k: f"unknown log opt '{k}' for json-file log driver"),
    "local": _keys(("max-file", "max-size", "compress"), lambda k: f"unknown log opt '{k}' for log driver local"),
    "syslog": _syslog,
    "journald": _keys(_COMMON, lambda k: f"unknown log opt '{k}' for journald log driver"),
    "gelf": _gelf,
    "fluentd": _fluentd,
    "awslogs": _awslogs,
    "splunk": _keys(_SPLUNK_KEYS, lambda k: f"unknown log opt '{k}' for splunk log driver"),
    "gcplogs": _keys(_GCP_KEYS, lambda k: f"{_q(k)} is not a valid option for the gcplogs driver"),
    "logentries": _logentries,
}


def validate_driver_opts(name: str, opts: dict[str, str]) -> None:
    """driverRegistered, then the driver's own validator. An unknown name is looked up
    as a plugin, and that lookup's error is what the client sees."""
    validator = VALIDATORS.get(name)
    if validator is None:
        raise _bad(f'error looking up logging plugin {name}: plugin "{name}" not found')
    validator(opts)
    check_shipped(name)


__all__ = ["VALIDATORS", "validate_driver_opts"]
