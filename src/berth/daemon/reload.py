"""SIGHUP: the registry settings reloaded (moby/daemon/reload.go Reload, for the part of it
that concerns registries and transfers).

dockerd reads its configuration file again (the flags still count, and a key given both
ways is refused), then applies what can change on a running daemon. Berth applies the
registry part: `allow-nondistributable-artifacts`, `insecure-registries` and
`registry-mirrors` (and Berth's
`berth-registry-mirrors`) where the file sets them (a key left out keeps its value, as
IsValueSet decides in dockerd), `max-concurrent-downloads`/`-uploads` reset to the file's
values or the defaults (SetConcurrency on the transfer managers), and
`max-download-attempts` into the configuration only (dockerd never hands the new value to
its download manager). A `reload` daemon event carries the new values; an invalid setting
changes nothing. The other options dockerd reloads (debug, labels, runtimes, live-restore,
shutdown-timeout) are not reloaded by Berth.
"""
from __future__ import annotations

import json
import socket
from typing import Any

from ..config import DaemonConfig
from ..registry.config import ServiceConfig
from .image_distribution import distribution_service


def _list(values: list[str]) -> str:
    return json.dumps(values, separators=(",", ":")) if values else "[]"  # Go's json.Marshal


def reload_registry(d: Any, new: DaemonConfig, set_keys: set[str]) -> dict[str, str]:
    """Apply `new`'s registry settings to the running daemon; the reload event's attributes.
    Raises ValueError (nothing changed) when a setting is invalid."""
    cfg: DaemonConfig = d.config
    svc = distribution_service(d)
    insecure = list(new.insecure_registries) if "insecure-registries" in set_keys else list(cfg.insecure_registries)
    mirrors = list(new.registry_mirrors) if "registry-mirrors" in set_keys else list(cfg.registry_mirrors)
    by_host = (dict(new.berth_registry_mirrors) if "berth-registry-mirrors" in set_keys
               else dict(cfg.berth_registry_mirrors))
    allow = (list(new.allow_nondistributable_artifacts) if "allow-nondistributable-artifacts" in set_keys
             else list(cfg.allow_nondistributable_artifacts))
    try:
        registry = ServiceConfig(insecure_registries=insecure, mirrors=mirrors, registry_mirrors_by_host=by_host,
                                 allow_nondistributable_artifacts=allow, certs_dirs=svc.registry.certs_dirs)
    except Exception as e:  # validate_mirror's refusals, whatever their class
        raise ValueError(str(e)) from None
    svc.registry = registry
    cfg.insecure_registries, cfg.registry_mirrors, cfg.berth_registry_mirrors = insecure, mirrors, by_host
    cfg.allow_nondistributable_artifacts = allow
    cfg.max_concurrent_downloads = new.max_concurrent_downloads
    cfg.max_concurrent_uploads = new.max_concurrent_uploads
    cfg.max_download_attempts = new.max_download_attempts
    svc.downloads.set_concurrency(cfg.max_concurrent_downloads)
    svc.uploads.set_concurrency(cfg.max_concurrent_uploads)
    attrs = {
        "allow-nondistributable-artifacts": _list(allow),
        "max-concurrent-downloads": str(cfg.max_concurrent_downloads),
        "max-concurrent-uploads": str(cfg.max_concurrent_uploads),
        "max-download-attempts": str(cfg.max_download_attempts),
        "insecure-registries": _list(insecure),
        "registry-mirrors": _list(mirrors),
    }
    d.events.log_daemon_event(d.engine_id, socket.gethostname(), "reload", attrs)
    return attrs
