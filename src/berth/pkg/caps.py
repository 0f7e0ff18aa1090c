"""Capability names (moby/oci/caps/utils.go)."""
from __future__ import annotations

# The kernel's list as dockerd 20.10 knows it, capped at CAP_AUDIT_READ.
ALL_CAPABILITIES: tuple[str, ...] = tuple(
    "CAP_" + n
    for n in [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ"
    ]
)
_KNOWN = frozenset(ALL_CAPABILITIES)


def normalize_legacy_capabilities(caps: list[str] | None) -> list[str]:
    """NormalizeLegacyCapabilities: upper-case, add `CAP_`, check the name.

    Raises ValueError(`unknown capability: "CAP_FOO"`).
    """
    out: list[str] = []
    for c in caps or []:
        c = c.upper()
        if c == "ALL":
            out.append(c)
            continue
        if not c.startswith("CAP_"):
            c = "CAP_" + c
        if c not in _KNOWN:
            raise ValueError(f'unknown capability: "{c}"')
        out.append(c)
    return out
