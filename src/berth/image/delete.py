"""Image removal (moby/daemon/images/image_delete.go ImageDelete, imageDeleteHelper,
checkImageDeleteConflict).

Containers are not this package's business, so the caller passes `is_used_by`:
given an image ID it returns `(container id, running)` for every container created
from it. Conflicts are "hard" (a running container; child images) or "soft" (a
stopped container; other references), and only soft ones yield to `force`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import errdefs
from ..pkg.stringid import truncate_id
from . import reference as refmod

if TYPE_CHECKING:
    from .backend import ImageBackend

UsedBy = Callable[[str], list[tuple[str, bool]]]


def _is_image_id_prefix(image_id: str, possible_prefix: str) -> bool:
    return image_id.startswith(possible_prefix) or image_id.split(":", 1)[1].startswith(possible_prefix)


def _is_single_reference(refs: list[refmod.Reference]) -> bool:
    """All references in one repository and at most one tag (isSingleReference)."""
    if len(refs) <= 1:
        return len(refs) == 1
    single = None
    canonical: set[str] = set()
    for r in refs:
        if r.digest:
            canonical.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical) == 1 and single.name in canonical


def _conflict(image_id: str, hard: bool, message: str) -> errdefs.Conflict:
    force_msg = "cannot be forced" if hard else "must be forced"
    return errdefs.Conflict(f"conflict: unable to delete {truncate_id(image_id)} ({force_msg}) - {message}")


def _check_conflict(svc: ImageBackend, image_id: str, used_by: UsedBy, hard_only: bool,
                    check_refs: bool) -> tuple[errdefs.Conflict, bool] | None:
    """checkImageDeleteConflict; returns (error, used-by-a-container)."""
    if svc.children(image_id):  # committed images have parents
        return _conflict(image_id, True, "image has dependent child images"), False
    users = used_by(image_id)
    for cid, running in users:
        if running:
            return _conflict(image_id, True, f"image is being used by running container {truncate_id(cid)}"), True
    if hard_only:
        return None
    if check_refs and svc.refs.references(image_id):
        return _conflict(image_id, False, "image is referenced in multiple repositories"), False
    for cid, running in users:
        if not running:
            return _conflict(image_id, False, f"image is being used by stopped container {truncate_id(cid)}"), True
    return None


def _remove_all_references(svc: ImageBackend, image_id: str, records: list[dict[str, str]]) -> None:
    for r in svc.refs.references(image_id):
        svc.refs.delete(r)
        svc.log_image_event(image_id, image_id, "untag")
        records.append({"Untagged": refmod.familiar_string(refmod.tag_name_only(r))})


def _delete_helper(svc: ImageBackend, image_id: str, records: list[dict[str, str]], force: bool,
                   prune: bool, quiet: bool, used_by: UsedBy) -> None:
    found = _check_conflict(svc, image_id, used_by, hard_only=force, check_refs=True)
    if found is not None:
        err, used = found
        # imageIsDangling: no reference and no child.
        dangling = not svc.refs.references(image_id) and not svc.children(image_id)
        if quiet and (not dangling or used):
            return
        raise err
    parent = (img := svc.image_by_id(image_id)) and img.parent
    _remove_all_references(svc, image_id, records)
    removed_layers = svc._remove_image(image_id)
    svc.log_image_event(image_id, image_id, "delete")
    records.append({"Deleted": image_id})
    records.extend({"Deleted": chain} for chain in removed_layers)
    if prune and parent and svc.image_by_id(parent) is not None:
        # The parent of a committed image goes too when nothing else names or uses it:
        # not forced, and quietly (a conflict just stops the walk).
        _delete_helper(svc, parent, records, False, True, True, used_by)


def image_delete(svc: ImageBackend, image_ref: str, force: bool, prune: bool,
                 used_by: UsedBy) -> list[dict[str, str]]:
    """ImageDelete: untag a repository reference, and delete the image once nothing names it."""
    with svc._lock:
        img = svc.get_image(image_ref)
        image_id = img.id
        records: list[dict[str, str]] = []
        repo_refs = svc.refs.references(image_id)
        removed_repository_ref = False
        if not _is_image_id_prefix(image_id, image_ref):
            if not force and _is_single_reference(repo_refs):
                users = used_by(image_id)
                if users:
                    raise errdefs.Conflict(
                        f'conflict: unable to remove repository reference "{image_ref}" (must force) - container '
                        f"{truncate_id(users[0][0])} is using its referenced image {truncate_id(image_id)}")
            parsed = refmod.tag_name_only(refmod.parse_normalized_named(image_ref))
            svc.refs.delete(parsed)
            svc.log_image_event(image_id, image_id, "untag")
            records.append({"Untagged": refmod.familiar_string(parsed)})
            repo_refs = svc.refs.references(image_id)
            # Only digest references left in this repository: they go too.
            if not parsed.digest and not any(not r.digest and r.name == parsed.name for r in repo_refs):
                remaining = []
                for r in repo_refs:
                    if r.digest and r.name == parsed.name:
                        svc.refs.delete(r)
                        records.append({"Untagged": refmod.familiar_string(r)})
                    else:
                        remaining.append(r)
                repo_refs = remaining
            if repo_refs:
                return records
            removed_repository_ref = True
        elif _is_single_reference(repo_refs):
            found = _check_conflict(svc, image_id, used_by, hard_only=force, check_refs=False)
            if found is not None:
                raise found[0]
            for r in repo_refs:
                svc.refs.delete(r)
                svc.log_image_event(image_id, image_id, "untag")
                records.append({"Untagged": refmod.familiar_string(refmod.tag_name_only(r))})
        _delete_helper(svc, image_id, records, force, prune, removed_repository_ref, used_by)
        return records
