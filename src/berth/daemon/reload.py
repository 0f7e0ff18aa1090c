"""SIGHUP: the configuration reloaded (moby daemon/reload.go Reload, daemon/reload_unix.go
reloadPlatform, cmd/dockerd reloadConfig).

dockerd reads its configuration file again, alone: the flags count only to refuse a key
given both ways, so an option the file leaves out either keeps its value (the keys below
that dockerd checks with IsValueSet) or goes back to its default (the transfer limits,
which dockerd "always resets"). The new file is validated first (__main__.reload_config);
an invalid one is logged and changes nothing. What a running daemon takes, in dockerd's
order:

- `runtimes` (runc is always kept; Berth also keeps the runc and crun found on PATH; one
  with `runtimeArgs` runs through a script that adds them, as dockerd's),
  `default-runtime` (when non-empty), `default-shm-size`, `default-cgroupns-mode` and
  `default-ipc-mode` (when non-empty): used by the containers created from then on;
- `debug`: `docker info`'s Debug and the log level (debug on; off means info, as
  dockerd's debug.Disable);
- `max-concurrent-downloads`/`-uploads` (SetConcurrency on the transfer managers) and
  `max-download-attempts` (into the configuration only: dockerd never hands the new value
  to its download manager);
- `shutdown-timeout`: how long the daemon's shutdown waits for its containers;
- `labels`; `allow-nondistributable-artifacts`, `insecure-registries`, `registry-mirrors` (and Berth's
  `berth-registry-mirrors`); `live-restore`: whether a shutdown leaves containers running.

The `reload` daemon event carries every reloaded value, as dockerd's attributes. dockerd
also reloads cluster discovery, `features` and the network diagnostic port, which Berth
does not have: their attributes carry the values of
a daemon without them, as dockerd's do when they are not configured.
"""
from __future__ import annotations

import json
import logging
import socket
from typing import Any

import msgspec

from ..config import STOCK_RUNTIME_NAME, DaemonConfig, Runtime
from ..registry.config import ServiceConfig
from .image_distribution import distribution_service

log = logging.getLogger("berth.daemon")


def _list(values: list[str]) -> str:
    return json.dumps(values, separators=(",", ":")) if values else "[]"  # Go's json.Marshal


def reload(d: Any, new: DaemonConfig, set_keys: set[str]) -> dict[str, str]:
    """Apply the reloaded file configuration `new` (`set_keys`: the keys it sets) to the
    running daemon and log the `reload` event; its attributes. Raises ValueError (nothing
    changed) when a setting cannot be used."""
    cfg: DaemonConfig = d.config
    registry = _registry(d, new, set_keys)  # the one check that can still refuse: before any change
    attrs: dict[str, str] = {}
    _platform(d, new, set_keys, attrs)
    was_debug = cfg.debug
    if "debug" in set_keys:  # reloadDebug
        cfg.debug = new.debug
    attrs["debug"] = "true" if cfg.debug else "false"
    _transfers(d, new, attrs)
    if "shutdown-timeout" in set_keys:
        cfg.shutdown_timeout = new.shutdown_timeout
        log.debug("Reset Shutdown Timeout: %d", cfg.shutdown_timeout)
    attrs["shutdown-timeout"] = str(cfg.shutdown_timeout)
    attrs["features"] = "map[]"  # Berth has no feature flags
    attrs["cluster-store"] = attrs["cluster-advertise"] = ""  # nor cluster discovery
    attrs["cluster-store-opts"] = "null"
    if "labels" in set_keys:
        cfg.labels = list(new.labels)
    attrs["labels"] = _list(cfg.labels)
    _apply_registry(d, registry, new, set_keys, attrs)
    if "live-restore" in set_keys:
        cfg.live_restore = new.live_restore
    attrs["live-restore"] = "true" if cfg.live_restore else "false"
    log.info("Reloaded configuration: %s", json.dumps(_loggable(cfg), separators=(",", ":")))
    attrs = dict(sorted(attrs.items()))  # Go marshals a map's keys in order
    d.events.log_daemon_event(d.engine_id, socket.gethostname(), "reload", attrs)
    # reloadConfig, once Reload succeeded: debug.Enable / debug.Disable (the info level)
    if cfg.debug != was_debug:
        logging.getLogger().setLevel(logging.DEBUG if cfg.debug else logging.INFO)
    return attrs


def _loggable(cfg: DaemonConfig) -> dict[str, Any]:
    return msgspec.to_builtins(cfg)


