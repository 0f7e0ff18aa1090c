"""The image config and its views (moby/image/image.go, moby/image/rootfs.go,
moby/api/types/container/config.go for the key order of `Config`).

An image's ID is the sha256 of its config JSON exactly as stored (`raw`), so the
bytes are kept verbatim and everything else is derived from them.
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from .. import errdefs

# container.Config in Go declaration order; the second item says whether the field is
# `omitempty` (absent when empty) rather than always written.
_CONFIG_FIELDS: tuple[tuple[str, bool], ...] = (
    ("Hostname", False), ("Domainname", False), ("User", False), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", True), ("Tty", False),
    ("OpenStdin", False), ("StdinOnce", False), ("Env", False), ("Cmd", False), ("Healthcheck", True),
    ("ArgsEscaped", True), ("Image", False), ("Volumes", False), ("WorkingDir", False),
    ("Entrypoint", False), ("NetworkDisabled", True), ("MacAddress", True), ("OnBuild", False),
    ("Labels", False), ("StopSignal", True), ("StopTimeout", True), ("Shell", True),
)
_ZERO: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}
_HEALTHCHECK_FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")
_LOWER = {name.lower(): name for name, _ in _CONFIG_FIELDS}


def _empty(v: Any) -> bool:
    return v is None or v == "" or v is False or v == 0 or v == [] or v == {}


def normalize_config(raw: Any) -> dict[str, Any] | None:
    """A decoded `config` object re-encoded as Go's container.Config would encode it.

    Keys match case-insensitively (Go's decoder), unknown keys are dropped, the
    always-written fields are filled with their zero values, and `omitempty` fields
    appear only when set. StrSlice fields accept a plain string, as Go's StrSlice does.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return dict(_ZERO)
    src: dict[str, Any] = {}
    for k, v in raw.items():
        name = k if k in _ZERO or any(k == f for f, _ in _CONFIG_FIELDS) else _LOWER.get(k.lower())
        if name is not None:
            src[name] = v
    out: dict[str, Any] = {}
    for name, omitempty in _CONFIG_FIELDS:
        v = src.get(name, _ZERO.get(name))
        if name in ("Cmd", "Entrypoint", "Shell") and isinstance(v, str):
            v = [v]
        if name == "Healthcheck" and isinstance(v, dict):
            v = {f: v[f] for f in _HEALTHCHECK_FIELDS if not _empty(v.get(f))}
        if omitempty and _empty(v):
            continue
        out[name] = v
    return out


def parse_go_time(value: str) -> datetime | None:
    """RFC 3339 with up to nanoseconds; returns an aware datetime (nanoseconds truncated)."""
    if not value:
        return None
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    if "." in v:
        head, rest = v.split(".", 1)
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        v = head + "." + rest[:i][:6].ljust(6, "0") + rest[i:]
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def unix_seconds(value: str) -> int:
    dt = parse_go_time(value)
    if dt is None:
        return -62135596800  # Go's zero time .Unix()
    return int(dt.timestamp() // 1)


class Image:
    """One image: the config bytes, their ID, and the parsed fields dockerd reads."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.id = "sha256:" + hashlib.sha256(raw).hexdigest()
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise errdefs.InvalidParameter(f"failed to parse image config: {e}") from e
        if not isinstance(doc, dict):
            raise errdefs.InvalidParameter("invalid image JSON, no RootFS key")
        self.doc: dict[str, Any] = doc
        rootfs = doc.get("rootfs")
        if not isinstance(rootfs, dict):
            # image.NewFromJSON: `errors.New("invalid image JSON, no RootFS key")`
            raise errdefs.InvalidParameter("invalid image JSON, no RootFS key")
        self.rootfs_type: str = rootfs.get("type") or ""
        self.diff_ids: list[str] = list(rootfs.get("diff_ids") or [])
        self.config: dict[str, Any] = doc.get("config") or {}
        self.container_config: dict[str, Any] = doc.get("container_config") or {}
        self.os: str = doc.get("os") or ""
        self.architecture: str = doc.get("architecture") or ""
        self.variant: str = doc.get("variant") or ""
        self.created: str = doc.get("created") or ""
        self.comment: str = doc.get("comment") or ""
        self.author: str = doc.get("author") or ""
        self.container: str = doc.get("container") or ""
        self.docker_version: str = doc.get("docker_version") or ""
        self.parent: str = doc.get("parent") or ""
        self.history: list[dict[str, Any]] = [h for h in doc.get("history") or [] if isinstance(h, dict)]
        # Filled in by the service when the image is looked up (the reference store and
        # layer store own them).
        self.repo_tags: list[str] = []
        self.repo_digests: list[str] = []
        self.top_layer: str | None = None
        self.size = 0

    @property
    def labels(self) -> dict[str, str] | None:
        labels = self.config.get("Labels") if isinstance(self.config, dict) else None
        return labels if isinstance(labels, dict) else None

    def created_unix(self) -> int:
        return unix_seconds(self.created)


def now_rfc3339_nano() -> str:
    """time.Now() as Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped)."""
    ns = time.time_ns()
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"
