"""Where a container's log lives and how it rotates, per driver (moby v20.10.24
container/container.go StartLogger, daemon/logger/jsonfilelog/jsonfilelog.go New,
daemon/logger/local/config.go + local.go New, daemon/logger/loggerutils/cache).

dockerd checks max-size/max-file/compress only when the logger is made (container start, or
`docker logs` on a stopped container), not at create; `file_config` is that check, with the
drivers' own messages. At start dockerd wraps them in "failed to initialize logging driver: ".

Files (the same names and places as dockerd's, see berth.logger.rotate for the content):
- json-file: `<container root>/<id>-json.log`, also inspect's LogPath (dockerd sets LogPath
  for json-file only). Defaults: no max-size (never rotates), max-file 1, no compression.
- local: `<container root>/local-logs/container.log` (LogPath stays ""); defaults 20 MiB,
  5 files, compressed.
- the shipping drivers (syslog, gelf, fluentd, journald): dockerd 20.10's "dual logging"
  cache, `<container root>/container-cached.log` with the local driver's defaults, tuned by
  `cache-max-size`/`cache-max-file`/`cache-compress`, off with `cache-disabled=true`
  (berth.logger.pump writes it next to shipping every line).
- none: no file.
"""
from __future__ import annotations

import os
import re
from typing import NamedTuple

from .. import errdefs
from ..pkg.units import from_human_size

JSON_FILE = "json-file"
LOCAL = "local"
NONE = "none"

_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_ATOI = re.compile(r"^[+-]?[0-9]+$")
_LOCAL_MAX_SIZE = 20 * 1024 * 1024  # local/config.go defaultMaxFileSize
_LOCAL_MAX_FILES = 5  # defaultMaxFileCount
FILE_MODE = 0o640  # both drivers open their files 0640


class LogFileConfig(NamedTuple):
    path: str  # the current file; rotated ones are path.1, path.2.gz, ...
    max_size: int  # -1: never rotate
    max_files: int
    compress: bool
    attrs_enabled: bool  # json-file keeps log attributes (labels/env/tag) for --details


def parse_bool(value: str) -> bool:
    """strconv.ParseBool, with its error text."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def atoi(value: str) -> int:
    """strconv.Atoi, with its error text."""
    if not _ATOI.match(value):
        raise ValueError(f'strconv.Atoi: parsing "{value}": invalid syntax')
    n = int(value)
    if not -(1 << 63) <= n < (1 << 63):
        raise ValueError(f'strconv.Atoi: parsing "{value}": value out of range')
    return n


def _json_file(path: str, opts: dict[str, str]) -> LogFileConfig:
    """jsonfilelog.New: the option checks in its order."""
    cap = -1
    if "max-size" in opts:
        try:
            cap = from_human_size(opts["max-size"])
        except ValueError as e:
            raise errdefs.Untyped(str(e)) from None
        if cap <= 0:
            raise errdefs.Untyped("max-size must be a positive number")
    max_files = 1
    if "max-file" in opts:
        try:
            max_files = atoi(opts["max-file"])
        except ValueError as e:
            raise errdefs.Untyped(str(e)) from None
        if max_files < 1:
            raise errdefs.Untyped("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        try:
            compress = parse_bool(opts["compress"])
        except ValueError as e:
            raise errdefs.Untyped(str(e)) from None
        if compress and (max_files == 1 or cap == -1):
            raise errdefs.Untyped("compress cannot be true when max-file is less than 2 or max-size is not set")
    return LogFileConfig(path, cap, max_files, compress, True)


def _local(path: str, opts: dict[str, str]) -> LogFileConfig:
    """local.New and validateConfig (errdefs.InvalidParameter there, but start wraps it
    with fmt.Errorf, so the API answers 500 either way)."""
    cap, count, compress = _LOCAL_MAX_SIZE, _LOCAL_MAX_FILES, True
    if "max-size" in opts:
        try:
            cap = from_human_size(opts["max-size"])
        except ValueError as e:
            raise errdefs.Untyped(f"invalid value for max-size: {opts['max-size']}: {e}") from None
    if "max-file" in opts:
        try:
            count = atoi(opts["max-file"])
        except ValueError as e:
            raise errdefs.Untyped(f"invalid value for max-file: {opts['max-file']}: {e}") from None
    if "compress" in opts:
        try:
            compress = parse_bool(opts["compress"])
        except ValueError as e:
            raise errdefs.Untyped(f"error reading compress log option: {e}") from None
    if cap < 0:
        raise errdefs.Untyped("max size should be a positive number")
    if count < 0:
        raise errdefs.Untyped("max file count cannot be less than 0")
    if compress and count <= 1:
        raise errdefs.Untyped("compression cannot be enabled when max file count is 1")
    return LogFileConfig(path, cap, max(count, 1), compress, False)


def file_config(ctr_root: str, ctr_id: str, driver: str, opts: dict[str, str] | None) -> LogFileConfig | None:
    """The log files of a container with this driver, or None when nothing is kept
    (`none`, or another driver with `cache-disabled`). Raises Untyped with the driver's
    message for a bad option, as the logger's New does."""
    opts = opts or {}
    if driver == NONE:
        return None
    if driver == JSON_FILE:
        return _json_file(os.path.join(ctr_root, f"{ctr_id}-json.log"), opts)
    if driver == LOCAL:
        return _local(os.path.join(ctr_root, "local-logs", "container.log"), opts)
    disabled = opts.get("cache-disabled")
    if disabled is not None:
        try:
            if parse_bool(disabled):
                return None
        except ValueError:
            pass  # rejected at create already
    cache = {k[len("cache-"):]: v for k, v in opts.items() if k.startswith("cache-") and k != "cache-disabled"}
    return _local(os.path.join(ctr_root, "container-cached.log"), cache)


def inspect_log_path(ctr_root: str, ctr_id: str, driver: str) -> str:
    """container.LogPath as dockerd sets it when the logger starts: json-file only."""
    return os.path.join(ctr_root, f"{ctr_id}-json.log") if driver == JSON_FILE else ""


__all__ = ["FILE_MODE", "LogFileConfig", "atoi", "file_config", "inspect_log_path", "parse_bool"]


SHIPPING = ("syslog", "gelf", "fluentd", "journald")
PUMPED = (JSON_FILE, *SHIPPING)  # the drivers whose records the log pump writes


def uses_pump(name: str) -> bool:
    return name in PUMPED
