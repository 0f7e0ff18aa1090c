"""AppArmor for containers (moby daemon/apparmor_default.go, daemon/container_linux.go
saveAppArmorConfig, daemon/oci_linux.go WithApparmor; containerd pkg/apparmor HostSupports).

On a host with AppArmor a container runs under its `--security-opt apparmor=NAME`
profile, `unconfined` when privileged, else `docker-default`, and inspect shows that name
from its first start on; without AppArmor the spec names no profile and inspect shows "".
docker-default is generated from moby's template (profiles/apparmor) for the host's
apparmor_parser version and loaded with `apparmor_parser -Kr` at daemon start and again at
any start that uses it when something unloaded it (ensureDefaultAppArmorProfile). A profile
named with --security-opt must be loaded by the user; the runtime refuses it otherwise.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
from typing import TYPE_CHECKING

from .. import errdefs

if TYPE_CHECKING:
    from ..container.container import Container

DEFAULT_PROFILE = "docker-default"  # defaultAppArmorProfile
UNCONFINED_PROFILE = "unconfined"  # unconfinedAppArmorProfile
PROFILE_DIRECTORY = "/etc/apparmor.d"  # profileDirectory: where the macros live
PROFILES_FILE = "/sys/kernel/security/apparmor/profiles"

# moby v20.10.24 profiles/apparmor/template.go baseTemplate, verbatim (a Go text/template;
# render_template below handles the four constructs it uses).
BASE_TEMPLATE = """
{{range $value := .Imports}}
{{$value}}
{{end}}

