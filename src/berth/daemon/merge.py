"""Merging the image's config into the user's, and the log config
(moby/daemon/commit.go merge, daemon/create.go mergeAndVerifyConfig,
daemon/logs.go mergeAndVerifyLogConfig, daemon/logger/factory.go ValidateLogOpts).
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import msgspec

from .. import errdefs
from ..logger.validate import validate_driver_opts
from ..pkg.units import ram_in_bytes
from ..trace import traced
from ..types.container import Config, HealthConfig, LogConfig

if TYPE_CHECKING:
    from ..image.service import Image


@lru_cache(maxsize=256)
def _convert_image_config(raw: bytes) -> Config:
    return msgspec.json.decode(raw, type=Config)


def image_container_config(img: Image) -> Config | None:
    """The image's `config` as a Config; cached by its bytes, copied per use."""
    if not img.config:
        return None
    raw = msgspec.json.encode(img.config)
    return msgspec.structs.replace(_convert_image_config(raw))


def _copy(value: Any) -> Any:
    """A copy of an image's list or map (None and UNSET stay as they are)."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def merge(user: Config, image: Config) -> None:
    """commit.go merge: image values fill what the user left empty (Go's `len(x) == 0`,
    so an empty list or map is replaced by the image's value, even a nil one)."""
    if not user.User:
        user.User = image.User
    if not user.ExposedPorts:
        user.ExposedPorts = _copy(image.ExposedPorts)
    elif image.ExposedPorts:
        for p in image.ExposedPorts:
            user.ExposedPorts.setdefault(p, {})
    if not user.Env:
        user.Env = _copy(image.Env)
    else:
        used = {e.split("=", 1)[0] for e in user.Env}
        for e in image.Env or []:
            if e.split("=", 1)[0] not in used:
                user.Env.append(e)
    if user.Labels is None:
        user.Labels = {}
    for k, v in (image.Labels or {}).items():
        user.Labels.setdefault(k, v)
    if not user.Entrypoint:
        if not user.Cmd:
            user.Cmd = _copy(image.Cmd)
        if user.Entrypoint is None:
            user.Entrypoint = _copy(image.Entrypoint)
    ih = image.Healthcheck if isinstance(image.Healthcheck, HealthConfig) else None
    uh = user.Healthcheck if isinstance(user.Healthcheck, HealthConfig) else None
    if ih is not None:
        if uh is None:
            user.Healthcheck = msgspec.structs.replace(ih)
        else:
            for f in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
                if not getattr(uh, f):
                    setattr(uh, f, getattr(ih, f))
    if not user.WorkingDir:
        user.WorkingDir = image.WorkingDir
    if not user.Volumes:
        user.Volumes = _copy(image.Volumes)
    elif image.Volumes:
        for k in image.Volumes:
            user.Volumes.setdefault(k, {})
    if not user.StopSignal and image.StopSignal:
        user.StopSignal = image.StopSignal


@traced("mergeAndVerifyConfig", leaf=True)
def merge_and_verify_config(config: Config, image_config: Config | None) -> None:
    if image_config is not None:
        merge(config, image_config)
    if config.Entrypoint is not None and len(config.Entrypoint) == 1 and config.Entrypoint[0] == "":
        config.Entrypoint = None
    if not config.Entrypoint and not config.Cmd:
        raise errdefs.InvalidParameter("No command specified")


# Options every driver accepts; the factory filters them out before the driver's own check.
_BUILTIN_OPTS = {"mode", "max-buffer-size", "cache-disabled", "cache-max-file", "cache-max-size", "cache-compress"}
_CACHE_KEYS = ("cache-disabled", "cache-max-file", "cache-max-size", "cache-compress")


@traced("mergeAndVerifyLogConfig", leaf=True)
def merge_and_verify_log_config(cfg: LogConfig, default_type: str, default_opts: dict[str, str]) -> None:
    if not cfg.Type:
        cfg.Type = default_type
    if cfg.Config is None:
        cfg.Config = {}
    if cfg.Type == default_type:
        for k, v in default_opts.items():
            cfg.Config.setdefault(k, v)
    for k in _CACHE_KEYS:
        if k in default_opts:
            cfg.Config.setdefault(k, default_opts[k])
    validate_log_opts(cfg.Type, cfg.Config)


def validate_log_opts(name: str, opts: dict[str, str]) -> None:
    """factory.go ValidateLogOpts; every error is a 400."""
    if name == "none":
        return
    mode = opts.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise errdefs.InvalidParameter(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            raise errdefs.InvalidParameter("logger: max-buffer-size option is only supported with 'mode=non-blocking'")
        try:
            ram_in_bytes(opts["max-buffer-size"])
        except ValueError as e:
            raise errdefs.InvalidParameter(f"error parsing option max-buffer-size: {e}") from None
    if "cache-disabled" in opts and opts["cache-disabled"] not in (
        "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"
    ):
        raise errdefs.InvalidParameter(f"invalid value for option cache-disabled: {opts['cache-disabled']}")
    validate_driver_opts(name, {k: v for k, v in opts.items() if k not in _BUILTIN_OPTS})
