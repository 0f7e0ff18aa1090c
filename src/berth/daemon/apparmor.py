"""AppArmor for containers (moby daemon/apparmor_default.go, daemon/container_linux.go
saveAppArmorConfig, daemon/oci_linux.go WithApparmor; containerd pkg/apparmor HostSupports).

On a host with AppArmor a container runs under its `--security-opt apparmor=NAME`
profile, `unconfined` when privileged, else `docker-default`, and inspect shows that name
from its first start on; without AppArmor the spec names no profile and inspect shows "".
Berth does not load profiles (dockerd's ensureDefaultAppArmorProfile installs
docker-default with apparmor_parser): on an AppArmor host that profile must already be
loaded, or the runtime refuses to start the container.
"""
from __future__ import annotations

import functools
import os
import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..container.container import Container

DEFAULT_PROFILE = "docker-default"  # defaultAppArmorProfile
UNCONFINED_PROFILE = "unconfined"  # unconfinedAppArmorProfile


def host_supports(sys_root: str = "/sys", parser: str | None = None) -> bool:
    """HostSupports: securityfs shows AppArmor, the module says `Y`, and apparmor_parser
    exists (`parser` overrides the PATH lookup, for tests)."""
    if not os.path.exists(os.path.join(sys_root, "kernel/security/apparmor")):
        return False
    try:
        with open(os.path.join(sys_root, "module/apparmor/parameters/enabled"), "rb") as f:
            buf = f.read()
    except OSError:
        return False
    if len(buf) <= 1 or buf[:1] != b"Y":
        return False
    return (parser if parser is not None else shutil.which("apparmor_parser")) is not None


@functools.lru_cache(maxsize=1)
def enabled() -> bool:
    """daemon.apparmorEnabled, probed once per process."""
    return host_supports()


def _security_opt_profile(security_opt: list[str] | None) -> str:
    """parseSecurityOpt's `apparmor=NAME` (or the legacy `apparmor:NAME`); the last wins.
    The options were validated at create."""
    profile = ""
    for opt in security_opt or []:
        for sep in ("=", ":"):
            key, found, value = opt.partition(sep)
            if found and key == "apparmor":
                profile = value
                break
    return profile


def spec_profile(ctr: Container, is_enabled: bool) -> str:
    """WithApparmor: process.apparmorProfile ("" = none, also when AppArmor is off)."""
    if not is_enabled:
        return ""
    if ctr.AppArmorProfile:
        return ctr.AppArmorProfile
    return UNCONFINED_PROFILE if ctr.host_config.Privileged else DEFAULT_PROFILE


def save_app_armor_config(ctr: Container, is_enabled: bool) -> None:
    """saveAppArmorConfig (at each start, after createSpec): the profile inspect shows."""
    ctr.AppArmorProfile = ""
    if not is_enabled:
        return
    if ctr.host_config.Privileged:
        ctr.AppArmorProfile = UNCONFINED_PROFILE
        return
    ctr.AppArmorProfile = _security_opt_profile(ctr.host_config.SecurityOpt) or DEFAULT_PROFILE
