"""The image service (moby/daemon/images/service.go, image.go GetImage, images.go Images,
image_inspect via daemon/images LookupImage, image_history.go, image_tag.go,
image_events.go).

Thread-safe: one re-entrant lock guards the image map and the reference store;
layer unpacking (load, import) runs outside it.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from .. import errdefs
from ..layer import LayerStore, chain_id_of, create_chain_id
from ..pkg import platforms
from ..pkg.platforms import Platform
from ..trace import traced
from ..types.filters import match_kv_list
from . import reference as refmod
from .commit import commit_image
from .delete import image_delete
from .image import Image, normalize_config, now_rfc3339_nano, parse_go_time, unix_seconds
from .importer import import_image
from .prune import images_prune
from .store import ImageStore, ReferenceStore
from .tarexport import load, save

EmitFn = Callable[[str, str, dict[str, str]], None]

_ACCEPTED_IMAGE_FILTERS = ("dangling", "label", "before", "since", "reference")
_ZERO_TIME = "0001-01-01T00:00:00Z"


def format_rfc3339_nano(value: str) -> str:
    """Go's time.RFC3339Nano of a stored time string (trailing fraction zeros trimmed, Z for UTC)."""
    dt = parse_go_time(value)
    if dt is None:
        return _ZERO_TIME
    frac = ""
    if "." in value:
        digits = value.split(".", 1)[1]
        i = 0
        while i < len(digits) and digits[i].isdigit():
            i += 1
        frac = digits[:i][:9].rstrip("0")
    off = dt.utcoffset()
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if off is None or off.total_seconds() == 0:
        tz = "Z"
    else:
        secs = int(off.total_seconds())
        sign = "+" if secs >= 0 else "-"
        secs = abs(secs)
        tz = f"{sign}{secs // 3600:02d}:{secs % 3600 // 60:02d}"
    return base + ("." + frac if frac else "") + tz




_GO_ZERO_TIME = datetime.min.replace(tzinfo=UTC)  # Go's zero time.Time, before every other


def _created_at(value: str) -> datetime:
    """An image's Created for the before/since filters; none is Go's zero time."""
    return parse_go_time(value) or _GO_ZERO_TIME


