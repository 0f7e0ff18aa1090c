"""Image config store and reference store (moby/image/store.go, moby/image/fs.go,
moby/reference/store.go).

On disk, under the image root (dockerd: `<data-root>/image/<driver>`):

    imagedb/content/sha256/<id hex>                 the config bytes
    imagedb/metadata/sha256/<id hex>/lastUpdated    RFC 3339 time of the last tag
    imagedb/metadata/sha256/<id hex>/parent         for built images (kept for layout parity)
    repositories.json    {"Repositories": {familiar name: {familiar ref: "sha256:…"}}}

Every write goes through atomicfile. Neither class locks: the ImageService holds
one lock around every read-modify-write of both.
"""
from __future__ import annotations

import json
import os
import shutil

from .. import errdefs
from ..pkg import atomicfile
from . import reference as refmod
from .image import Image


class ImageStore:
    def __init__(self, root: str) -> None:
        self.content = os.path.join(root, "imagedb", "content", "sha256")
        self.metadata = os.path.join(root, "imagedb", "metadata", "sha256")
        os.makedirs(self.content, mode=0o700, exist_ok=True)
        os.makedirs(self.metadata, mode=0o700, exist_ok=True)

    def ids(self) -> list[str]:
        return ["sha256:" + h for h in os.listdir(self.content) if not h.startswith(".")]

    def read(self, image_id: str) -> bytes:
        with open(os.path.join(self.content, image_id.split(":", 1)[1]), "rb") as f:
            return f.read()

    def write(self, image: Image) -> None:
        atomicfile.write_file(os.path.join(self.content, image.id.split(":", 1)[1]), image.raw, 0o600)

    def delete(self, image_id: str) -> None:
        hexid = image_id.split(":", 1)[1]
        try:
            os.unlink(os.path.join(self.content, hexid))
        except FileNotFoundError:
            pass
        shutil.rmtree(os.path.join(self.metadata, hexid), ignore_errors=True)

    def _meta(self, image_id: str, key: str) -> str:
        return os.path.join(self.metadata, image_id.split(":", 1)[1], key)

    def get_metadata(self, image_id: str, key: str) -> str | None:
        try:
            with open(self._meta(image_id, key)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def set_metadata(self, image_id: str, key: str, value: str) -> None:
        path = self._meta(image_id, key)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomicfile.write_file(path, value.encode(), 0o600)


class ReferenceStore:
    """Tags and digests to image IDs, keyed by familiar names as dockerd's repositories.json."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.repositories: dict[str, dict[str, str]] = {}
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read() or b"{}")
            self.repositories = {k: dict(v) for k, v in (doc.get("Repositories") or {}).items()}
        except FileNotFoundError:
            pass

    def _save(self) -> None:
        data = json.dumps({"Repositories": self.repositories}, separators=(",", ":")).encode()
        atomicfile.write_file(self.path, data, 0o600)

    @staticmethod
    def _key(ref: refmod.Reference) -> tuple[str, str]:
        return refmod.familiar_name(ref), refmod.familiar_string(ref)

    def add_tag(self, ref: refmod.Reference, image_id: str, force: bool) -> None:
        """store.AddTag: `ref` is made `:latest` if bare; a digest reference is refused."""
        if ref.digest:
            raise errdefs.InvalidParameter("refusing to create a tag with a digest reference")
        self._add(refmod.tag_name_only(ref), image_id, force)

    def add_digest(self, ref: refmod.Reference, image_id: str, force: bool) -> None:
        self._add(ref, image_id, force)

    def _add(self, ref: refmod.Reference, image_id: str, force: bool) -> None:
        if ref.tag and ref.digest:
            ref = refmod.Reference(ref.name, "", ref.digest)  # tag+digest combos are stored by digest
        if ref.path == "sha256" or refmod.familiar_name(ref) == "sha256":
            raise errdefs.InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
        name, key = self._key(ref)
        repo = self.repositories.setdefault(name, {})
        old = repo.get(key)
        if old is not None and old != image_id and not force:
            raise errdefs.Conflict(
                f"Conflict: Tag {refmod.familiar_string(ref)} is already set to image {old}, "
                "if you want to replace it, please use the force option")
        repo[key] = image_id
        self._save()

    def delete(self, ref: refmod.Reference) -> bool:
        ref = refmod.tag_name_only(ref)
        name, key = self._key(ref)
        repo = self.repositories.get(name)
        if repo is None or key not in repo:
            return False
        del repo[key]
        if not repo:
            del self.repositories[name]
        self._save()
        return True

    def get(self, ref: refmod.Reference) -> str | None:
        """store.Get: a tag+digest reference is looked up by its digest only."""
        if ref.digest and ref.tag:
            ref = refmod.Reference(ref.name, "", ref.digest)
        elif not ref.digest:
            ref = refmod.tag_name_only(ref)
        name, key = self._key(ref)
        return self.repositories.get(name, {}).get(key)

    def references(self, image_id: str) -> list[refmod.Reference]:
        """All references to `image_id`, sorted by familiar string (lexicalRefs)."""
        out = []
        for repo in self.repositories.values():
            for key, value in repo.items():
                if value == image_id:
                    try:
                        out.append(refmod.parse_normalized_named(key))
                    except refmod.ReferenceError:
                        continue
        out.sort(key=refmod.familiar_string)
        return out

    def references_by_name(self, ref: refmod.Reference) -> list[tuple[refmod.Reference, str]]:
        """store.ReferencesByName: every tag and digest of `ref`'s repository with its image
        ID, in the lexical order of the references' full strings."""
        out = []
        for key, image_id in self.repositories.get(refmod.familiar_name(ref), {}).items():
            try:
                out.append((refmod.parse_normalized_named(key), image_id))
            except refmod.ReferenceError:
                continue
        out.sort(key=lambda a: str(a[0]))
        return out

    def remove_image(self, image_id: str) -> None:
        changed = False
        for name in list(self.repositories):
            repo = self.repositories[name]
            for key in [k for k, v in repo.items() if v == image_id]:
                del repo[key]
                changed = True
            if not repo:
                del self.repositories[name]
        if changed:
            self._save()
