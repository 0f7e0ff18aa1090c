"""Resolve a path inside a root without escaping it (moby/pkg/symlink FollowSymlinkInScope).

Symlinks are followed as the container would see them: an absolute link target
is taken relative to the root, and `..` never climbs above it.
"""
from __future__ import annotations

import os

MAX_LINKS = 255


def follow_symlink_in_scope(path: str, root: str) -> str:
    """The host path `path` resolves to, evaluated with `root` as `/`."""
    root = os.path.abspath(root)
    rel = os.path.relpath(os.path.abspath(path), root)
    if rel == ".":
        return root
    if rel.startswith(".."):
        raise ValueError(f"{path} is not within {root}")
    parts = rel.split("/")
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            links += 1
            if links > MAX_LINKS:
                raise OSError(f"too many links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)
