"""Distribution metadata (moby/distribution/metadata/v2_metadata_service.go), kept at
`<image root>/distribution/` as dockerd keeps it:

    v2metadata-by-diffid/sha256/<hex>   [{"Digest","SourceRepository","HMAC"}...] (newest last, ≤ 50)
    diffid-by-digest/sha256/<hex>       the DiffID

Pull records which blob gave which DiffID ("Already exists" next time); push reads the
digests known for a DiffID (existence checks and cross-repository mounts)."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass

from ..pkg import atomicfile

_MAX = 50


@dataclass
class V2Metadata:
    digest: str
    source_repository: str
    hmac: str = ""


def auth_hmac_key(creds_json: bytes) -> bytes:
    return hashlib.sha256(creds_json).digest() if creds_json else b""


def compute_hmac(key: bytes, digest: str, repo: str) -> str:
    if not key:
        return ""
    return hmac.new(key, (digest + repo).encode(), hashlib.sha256).hexdigest()


class MetadataStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _path(self, kind: str, dgst: str) -> str:
        algo, _, hexpart = dgst.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
            raise ValueError(f"invalid digest {dgst}")
        return os.path.join(self.root, kind, algo, hexpart)

    def _write(self, path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomicfile.write_file(path, data, 0o600)

    def get_diff_id(self, dgst: str) -> str | None:
        try:
            with open(self._path("diffid-by-digest", dgst)) as f:
                return f.read().strip() or None
        except (OSError, ValueError):
            return None

    def get_metadata(self, diff_id: str) -> list[V2Metadata]:
        try:
            with open(self._path("v2metadata-by-diffid", diff_id), "rb") as f:
                doc = json.loads(f.read())
        except (OSError, ValueError):
            return []
        return [V2Metadata(str(d.get("Digest")), str(d.get("SourceRepository")), str(d.get("HMAC") or ""))
                for d in doc if isinstance(d, dict)]

    def add(self, diff_id: str, meta: V2Metadata) -> None:
        """Add: newest last, one entry per (digest, repo), at most 50."""
        with self._lock:
            self._write(self._path("diffid-by-digest", meta.digest), diff_id.encode())
            items = [m for m in self.get_metadata(diff_id)
                     if not (m.digest == meta.digest and m.source_repository == meta.source_repository)]
            items.append(meta)
            items = items[-_MAX:]
            self._write(self._path("v2metadata-by-diffid", diff_id),
                        json.dumps([{"Digest": m.digest, "SourceRepository": m.source_repository, "HMAC": m.hmac}
                                    for m in items]).encode())

    def remove(self, diff_id: str, meta: V2Metadata) -> None:
        with self._lock:
            items = [m for m in self.get_metadata(diff_id)
                     if not (m.digest == meta.digest and m.source_repository == meta.source_repository)]
            try:
                self._write(self._path("v2metadata-by-diffid", diff_id),
                            json.dumps([{"Digest": m.digest, "SourceRepository": m.source_repository,
                                         "HMAC": m.hmac} for m in items]).encode())
            except ValueError:
                pass


class ManifestCache:
    """Manifests and manifest lists already fetched, by digest (dockerd 20.10 keeps them in
    its content store, distribution/manifest.go manifestStore), with the repositories
    (`<domain>/<path>`) they came from, as its distribution-source label. `<root>/sha256/<hex>`
    holds the media type, the sources (comma-separated), the bytes, the first two each ending
    in a newline; the bytes are checked against the digest on every read."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _path(self, dgst: str) -> str | None:
        algo, _, hexpart = dgst.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
            return None
        return os.path.join(self.root, algo, hexpart)

    def get(self, dgst: str) -> tuple[str, bytes, list[str]] | None:
        """(media type, bytes, source repositories) of the manifest with this digest, if kept
        and intact."""
        path = self._path(dgst)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        mt, _, rest = data.partition(b"\n")
        sources, _, raw = rest.partition(b"\n")
        if "sha256:" + hashlib.sha256(raw).hexdigest() != dgst:
            return None
        return mt.decode("utf-8", "replace"), raw, [x for x in sources.decode("utf-8", "replace").split(",") if x]

    def put(self, media_type: str, raw: bytes, source: str) -> None:
        """Keep the manifest, or add `source` to the repositories of the one kept."""
        dgst = "sha256:" + hashlib.sha256(raw).hexdigest()
        path = self._path(dgst)
        if path is None or "\n" in media_type or "\n" in source or "," in source:
            return
        with self._lock:
            kept = self.get(dgst)
            sources = sorted(set(kept[2] if kept else []) | ({source} if source else set()))
            if kept is not None and kept[2] == sources:
                return
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            atomicfile.write_file(path, b"\n".join([media_type.encode(), ",".join(sources).encode(), raw]), 0o600,
                                  sync_dir=False)