profile {{.Name}} flags=(attach_disconnected,mediate_deleted) {
{{range $value := .InnerImports}}
  {{$value}}
{{end}}

  network,
  capability,
  file,
  umount,
{{if ge .Version 208096}}
  # Host (privileged) processes may send signals to container processes.
  signal (receive) peer=unconfined,
  # dockerd may send signals to container processes (for "docker kill").
  signal (receive) peer={{.DaemonProfile}},
  # Container processes may send signals amongst themselves.
  signal (send,receive) peer={{.Name}},
{{end}}

  deny @{PROC}/* w,   # deny write for all files directly in /proc (not in a subdir)
  # deny write to files not in /proc/<number>/** or /proc/sys/**
  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,
  deny @{PROC}/sys/[^k]** w,  # deny /proc/sys except /proc/sys/k* (effectively /proc/sys/kernel)
  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,  # deny everything except shm* in /proc/sys/kernel/
  deny @{PROC}/sysrq-trigger rwklx,
  deny @{PROC}/kcore rwklx,

  deny mount,

  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,

{{if ge .Version 208095}}
  # suppress ptrace denials when using 'docker ps' or using 'ps' inside a container
  ptrace (trace,read,tracedby,readby) peer={{.Name}},
{{end}}
}
"""

_RANGE = re.compile(r"\{\{range \$value := \.(\w+)\}\}(.*?)\{\{end\}\}", re.DOTALL)
_IF_GE = re.compile(r"\{\{if ge \.Version (\d+)\}\}(.*?)\{\{end\}\}", re.DOTALL)
_FIELD = re.compile(r"\{\{\.(\w+)\}\}")


def render_template(tmpl: str, data: dict[str, object]) -> str:
    """Go's text/template for the constructs baseTemplate uses: `range $value := .List`,
    `if ge .Version N`, `{{.Field}}` (same output bytes as template.Execute)."""
    def rng(m: re.Match[str]) -> str:
        items = data[m.group(1)]
        assert isinstance(items, list)
        return "".join(m.group(2).replace("{{$value}}", str(v)) for v in items)

    def if_ge(m: re.Match[str]) -> str:
        version = data["Version"]
        assert isinstance(version, int)
        return m.group(2) if version >= int(m.group(1)) else ""

    out = _IF_GE.sub(if_ge, _RANGE.sub(rng, tmpl))
    return _FIELD.sub(lambda m: str(data[m.group(1)]), out)


def parse_parser_version(output: str) -> int:
    """aaparser.parseVersion: "AppArmor parser version 2.9.1" → major*1e5 + minor*1e3 + patch
    (a "-beta1" or "~..." suffix dropped)."""
    words = output.split("\n", 1)[0].split(" ")
    version = words[-1].split("-", 1)[0].split("~", 1)[0]
    v = version.split(".")
    if len(v) > 3:
        raise ValueError(f"parsing version failed for output: `{output}`")
    nums = []
    for part in v:
        try:
            nums.append(int(part))
        except ValueError:
            raise ValueError(f"parsing version failed for output: `{output}`") from None
    nums += [0] * (3 - len(nums))
    return nums[0] * 100_000 + nums[1] * 1_000 + nums[2]


def generate_default(name: str, daemon_profile: str, version: int,
                     profile_dir: str = PROFILE_DIRECTORY) -> str:
    """profileData.generateDefault: the tunables/base includes when the host has them."""
    imports = (["#include <tunables/global>"] if os.path.exists(os.path.join(profile_dir, "tunables/global"))
               else ["@{PROC}=/proc/"])
    inner = ["#include <abstractions/base>"] if os.path.exists(os.path.join(profile_dir, "abstractions/base")) else []
    return render_template(BASE_TEMPLATE, {"Name": name, "DaemonProfile": daemon_profile, "Imports": imports,
                                           "InnerImports": inner, "Version": version})


def _parser_cmd(*args: str) -> str:
    """aaparser's cmd: apparmor_parser's combined output, or dockerd's wording of its failure."""
    binary = shutil.which("apparmor_parser") or "apparmor_parser"
    try:
        p = subprocess.run([binary, *args], check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"running `{binary} apparmor_parser {' '.join(args)}` failed with output: \nerror: {e}") from None
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"running `{binary} apparmor_parser {' '.join(args)}` failed with output: {out}\n"
                           f"error: exit status {p.returncode}")
    return out


def daemon_profile(current: str = "/proc/self/attr/current") -> str:
    """The daemon's own profile ("unconfined" unless confined), for the signal rule."""
    try:
        with open(current, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    # "name (enforce)\n": profile names hold no spaces.
    return text.split(" ", 1)[0].strip() or UNCONFINED_PROFILE


def install_default(name: str) -> None:
    """InstallDefault: generate the profile into a temporary file and load it (-Kr: replace,
    skip the cache)."""
    version = parse_parser_version(_parser_cmd("--version"))
    text = generate_default(name, daemon_profile(), version)
    fd, path = tempfile.mkstemp(prefix=name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        _parser_cmd("-Kr", path)
    finally:
        os.unlink(path)


def is_loaded(name: str, profiles_file: str = PROFILES_FILE) -> bool:
    """IsLoaded: a line `NAME (mode)` in securityfs's profile list."""
    with open(profiles_file, encoding="utf-8", errors="replace") as f:
        return any(line.startswith(name + " ") for line in f)


_ensure_lock = threading.Lock()


def ensure_default_profile() -> None:
    """ensureDefaultAppArmorProfile (blocking): load docker-default unless it is loaded.
    Raises RuntimeError with dockerd's message."""
    if not enabled():
        return
    with _ensure_lock:
        try:
            loaded = is_loaded(DEFAULT_PROFILE)
        except OSError as e:
            raise RuntimeError(f"Could not check if {DEFAULT_PROFILE} AppArmor profile was loaded: {e}") from None
        if loaded:
            return
        try:
            install_default(DEFAULT_PROFILE)
        except (RuntimeError, ValueError, OSError) as e:
            raise RuntimeError(f"AppArmor enabled on system but the {DEFAULT_PROFILE} profile "
                               f"could not be loaded: {e}") from None


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


def with_apparmor(ctr: Container, is_enabled: bool) -> str:
    """WithApparmor (blocking): the spec's profile; docker-default is (re)loaded first when
    something unloaded it (unattended upgrades do). A failure is createSpec's error."""
    profile = spec_profile(ctr, is_enabled)
    if profile == DEFAULT_PROFILE:
        try:
            ensure_default_profile()
        except RuntimeError as e:
            raise errdefs.System(str(e)) from None
    elif profile and profile != UNCONFINED_PROFILE:
        # The runtime's own error only says that it could not write /proc/.../attr/exec;
        # name the profile instead (dockerd leaves it to runc's message).
        try:
            loaded = is_loaded(profile)
        except OSError:
            loaded = True  # cannot tell: let the runtime decide
        if not loaded:
            raise errdefs.System(f'AppArmor profile "{profile}" is not loaded: load it with apparmor_parser first')
    return profile


def save_app_armor_config(ctr: Container, is_enabled: bool) -> None:
    """saveAppArmorConfig (at each start, after createSpec): the profile inspect shows."""
    ctr.AppArmorProfile = ""
    if not is_enabled:
        return
    if ctr.host_config.Privileged:
        ctr.AppArmorProfile = UNCONFINED_PROFILE
        return
    ctr.AppArmorProfile = _security_opt_profile(ctr.host_config.SecurityOpt) or DEFAULT_PROFILE