def _platform(d: Any, new: DaemonConfig, set_keys: set[str], attrs: dict[str, str]) -> None:
    """reloadPlatform: the runtimes and the defaults of new containers."""
    cfg: DaemonConfig = d.config
    if "runtimes" in set_keys:
        cfg.runtimes = dict(new.runtimes)
        d.lifecycle.configure(cfg.runtimes)
        d.runtimes = {"runc", "crun", *d.lifecycle.paths}
    if new.default_runtime:
        cfg.default_runtime = new.default_runtime
        d.default_runtime = d.lifecycle.default = new.default_runtime
    if "default-shm-size" in set_keys:
        cfg.default_shm_size = new.default_shm_size
    if new.default_cgroupns_mode and "default-cgroupns-mode" in set_keys:
        cfg.default_cgroupns_mode = new.default_cgroupns_mode
    if new.default_ipc_mode and "default-ipc-mode" in set_keys:
        cfg.default_ipc_mode = new.default_ipc_mode
    runtimes = {STOCK_RUNTIME_NAME: Runtime(path=STOCK_RUNTIME_NAME), **cfg.runtimes}
    # dockerd lists its map in Go's (random) order; here by name
    attrs["runtimes"] = " ".join(f"{name}:{rt.path}" for name, rt in sorted(runtimes.items()))
    attrs["default-runtime"] = d.default_runtime
    attrs["default-shm-size"] = str(cfg.default_shm_size)
    attrs["default-ipc-mode"] = cfg.default_ipc_mode
    attrs["default-cgroupns-mode"] = cfg.default_cgroupns_mode or ("private" if d.sysinfo.cgroup_v2 else "host")


def _transfers(d: Any, new: DaemonConfig, attrs: dict[str, str]) -> None:
    """reloadMaxConcurrentDownloadsAndUploads, reloadMaxDownloadAttempts: reset to the file's
    values or the defaults (`new` holds the defaults for what the file leaves out)."""
    cfg: DaemonConfig = d.config
    cfg.max_concurrent_downloads = new.max_concurrent_downloads
    cfg.max_concurrent_uploads = new.max_concurrent_uploads
    cfg.max_download_attempts = new.max_download_attempts
    svc = distribution_service(d)
    svc.downloads.set_concurrency(cfg.max_concurrent_downloads)
    svc.uploads.set_concurrency(cfg.max_concurrent_uploads)
    log.debug("Reset Max Concurrent Downloads: %d", cfg.max_concurrent_downloads)
    log.debug("Reset Max Concurrent Uploads: %d", cfg.max_concurrent_uploads)
    log.debug("Reset Max Download Attempts: %d", cfg.max_download_attempts)
    attrs["max-concurrent-downloads"] = str(cfg.max_concurrent_downloads)
    attrs["max-concurrent-uploads"] = str(cfg.max_concurrent_uploads)
    attrs["max-download-attempts"] = str(cfg.max_download_attempts)


def _registry(d: Any, new: DaemonConfig, set_keys: set[str]) -> ServiceConfig:
    """The registry service configuration the reload makes (ValueError if a mirror is refused)."""
    cfg: DaemonConfig = d.config
    svc = distribution_service(d)
    insecure = list(new.insecure_registries) if "insecure-registries" in set_keys else list(cfg.insecure_registries)
    mirrors = list(new.registry_mirrors) if "registry-mirrors" in set_keys else list(cfg.registry_mirrors)
    by_host = (dict(new.berth_registry_mirrors) if "berth-registry-mirrors" in set_keys
               else dict(cfg.berth_registry_mirrors))
    allow = (list(new.allow_nondistributable_artifacts) if "allow-nondistributable-artifacts" in set_keys
             else list(cfg.allow_nondistributable_artifacts))
    try:
        return ServiceConfig(insecure_registries=insecure, mirrors=mirrors, registry_mirrors_by_host=by_host,
                             allow_nondistributable_artifacts=allow, certs_dirs=svc.registry.certs_dirs)
    except Exception as e:  # validate_mirror's refusals, whatever their class
        raise ValueError(str(e)) from None


def _apply_registry(d: Any, registry: ServiceConfig, new: DaemonConfig, set_keys: set[str],
                    attrs: dict[str, str]) -> None:
    """reloadAllowNondistributableArtifacts, reloadInsecureRegistries, reloadRegistryMirrors."""
    cfg: DaemonConfig = d.config
    distribution_service(d).registry = registry
    if "allow-nondistributable-artifacts" in set_keys:
        cfg.allow_nondistributable_artifacts = list(new.allow_nondistributable_artifacts)
    attrs["allow-nondistributable-artifacts"] = _list(cfg.allow_nondistributable_artifacts)
    if "insecure-registries" in set_keys:
        cfg.insecure_registries = list(new.insecure_registries)
    if "registry-mirrors" in set_keys:
        cfg.registry_mirrors = list(new.registry_mirrors)
    if "berth-registry-mirrors" in set_keys:
        cfg.berth_registry_mirrors = dict(new.berth_registry_mirrors)
    attrs["insecure-registries"] = _list(cfg.insecure_registries)
    attrs["registry-mirrors"] = _list(cfg.registry_mirrors)
