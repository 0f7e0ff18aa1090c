"""dockerd's seccomp profiles turned into OCI `linux.seccomp` (moby profiles/seccomp/).

moby keeps its default profile in its own format (profiles/seccomp/default.json): an arch
map, and syscall groups with `includes`/`excludes` conditions on the container's bounding
capabilities, the host architecture and the kernel version. `setupSeccomp`
(profiles/seccomp/seccomp_linux.go) filters those groups for one container and emits a plain
runtime-spec profile. We ship moby v20.10.24's default.json as `seccomp_default.json` and do the
same conversion at load time; the result for the default capability set is byte-for-byte the
`linux.seccomp` that dockerd 20.10.24 hands to runc (see tests/unit/test_runtime_spec.py).
"""
from __future__ import annotations

import functools
import importlib.resources
import os
import platform
import re
from collections.abc import Sequence

import msgspec

from berth.runtime import specs


class Arg(msgspec.Struct, rename="camel", omit_defaults=True):
    index: int = 0
    value: int = 0
    value_two: int = 0
    op: str = ""


class Filter(msgspec.Struct, rename="camel", omit_defaults=True):
    """`includes`/`excludes` of a syscall group (moby profiles/seccomp/seccomp.go Filter)."""

    caps: list[str] = []
    arches: list[str] = []
    min_kernel: str = ""


class Syscall(msgspec.Struct, rename="camel", omit_defaults=True):
    name: str = ""
    names: list[str] = []
    action: str = ""
    errno_ret: int | None = None
    args: list[Arg] | None = None
    comment: str = ""
    includes: Filter | None = None
    excludes: Filter | None = None


class Architecture(msgspec.Struct, rename="camel"):
    arch: str = msgspec.field(default="", name="architecture")
    sub_arches: list[str] = msgspec.field(default_factory=list, name="subArchitectures")


class Profile(msgspec.Struct, rename="camel", omit_defaults=True):
    """moby's profile format (profiles/seccomp/seccomp.go Seccomp)."""

    default_action: str = ""
    default_errno_ret: int | None = None
    architectures: list[str] = []
    arch_map: list[Architecture] = []
    syscalls: list[Syscall] = []


# libseccomp's arch name => seccomp arch (seccomp_linux.go nativeToSeccomp).
_NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}

# uname -m => libseccomp's name, standing in for moby's GOARCH => native map (goToNative):
# Python has no GOARCH, and the machine we run on is what matters.
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "mips64": "mips64",
}


def native_arch() -> str:
    """The host's architecture in libseccomp's spelling ("amd64"), or "" if unknown."""
    return _MACHINE_TO_NATIVE.get(platform.machine(), "")


_RELEASE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def parse_release(release: str) -> tuple[int, int, int]:
    """Kernel version triple from a release string (moby pkg/parsers/kernel ParseRelease)."""
    m = _RELEASE.match(release)
    if not m:
        raise ValueError(f"Can't parse kernel version {release}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@functools.lru_cache(maxsize=1)
def _host_kernel() -> tuple[int, int, int]:
    return parse_release(os.uname().release)


@functools.lru_cache(maxsize=1)
def _default_profile() -> Profile:
    data = importlib.resources.files("berth.runtime").joinpath("seccomp_default.json").read_bytes()
    return msgspec.json.decode(data, type=Profile)


def default_profile() -> Profile:
    """moby's default profile in its own format (profiles/seccomp/default.go DefaultProfile)."""
    return _default_profile()


def load_profile(body: str | bytes) -> Profile:
    """Decode a user profile (`--security-opt seccomp=<json>`), as moby's LoadProfile."""
    try:
        return msgspec.json.decode(body, type=Profile)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ValueError(f"Decoding seccomp profile failed: {e}") from e


def setup_seccomp(
    config: Profile,
    bounding: Sequence[str],
    *,
    arch: str | None = None,
    kernel: tuple[int, int, int] | None = None,
) -> specs.LinuxSeccomp | None:
    """Filter a moby-format profile for one container (seccomp_linux.go setupSeccomp).

    `bounding` is the container's bounding capability set; `arch` (libseccomp spelling) and
    `kernel` default to the host's. Returns None when the profile disables seccomp (no
    default action and no syscalls). Raises ValueError with moby's messages for profiles
    that give both `architectures` and `archMap`, or both `name` and `names`.
    """
    if not config.default_action and not config.syscalls:
        return None
    if config.architectures and config.arch_map:
        raise ValueError(
            "'architectures' and 'archMap' were specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'")
    native = native_arch() if arch is None else arch
    kver = _host_kernel() if kernel is None else kernel
    caps = set(bounding)

    architectures = list(config.architectures)
    seccomp_arch = _NATIVE_TO_SECCOMP.get(native)
    if config.arch_map and seccomp_arch is not None:
        for a in config.arch_map:
            if a.arch == seccomp_arch:
                architectures.append(a.arch)
                architectures.extend(a.sub_arches)
                break

    out: list[specs.LinuxSyscall] = []
    for call in config.syscalls:
        ex, inc = call.excludes, call.includes
        if ex is not None:
            if ex.arches and native in ex.arches:
                continue
            if ex.caps and any(c in caps for c in ex.caps):
                continue
            if ex.min_kernel and kver >= parse_release(ex.min_kernel):
                continue
        if inc is not None:
            if inc.arches and native not in inc.arches:
                continue
            if inc.caps and not all(c in caps for c in inc.caps):
                continue
            if inc.min_kernel and kver < parse_release(inc.min_kernel):
                continue
        names = list(call.names)
        if call.name:
            if names:
                raise ValueError(
                    "'name' and 'names' were specified in the seccomp profile, "
                    "use either 'name' or 'names'")
            names = [call.name]
        out.append(specs.LinuxSyscall(
            names=names,
            action=call.action,
            errno_ret=call.errno_ret,
            args=[specs.LinuxSeccompArg(index=a.index, value=a.value, value_two=a.value_two, op=a.op)
                  for a in call.args or ()],
        ))
    return specs.LinuxSeccomp(
        default_action=config.default_action,
        default_errno_ret=config.default_errno_ret,
        architectures=architectures,
        syscalls=out,
    )


def default_seccomp_profile(
    bounding: Sequence[str],
    *,
    arch: str | None = None,
    kernel: tuple[int, int, int] | None = None,
) -> specs.LinuxSeccomp:
    """dockerd's built-in profile for a container with this bounding set (GetDefaultProfile)."""
    result = setup_seccomp(_default_profile(), bounding, arch=arch, kernel=kernel)
    assert result is not None  # the shipped profile has a default action
    return result
