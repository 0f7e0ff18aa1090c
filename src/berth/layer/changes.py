"""Filesystem changes of a container layer, for `docker diff` (moby/pkg/archive/changes.go
`changes`, OverlayChanges; moby/pkg/archive/changes_linux.go for vfs's ChangesDirs).

Kinds as moby's ChangeType: 0 Modify, 1 Add, 2 Delete.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

CHANGE_MODIFY = 0
CHANGE_ADD = 1
CHANGE_DELETE = 2


@dataclass(frozen=True)
class Change:
    Path: str
    Kind: int


def _is_overlay_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    # sameFsTime compares at second precision when one side lacks nanoseconds; overlayfs
    # keeps them, so whole-nanosecond equality is what dockerd sees here.
    return a.st_size == b.st_size and a.st_mode == b.st_mode and a.st_mtime_ns == b.st_mtime_ns


def overlay_changes(lowers: list[str], upper: str) -> list[Change]:
    """Walk the upper dir in lexical order, as filepath.Walk, classifying each entry."""
    out: list[Change] = []
    changed_dirs: set[str] = set()

    def visit(rel: str) -> None:
        full = upper + rel
        st = os.lstat(full)
        if _is_overlay_whiteout(st):
            kind = CHANGE_DELETE
        else:
            kind = CHANGE_ADD
            for lower in lowers:
                try:
                    lst = os.stat(lower + rel)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if stat.S_ISDIR(lst.st_mode) and stat.S_ISDIR(st.st_mode) and \
                        _same_dir(st, lst) and not _is_opaque(full):
                    kind = -1
                    break
                kind = CHANGE_MODIFY
                break
        if kind != -1:
            out.append(Change(rel, kind))
        if stat.S_ISDIR(st.st_mode):
            changed_dirs.add(rel)
        if kind in (CHANGE_ADD, CHANGE_DELETE):
            parent = os.path.dirname(rel)
            if parent not in changed_dirs and parent != "/":
                out.append(Change(parent, CHANGE_MODIFY))
                changed_dirs.add(parent)
        if stat.S_ISDIR(st.st_mode) and kind != CHANGE_DELETE:
            for name in sorted(os.listdir(full)):
                visit(rel + "/" + name)

    for name in sorted(os.listdir(upper)):
        visit("/" + name)
    return out


def dir_changes(new: str, old: str) -> list[Change]:
    """ChangesDirs for full-copy layers (vfs): compare two complete trees."""
    out: list[Change] = []

    def walk(rel: str) -> None:
        n_full, o_full = new + rel, old + rel
        names_new = set(os.listdir(n_full)) if os.path.isdir(n_full) and not os.path.islink(n_full) else set()
        names_old = set(os.listdir(o_full)) if os.path.isdir(o_full) and not os.path.islink(o_full) else set()
        for name in sorted(names_new | names_old):
            child = (rel if rel != "/" else "") + "/" + name
            if name not in names_new:
                out.append(Change(child, CHANGE_DELETE))
                continue
            nst = os.lstat(new + child)
            size_at_entry = len(out)
            added = name not in names_old
            if added:
                out.append(Change(child, CHANGE_ADD))
            else:
                ost = os.lstat(old + child)
                if (nst.st_mode != ost.st_mode or nst.st_uid != ost.st_uid or nst.st_gid != ost.st_gid
                        or (not stat.S_ISDIR(nst.st_mode) and (nst.st_size != ost.st_size
                                                               or nst.st_mtime_ns != ost.st_mtime_ns))
                        or (stat.S_ISLNK(nst.st_mode) and os.readlink(new + child) != os.readlink(old + child))):
                    out.append(Change(child, CHANGE_MODIFY))
            if stat.S_ISDIR(nst.st_mode):
                walk(child)
                # addChanges: a directory with changes inside is itself reported as modified.
                if (len(out) > size_at_entry and not added
                        and not any(c.Path == child for c in out[size_at_entry:])):
                    out.insert(size_at_entry, Change(child, CHANGE_MODIFY))

    walk("/")
    return out
