"""Platform specifiers (containerd/platforms, as vendored in moby v20.10.24:
platforms.go Parse/Format/Normalize, database.go normalizeOS/normalizeArch/isKnownOS/
isKnownArch, compare.go Only; moby daemon/images/image.go OnlyPlatformWithFallback).

Parse errors are InvalidParameter with containerd's text plus its ": invalid argument"
suffix (errors.Wrapf(errdefs.ErrInvalidArgument, ...)).
"""
from __future__ import annotations

import os
import re
from typing import NamedTuple

from .. import errdefs

_SPECIFIER = re.compile(r"^[A-Za-z0-9_-]+$")
_KNOWN_OS = frozenset(
    [
        "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl", "netbsd",
        "openbsd", "plan9", "solaris", "windows", "zos"
    ]
)
_KNOWN_ARCH = frozenset(
    [
        "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64", "mips",
        "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x",
        "sparc", "sparc64", "wasm"
    ]
)
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x"}
HOST_OS = "linux"
HOST_ARCH = _GOARCH.get(os.uname().machine, os.uname().machine)


class Platform(NamedTuple):
    """specs.Platform, less OSVersion/OSFeatures (unused on Linux)."""

    OS: str
    Architecture: str
    Variant: str = ""


def _invalid(msg: str) -> errdefs.InvalidParameter:
    return errdefs.InvalidParameter(f"{msg}: invalid argument")


def _go_q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def normalize_os(os_: str) -> str:
    os_ = os_.lower()
    return "darwin" if os_ == "macos" else os_


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64"):
        return "amd64", ""
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def parse(specifier: str) -> Platform:
    """platforms.Parse: `os`, `arch`, `os/arch` or `os/arch/variant`."""
    if "*" in specifier:
        raise _invalid(f"{_go_q(specifier)}: wildcards not yet supported")
    parts = specifier.split("/")
    for part in parts:
        if not _SPECIFIER.match(part):
            raise _invalid(
                f"{_go_q(part)} is an invalid component of {_go_q(specifier)}: "
                f"platform specifier component must match {_go_q(_SPECIFIER.pattern)}"
            )
    if len(parts) == 1:
        os_ = normalize_os(parts[0])
        if os_ in _KNOWN_OS:
            return Platform(os_, HOST_ARCH)
        arch, variant = normalize_arch(parts[0], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if arch in _KNOWN_ARCH:
            return Platform(HOST_OS, arch, variant)
        raise _invalid(f"{_go_q(specifier)}: unknown operating system or architecture")
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return Platform(normalize_os(parts[0]), arch, variant)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        if arch == "arm64" and variant == "":
            variant = "v8"
        return Platform(normalize_os(parts[0]), arch, variant)
    raise _invalid(f"{_go_q(specifier)}: cannot parse platform specifier")


def format_platform(p: Platform) -> str:
    """platforms.Format: the non-empty parts joined by `/` (`unknown` with no OS)."""
    if not p.OS:
        return "unknown"
    return "/".join(x for x in (p.OS, p.Architecture, p.Variant) if x)


def normalize(p: Platform) -> Platform:
    arch, variant = normalize_arch(p.Architecture, p.Variant)
    return Platform(normalize_os(p.OS), arch, variant)


def _only(p: Platform) -> list[Platform]:
    """platforms.Only: the platform, plus older arm variants it can run."""
    p = normalize(p)
    if p.Architecture == "arm":
        lower = {"v8": ("v7", "v6", "v5"), "v7": ("v6", "v5"), "v6": ("v5",)}.get(p.Variant, ())
        return [p, *(Platform(p.OS, "arm", v) for v in lower)]
    return [p]


def only_with_fallback_match(want: Platform, have: Platform) -> bool:
    """OnlyPlatformWithFallback(want).Match(have): an image without a variant also
    matches a wanted platform that has one."""
    candidates = _only(want)
    h = normalize(have)
    if h in candidates:
        return True
    if have.Variant == "":
        return any(h.OS == c.OS and h.Architecture == c.Architecture for c in candidates)
    return False


__all__ = ["Platform", "parse", "format_platform", "normalize", "only_with_fallback_match", "HOST_ARCH", "HOST_OS"]