class ImageService:
    """Images, their references and their layers. `root` is dockerd's `image/<driver>` dir."""

    def __init__(self, root: str, layers: LayerStore, emit: EmitFn | None = None, tmp_dir: str | None = None) -> None:
        self.root = root
        self.layers = layers
        self.tmp_dir = tmp_dir or os.path.join(root, "tmp")
        os.makedirs(self.tmp_dir, mode=0o700, exist_ok=True)
        self._emit = emit
        self._lock = threading.RLock()
        self.store = ImageStore(root)
        self.refs = ReferenceStore(os.path.join(root, "repositories.json"))
        self._images: dict[str, Image] = {}
        self._restore()

    # -- restore -----------------------------------------------------------------------

    def _restore(self) -> None:
        """Load every stored config whose digest checks and whose layers exist (image.NewImageStore restore)."""
        for image_id in self.store.ids():
            try:
                raw = self.store.read(image_id)
                if "sha256:" + hashlib.sha256(raw).hexdigest() != image_id:
                    continue
                img = Image(raw)
            except (OSError, errdefs.DockerError):
                continue
            chain = chain_id_of(img.diff_ids)
            if chain is not None:
                try:
                    self.layers.get(chain)  # the image's own reference
                except errdefs.NotFound:
                    continue
            img.top_layer = chain
            parent = self.store.get_metadata(img.id, "parent")
            if parent:
                img.parent = parent  # imageStore.Get: the recorded parent wins
            self._images[img.id] = img
        stale = [v for repo in self.refs.repositories.values() for v in repo.values() if v not in self._images]
        for image_id in set(stale):
            self.refs.remove_image(image_id)

    # -- internals shared with load/import/delete ---------------------------------------

    def create_image(self, raw: bytes) -> Image:
        """image store Create: store the config, take a reference on its top layer (which must exist)."""
        img = Image(raw)
        chain = chain_id_of(img.diff_ids)
        with self._lock:
            if img.id in self._images:
                return self._images[img.id]
            if chain is not None:
                self.layers.get(chain)
            img.top_layer = chain
            try:
                self.store.write(img)
            except BaseException:
                if chain is not None:
                    self.layers.release(chain)
                raise
            self._images[img.id] = img
        return img

    def set_parent(self, image_id: str, parent_id: str) -> None:
        """imageStore.SetParent: the parent of a committed image, kept as metadata."""
        with self._lock:
            img = self._images.get(image_id)
            if parent_id not in self._images or img is None:
                raise errdefs.InvalidParameter(f"unknown parent image ID {parent_id}")
            self.store.set_metadata(image_id, "parent", parent_id)
            img.parent = parent_id

    def children(self, image_id: str) -> list[str]:
        """imageStore.Children: the images whose recorded parent is `image_id`."""
        with self._lock:
            return [i.id for i in self._images.values() if i.parent == image_id]

    def _remove_image(self, image_id: str) -> list[str]:
        """image store Delete: drop the config and give back the layer reference."""
        with self._lock:
            img = self._images.pop(image_id, None)
            self.store.delete(image_id)
        if img is None or img.top_layer is None:
            return []
        return self.layers.release(img.top_layer)

    def log_image_event(self, image_id: str, ref_name: str, action: str) -> None:
        """LogImageEvent: the image's labels plus `name`."""
        if self._emit is None:
            return
        attributes: dict[str, str] = {}
        img = self._images.get(image_id)
        if img is None and not image_id.startswith("sha256:"):
            # pull/push events name the reference; the labels are its image's
            try:
                img = self._images.get(self.refs.get(refmod.parse_normalized_named(image_id)) or "")
            except refmod.ReferenceError:
                img = None
        if img is not None and img.labels:
            attributes.update({k: str(v) for k, v in img.labels.items()})
        if ref_name:
            attributes["name"] = ref_name
        self._emit(action, image_id, attributes)

    def _fill(self, img: Image) -> Image:
        tags, digests = [], []
        for r in self.refs.references(img.id):
            if r.digest:
                digests.append(refmod.familiar_string(r))
            elif r.tag:
                tags.append(refmod.familiar_string(r))
        img.repo_tags, img.repo_digests = tags, digests
        if img.top_layer is not None:
            layer = self.layers.lookup(img.top_layer)
            img.size = layer.total_size() if layer is not None else 0
        return img

    def image_by_id(self, image_id: str) -> Image | None:
        with self._lock:
            img = self._images.get(image_id)
            return self._fill(img) if img is not None else None

    def _search(self, term: str) -> str | None:
        """digestset.Lookup: a unique prefix of an image ID, with or without `sha256:`."""
        hexpart = term[7:] if term.startswith("sha256:") else term
        if ":" in hexpart:
            return None
        matches = [i for i in self._images if i[7:].startswith(hexpart)]
        exact = "sha256:" + hexpart
        if exact in matches:
            return exact
        return matches[0] if len(matches) == 1 else None

    def search(self, term: str) -> str | None:
        """imageStore.Search: the image ID a unique ID prefix names (None if none does)."""
        with self._lock:
            return self._search(term)

    # -- lookups -------------------------------------------------------------------------

    @traced("GetImage", leaf=True)
    def get_image(self, ref_or_id: str, platform: Platform | None = None) -> Image:
        """GetImage: digest/ID, then tag or digest reference, then unique ID prefix.

        With a `platform`, an image of another platform is NotFound (the deferred check
        in daemon/images/image.go GetImage; Berth keeps no manifest lists to consult).
        """
        img = self._get_image(ref_or_id)
        if platform is not None:
            have = Platform(img.os, img.architecture, img.variant)
            if not platforms.only_with_fallback_match(platform, have):
                raise errdefs.NotFound(
                    f"image with reference {ref_or_id} was found but does not match the specified platform: "
                    f"wanted {platforms.format_platform(platform)}, actual: {platforms.format_platform(have)}"
                )
        return img

    def _get_image(self, ref_or_id: str) -> Image:
        try:
            ref = refmod.parse_any_reference(ref_or_id)
        except refmod.ReferenceError as e:
            raise errdefs.InvalidParameter(str(e)) from None
        with self._lock:
            if not ref.is_named():
                img = self._images.get(ref.digest)
                if img is None:
                    raise errdefs.NotFound(f"No such image: {ref.digest}")
                return self._fill(img)
            image_id = self.refs.get(ref)
            if image_id is not None and image_id in self._images:
                return self._fill(self._images[image_id])
            found = self._search(ref_or_id)
            if found is not None:
                return self._fill(self._images[found])
        raise errdefs.NotFound(f"No such image: {refmod.familiar_string(refmod.tag_name_only(ref))}")

    def inspect(self, ref: str) -> dict[str, Any]:
        """LookupImage: types.ImageInspect, key order as dockerd writes it."""
        try:
            img = self.get_image(ref)
        except errdefs.DockerError as e:
            raise type(e)(f"no such image: {ref}: {e}") from None
        last_tag = self.store.get_metadata(img.id, "lastUpdated")
        graph_data = None
        if img.top_layer is not None:
            layer = self.layers.lookup(img.top_layer)
            if layer is not None:
                graph_data = self.layers.driver.metadata(layer.cache_id)
        out: dict[str, Any] = {
            "Id": img.id,
            "RepoTags": img.repo_tags,
            "RepoDigests": img.repo_digests,
            "Parent": img.parent,
            # LookupImage: a committed image keeps its comment in its last history entry.
            "Comment": img.comment or (img.history[-1].get("comment") or "" if img.history else ""),
            "Created": format_rfc3339_nano(img.created),
            "Container": img.container,
            "ContainerConfig": normalize_config(img.doc.get("container_config") or {}),
            "DockerVersion": img.docker_version,
            "Author": img.author,
            "Config": normalize_config(img.doc.get("config")),
            "Architecture": img.architecture,
        }
        if img.variant:
            out["Variant"] = img.variant
        out["Os"] = img.os or platforms.HOST_OS  # img.OperatingSystem(): the host's when the config has none
        if img.doc.get("os.version"):
            out["OsVersion"] = img.doc["os.version"]
        out["Size"] = img.size
        out["VirtualSize"] = img.size
        out["GraphDriver"] = {"Data": graph_data, "Name": self.layers.driver_name}
        rootfs: dict[str, Any] = {"Type": img.rootfs_type}
        if img.diff_ids:
            rootfs["Layers"] = img.diff_ids
        out["RootFS"] = rootfs
        out["Metadata"] = {"LastTagTime": format_rfc3339_nano(last_tag) if last_tag else _ZERO_TIME}
        return out

    @traced("ImageHistory", image_action="history")
    def history(self, ref: str) -> list[dict[str, Any]]:
        """ImageHistory: newest first; layers' own sizes; `<missing>` IDs but the first."""
        img = self.get_image(ref)
        items: list[dict[str, Any]] = []
        counter = 0
        chain: str | None = None
        for h in img.history:
            size = 0
            if not h.get("empty_layer"):
                if len(img.diff_ids) <= counter:
                    raise errdefs.Untyped("too many non-empty layers in History section")
                chain = create_chain_id(chain, img.diff_ids[counter])
                layer = self.layers.lookup(chain)
                if layer is None:
                    raise errdefs.Untyped("layer does not exist")
                size = layer.size
                counter += 1
            items.insert(0, {"Comment": h.get("comment") or "", "Created": unix_seconds(h.get("created") or ""),
                             "CreatedBy": h.get("created_by") or "", "Id": "<missing>", "Size": size,
                             "Tags": None})
        # Fill in IDs and tags down the parent chain (committed images have one).
        hist_img: Image | None = img
        for item in items:
            assert hist_img is not None
            item["Id"] = hist_img.id
            item["Tags"] = self._fill(hist_img).repo_tags or None
            hist_img = self._images.get(hist_img.parent) if hist_img.parent else None
            if hist_img is None:
                break
        return items

    def list_images(self, all: bool = False, filters: dict[str, list[str]] | None = None,  # `all`: the API parameter name
                    digests: bool = False, shared_size: bool = False) -> list[dict[str, Any]]:
        """Images (GET /images/json). `digests` is accepted and ignored, as by dockerd 20.10.

        `shared_size` (withExtraAttrs for df, `shared-size` from API 1.42): SharedSize is the
        sum of the diff sizes of the image's layers that another listed image also has.
        """
        filters = filters or {}
        for key in filters:
            if key not in _ACCEPTED_IMAGE_FILTERS:
                raise errdefs.InvalidParameter(f"Invalid filter '{key}'")
        dangling_only = False
        if "dangling" in filters:
            values = filters["dangling"]
            if values == ["true"] or (set(values) == {"true"}):
                dangling_only = True
            elif set(values) != {"false"}:
                raise errdefs.InvalidParameter(f"Invalid filter 'dangling=[{' '.join(values)}]'")
        before = since = None
        for v in filters.get("before", []):
            before = self.get_image(v)
        for v in filters.get("since", []):
            since = self.get_image(v)
        patterns = filters.get("reference", [])
        out = []
        with self._lock:
            images = list(self._images.values())
            # Committed images have parents: an untagged parent is an intermediate image,
            # listed only with `all`; `dangling=true` looks at heads only (imageStore.Heads).
            parents = {i.parent for i in images if i.parent}
            for img in images:
                if dangling_only and img.id in parents:
                    continue
                created = img.created_unix()
                if before is not None and parse_go_time(img.created) is not None and \
                        _created_at(img.created) >= _created_at(before.created):
                    continue
                if since is not None and _created_at(img.created) <= _created_at(since.created):
                    continue
                if "label" in filters and (
                        img.doc.get("config") is None or not match_kv_list(filters["label"], img.labels)):
                    continue
                size = 0
                if img.top_layer is not None:
                    layer = self.layers.lookup(img.top_layer)
                    if layer is None:
                        continue
                    size = layer.total_size()
                repo_tags: list[str] | None = None
                repo_digests: list[str] | None = None
                for r in self.refs.references(img.id):
                    if patterns:
                        found = False
                        for p in patterns:
                            try:
                                found = refmod.familiar_match(p, r)
                            except refmod.ReferenceError as e:
                                raise errdefs.Untyped(str(e)) from None
                            if found:
                                break
                        if not found:
                            continue
                    if r.digest:
                        repo_digests = (repo_digests or []) + [refmod.familiar_string(r)]
                    elif r.tag:
                        repo_tags = (repo_tags or []) + [refmod.familiar_string(r)]
                if repo_digests is None and repo_tags is None:
                    if ("dangling" in filters and not dangling_only) or patterns:
                        continue
                    if not all and img.id in parents:
                        continue
                    repo_digests, repo_tags = ["<none>@<none>"], ["<none>:<none>"]
                elif dangling_only and repo_tags:
                    continue
                out.append({
                    "Containers": -1, "Created": created, "Id": img.id, "Labels": img.labels,
                    "ParentId": img.parent, "RepoDigests": repo_digests, "RepoTags": repo_tags,
                    "SharedSize": -1, "Size": size, "VirtualSize": size,
                })
        if shared_size:
            self._set_shared_sizes(out)
        out.sort(key=lambda s: (s["Created"], s["Id"]), reverse=True)
        return out

    def _set_shared_sizes(self, summaries: list[dict[str, Any]]) -> None:
        """Images' withExtraAttrs: count each layer's references among the listed images,
        then add up the diff sizes of the layers counted more than once."""
        chains: dict[str, list[Any]] = {}
        refs: dict[str, int] = {}
        for summary in summaries:
            img = self._images.get(summary["Id"])
            chain = []
            layer = self.layers.lookup(img.top_layer) if img is not None and img.top_layer else None
            while layer is not None:
                chain.append(layer)
                refs[layer.chain_id] = refs.get(layer.chain_id, 0) + 1
                layer = layer.parent
            chains[summary["Id"]] = chain
        for summary in summaries:
            summary["SharedSize"] = sum(la.size for la in chains[summary["Id"]] if refs[la.chain_id] > 1)

    # -- tag -----------------------------------------------------------------------------

    def tag(self, ref: str, repo: str, tag: str) -> str:
        """TagImage: returns the familiar new reference. Parse errors of `repo`/`tag` are
        untyped (500) in dockerd; store refusals are InvalidParameter."""
        img = self.get_image(ref)
        try:
            new = refmod.parse_normalized_named(repo)
            if tag:
                new = refmod.with_tag(refmod.trim_named(new), tag)
        except refmod.ReferenceError as e:
            raise errdefs.Untyped(str(e)) from None
        try:
            self.tag_image_with_reference(img.id, new)
        except errdefs.DockerError as e:
            raise errdefs.InvalidParameter(str(e)) from None
        return refmod.familiar_string(new)

    def tag_image_with_reference(self, image_id: str, new: refmod.Reference) -> None:
        with self._lock:
            self.refs.add_tag(new, image_id, True)
            self.store.set_metadata(image_id, "lastUpdated", now_rfc3339_nano())
        self.log_image_event(image_id, refmod.familiar_string(refmod.tag_name_only(new)), "tag")

    def record_pull(self, ref: refmod.Reference, dgst: str, image_id: str) -> bool:
        """pullV2Tag's reference store updates: the digest reference always (kept if it names
        another image), the tag force-moved unless it already names the image. Returns
        whether a tag or digest was added or moved ("Downloaded newer image")."""
        with self._lock:
            by_digest = bool(ref.digest)
            digest_ref = refmod.Reference(ref.name, "", dgst)
            if by_digest:
                if self.refs.get(digest_ref) == image_id:
                    return False
                self.refs.add_digest(digest_ref, image_id, True)
                return True
            if self.refs.get(ref) == image_id:
                if self.refs.get(digest_ref) is None:
                    self.refs.add_digest(digest_ref, image_id, True)
                return False
            if self.refs.get(digest_ref) is None:
                self.refs.add_digest(digest_ref, image_id, True)
            self.refs.add_tag(ref, image_id, True)
            return True

    # -- operations in their own modules ------------------------------------------------

    @traced("ImageDelete", image_action="delete")
    def delete(self, ref: str, force: bool, prune: bool,
               is_used_by: Callable[[str], list[tuple[str, bool]]] | None = None) -> list[dict[str, str]]:
        return image_delete(self, ref, force, prune, is_used_by or (lambda _id: []))

    def all_images(self) -> list[Image]:
        with self._lock:
            return list(self._images.values())

    def prune(self, filters: Any,
              is_used_by: Callable[[str], list[tuple[str, bool]]] | None = None) -> tuple[list[dict[str, str]], int]:
        """ImagesPrune, then its `prune` event with the bytes reclaimed."""
        deleted, reclaimed = images_prune(self, filters, is_used_by or (lambda _id: []))
        if self._emit is not None:
            self._emit("prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    def load(self, archive: str | BinaryIO, quiet: bool) -> Iterator[bytes]:
        return load(self, archive, quiet)

    def save(self, refs: list[str], out: Any) -> None:
        save(self, refs, out)

    def commit(self, cfg: Any) -> str:
        return commit_image(self, cfg)

    def import_image(self, tar_stream: Any, repo: str = "", tag: str = "", changes: list[str] | None = None,
                     message: str = "") -> str:
        return import_image(self, tar_stream, repo, tag, changes or [], message)
