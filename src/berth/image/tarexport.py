"""`docker load` and `docker save` (moby/image/tarexport/load.go, save.go,
moby/image/v1/imagev1.go CreateID).

Load takes a docker-save archive (manifest.json + configs + layer tars) or an OCI
image layout (oci-layout + index.json + blobs/, which dockerd 20.10 itself does not
read). The archive is unpacked into a temporary directory with the same safe
unpacker as layers, so a hostile archive cannot write outside it either.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Generator, Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from .. import errdefs
from ..layer import create_chain_id
from ..layer.archive import apply_layer, go_errno_text
from . import progress
from . import reference as refmod
from .image import Image, normalize_config, parse_go_time
from .progress import ProgressReader

if TYPE_CHECKING:
    from .backend import ImageBackend


class _LoadError(Exception):
    pass


def _safe_path(base: str, rel: str) -> str:
    """safePath: `rel` resolved (symlinks in scope) inside `base`."""
    p = os.path.normpath("/" + rel).lstrip("/")
    full = os.path.realpath(os.path.join(base, p))
    if full != base and not full.startswith(base.rstrip("/") + "/"):
        raise _LoadError(f"invalid path {rel}: outside of {base}")
    return full


def _read(base: str, rel: str) -> bytes:
    path = _safe_path(base, rel)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise _LoadError(f"open {path}: {go_errno_text(e)}") from None


def load(svc: ImageBackend, archive: str | BinaryIO, quiet: bool) -> Iterator[bytes]:
    """Yield the response stream of POST /images/load, ending with an error message on failure.

    `archive`: a path, or the stream itself (the request body, read as it is unpacked).
    Never raises a classified error: dockerd answers 200 and reports failures in the
    stream. Progress lines of a layer come out once that layer is registered.
    """
    tmp = tempfile.mkdtemp(prefix="docker-import-", dir=svc.tmp_dir)
    try:
        try:
            if isinstance(archive, str):
                with open(archive, "rb") as f:
                    apply_layer(f, tmp, "keep", None)
            else:
                apply_layer(archive, tmp, "keep", None)
            if os.path.lexists(os.path.join(tmp, "manifest.json")):
                items = _docker_manifest(tmp)
            elif os.path.lexists(os.path.join(tmp, "oci-layout")):
                items = _oci_manifest(tmp)
            else:
                # dockerd falls back to the pre-1.10 layout, which needs `repositories`.
                raise _LoadError(f"open {tmp}/repositories: no such file or directory")
            image_ids_str = ""
            ref_count = 0
            for config_rel, repo_tags, layer_rels in items:
                image_id, ref_count = yield from _load_one(svc, tmp, config_rel, repo_tags, layer_rels, quiet)
                image_ids_str += f"Loaded image ID: {image_id}\n"
            if ref_count == 0 and image_ids_str:
                yield progress.stream_message(image_ids_str)
        except (_LoadError, errdefs.DockerError, ValueError, KeyError, TypeError) as e:
            yield progress.error_message(str(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _docker_manifest(tmp: str) -> list[tuple[str, list[str], list[str]]]:
    try:
        manifest = json.loads(_read(tmp, "manifest.json"))
    except ValueError as e:
        raise _LoadError(str(e)) from None
    items = []
    for m in manifest or []:
        items.append((m.get("Config") or "", list(m.get("RepoTags") or []), list(m.get("Layers") or [])))
    return items


def _oci_manifest(tmp: str) -> list[tuple[str, list[str], list[str]]]:
    """index.json → (nested indexes →) image manifests; names from the annotations."""
    def blob(dgst: str) -> str:
        alg, _, hexpart = dgst.partition(":")
        return f"blobs/{alg}/{hexpart}"

    items = []
    index = json.loads(_read(tmp, "index.json"))
    queue = [(d, d.get("annotations") or {}) for d in index.get("manifests") or []]
    while queue:
        desc, ann = queue.pop(0)
        doc = json.loads(_read(tmp, blob(desc["digest"])))
        if "manifests" in doc:  # an index: take linux/amd64-like entries (first one otherwise)
            subs = doc["manifests"]
            chosen = [s for s in subs if (s.get("platform") or {}).get("os", "linux") == "linux"
                      and (s.get("platform") or {}).get("architecture", "amd64") in ("amd64", "x86_64")]
            for s in (chosen or subs)[:1]:
                queue.append((s, ann))
            continue
        name = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name") or ""
        tags = []
        if name:
            try:
                r = refmod.parse_normalized_named(name)
                if r.tag:
                    tags.append(refmod.familiar_string(r))
            except refmod.ReferenceError:
                pass
        items.append((blob(doc["config"]["digest"]), tags, [blob(layer["digest"]) for layer in doc.get("layers") or []]))
    return items


def _load_one(svc: ImageBackend, tmp: str, config_rel: str, repo_tags: list[str],
              layer_rels: list[str], quiet: bool) -> Generator[bytes, None, tuple[str, int]]:
    config = _read(tmp, config_rel)
    img = Image(config)
    if img.os and img.os != "linux":
        raise _LoadError(f"cannot load {img.os} image on linux")
    if len(layer_rels) != len(img.diff_ids):
        raise _LoadError(f"invalid manifest, layers length mismatch: expected {len(layer_rels)}, "
                         f"got {len(img.diff_ids)}")
    held: list[str] = []
    lines: list[bytes] = []
    try:
        chain: str | None = None
        for i, diff_id in enumerate(img.diff_ids):
            path = _safe_path(tmp, layer_rels[i])
            next_chain = create_chain_id(chain, diff_id)
            try:
                layer = svc.layers.get(next_chain)
            except errdefs.NotFound:
                with open(path, "rb") as raw:
                    src: Any = raw
                    if not quiet:
                        src = io.BufferedReader(ProgressReader(raw, os.fstat(raw.fileno()).st_size,
                                                               diff_id.split(":", 1)[-1][:12], "Loading layer",
                                                               lines.append), 32768)
                    try:
                        layer = svc.layers.register(src, chain)
                    finally:
                        yield from lines
                        lines.clear()
            held.append(layer.chain_id)
            if layer.diff_id != diff_id:
                raise _LoadError(f'invalid diffID for layer {i}: expected "{diff_id}", got "{layer.diff_id}"')
            chain = next_chain
        image = svc.create_image(config)
    finally:
        for c in held:
            svc.layers.release(c)
    count = 0
    for tag in repo_tags:
        try:
            ref = refmod.parse_normalized_named(tag)
        except refmod.ReferenceError as e:
            raise _LoadError(str(e)) from None
        if not ref.tag:
            raise _LoadError(f'invalid tag "{tag}"')
        with svc._lock:
            prev = svc.refs.get(ref)
            if prev is not None and prev != image.id:
                yield progress.stream_message(
                    f"The image {refmod.familiar_string(ref)} already exists, renaming the old one with ID "
                    f"{prev} to empty string\n")
            svc.refs.add_tag(ref, image.id, True)
        yield progress.stream_message(f"Loaded image: {refmod.familiar_string(ref)}\n")
        count += 1
    svc.log_image_event(image.id, image.id, "load")
    return image.id, count


# -- save ------------------------------------------------------------------------------

_EPOCH = "1970-01-01T00:00:00Z"


def _v1_image(img: Image | None, created: str) -> dict[str, Any]:
    """image.V1Image as json.Marshal writes it (omitempty fields dropped)."""
    out: dict[str, Any] = {}
    if img is not None and img.parent:
        out["parent"] = img.parent
    if img is not None and img.comment:
        out["comment"] = img.comment
    out["created"] = created
    if img is not None and img.container:
        out["container"] = img.container
    out["container_config"] = normalize_config((img.doc.get("container_config") if img else None) or {})
    if img is not None:
        if img.docker_version:
            out["docker_version"] = img.docker_version
        if img.author:
            out["author"] = img.author
        cfg = normalize_config(img.doc.get("config"))
        if cfg is not None:
            out["config"] = cfg
        for key, value in (("architecture", img.architecture), ("variant", img.variant), ("os", img.os)):
            if value:
                out[key] = value
    return out


def _create_v1_id(v1: dict[str, Any], chain_id: str, parent: str) -> str:
    """v1.CreateID: sha256 of the V1Image JSON re-encoded as a sorted map plus layer_id/parent."""
    doc = dict(v1)
    doc.pop("id", None)
    doc["layer_id"] = chain_id
    if parent:
        doc["parent"] = parent
    data = progress.go_json({k: doc[k] for k in sorted(doc)})
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = len(data), mtime, 0o644
    tf.addfile(ti, io.BytesIO(data))


def _unix(value: str) -> float:
    dt = parse_go_time(value)
    return dt.timestamp() if dt is not None else 0.0


def _parse_names(svc: ImageBackend, names: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """tarexporter.parseNames: image IDs in the order first named, each with the tags it
    is saved under. A repository name alone saves every tag (and digest) of it; an ID, a
    digest or an ID prefix saves the image untagged; `repo:tag` must exist as a tag."""
    order: list[str] = []
    tags: dict[str, list[str]] = {}

    def add_assoc(image_id: str, ref: refmod.Reference | None) -> None:
        if image_id not in tags:
            if svc.image_by_id(image_id) is None:  # takeLayerReference: is.Get
                raise errdefs.Untyped(
                    f"failed to get digest {image_id}: open {svc.store.content}/{image_id.split(':', 1)[1]}: "
                    "no such file or directory")
            order.append(image_id)
            tags[image_id] = []
        if ref is None or ref.digest:  # an ID, or a canonical (digest) reference: no tag
            return
        s = refmod.familiar_string(refmod.tag_name_only(ref))
        if s not in tags[image_id]:
            tags[image_id].append(s)

    for name in names:
        try:
            ref = refmod.parse_any_reference(name)
        except refmod.ReferenceError as e:
            raise errdefs.InvalidParameter(str(e)) from None
        if not ref.is_named():
            add_assoc(ref.digest, None)
        elif refmod.familiar_name(ref) == "sha256" or ref.is_name_only():
            assocs = [] if refmod.familiar_name(ref) == "sha256" else svc.refs.references_by_name(ref)
            for r, image_id in assocs:
                add_assoc(image_id, r)
            if not assocs:
                found = svc.search(name)
                if found is None:
                    raise errdefs.NotFound(f"No such image: {name}")
                add_assoc(found, None)
        else:
            tagged = svc.refs.get(ref)
            if tagged is None:
                raise errdefs.NotFound("reference does not exist")
            add_assoc(tagged, ref)
    return order, tags


def save(svc: ImageBackend, names: list[str], out: IO[bytes]) -> None:
    """Write a docker-save archive of `names` to `out` (tarexport saveSession)."""
    order, tags = _parse_names(svc, names)
    entries: dict[str, tuple[bytes | str, float]] = {}  # archive name -> (bytes, or a temp file path), mtime
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    spool = tempfile.mkdtemp(prefix="docker-export-", dir=svc.tmp_dir)
    try:
        for image_id in order:
            img = svc.image_by_id(image_id)
            if img is None:
                raise errdefs.NotFound(f"No such image: {image_id}")
            layers, parent, chain = [], "", None
            created = _unix(img.created)
            for i, diff_id in enumerate(img.diff_ids):
                chain = create_chain_id(chain, diff_id)
                last = i == len(img.diff_ids) - 1
                v1 = _v1_image(img if last else None, img.created if last else _EPOCH)
                v1_id = _create_v1_id(v1, chain, parent)
                v1 = {"id": v1_id.split(":", 1)[1], **({"parent": parent.split(":", 1)[1]} if parent else {}),
                      **{k: v for k, v in v1.items() if k != "parent"}}
                hexid = v1_id.split(":", 1)[1]
                mtime = created if last else 0.0
                layer_file = os.path.join(spool, hexid + ".tar")
                with open(layer_file, "wb") as f:
                    svc.layers.tar_stream(chain, f)
                entries[f"{hexid}/"] = (b"", mtime)
                entries[f"{hexid}/VERSION"] = (b"1.0", mtime)
                entries[f"{hexid}/json"] = (progress.go_json(v1), mtime)
                entries[f"{hexid}/layer.tar"] = (layer_file, mtime)
                layers.append(f"{hexid}/layer.tar")
                parent = v1_id
            config_name = image_id.split(":", 1)[1] + ".json"
            entries[config_name] = (img.raw, created)
            manifest.append({"Config": config_name, "RepoTags": tags[image_id] or None, "Layers": layers})
            for t in tags[image_id]:
                r = refmod.parse_normalized_named(t)
                if layers:
                    repositories.setdefault(refmod.familiar_name(r), {})[r.tag] = layers[-1].split("/")[0]
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            for name in sorted(entries):
                data, mtime = entries[name]
                if name.endswith("/"):
                    ti = tarfile.TarInfo(name.rstrip("/"))
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
                    tf.addfile(ti)
                elif isinstance(data, str):
                    with open(data, "rb") as f:
                        ti = tarfile.TarInfo(name)
                        ti.size, ti.mtime, ti.mode = os.fstat(f.fileno()).st_size, mtime, 0o644
                        tf.addfile(ti, f)
                else:
                    _add_bytes(tf, name, data, mtime)
            _add_bytes(tf, "manifest.json", progress.go_json(manifest) + b"\n", 0)  # json.Encoder adds "\n"
            if repositories:
                _add_bytes(tf, "repositories", progress.go_json(
                    {k: dict(sorted(v.items())) for k, v in sorted(repositories.items())}) + b"\n", 0)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    for image_id in order:
        svc.log_image_event(image_id, image_id, "save")
