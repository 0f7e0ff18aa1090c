"""Manifests and platform matching (distribution/manifest/*, moby/distribution/pull_v2.go
pullManifestList, pull_v2_unix.go filterManifests)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..pkg import platforms
from ..pkg.platforms import Platform
from . import schema1
from .manifesterror import ManifestError

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# One Accept line per type, as the vendored client sends them.
ACCEPT = [SCHEMA2, MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX, SCHEMA1_SIGNED, "application/json"]
_CONFIG_OK = {CONFIG_V1, OCI_CONFIG, "application/octet-stream", "application/json", "text/html", ""}


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: list[str] | None = None
    platform: dict[str, Any] | None = None


@dataclass
class Manifest:
    media_type: str
    raw: bytes
    digest: str
    doc: dict[str, Any]
    signed: schema1.Schema1 | None = None  # a schema1 manifest (digest: of its payload)

    @property
    def is_list(self) -> bool:
        return self.media_type in (MANIFEST_LIST, OCI_INDEX)

    @property
    def config(self) -> Descriptor:
        c = self.doc.get("config") or {}
        return Descriptor(str(c.get("mediaType") or ""), str(c.get("digest") or ""), int(c.get("size") or 0))

    @property
    def layers(self) -> list[Descriptor]:
        return [Descriptor(str(d.get("mediaType") or ""), str(d.get("digest") or ""), int(d.get("size") or 0),
                           d.get("urls")) for d in self.doc.get("layers") or [] if isinstance(d, dict)]

    @property
    def entries(self) -> list[Descriptor]:
        return [Descriptor(str(d.get("mediaType") or ""), str(d.get("digest") or ""), int(d.get("size") or 0),
                           None, d.get("platform") if isinstance(d.get("platform"), dict) else {})
                for d in self.doc.get("manifests") or [] if isinstance(d, dict)]


def parse(content_type: str, raw: bytes) -> Manifest:
    """distribution.UnmarshalManifest by Content-Type (parameters stripped; unknown → schema1)."""
    mt = content_type.split(";", 1)[0].strip().lower()
    if mt not in (SCHEMA2, MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX):
        # schema1 is registered for its signed type, "" and application/json, and is the
        # default for any other type (the unsigned v1+json too, which then lacks signatures)
        s1 = schema1.parse(raw)
        return Manifest(SCHEMA1_SIGNED, raw, sha256_digest(s1.canonical), {}, s1)
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ManifestError(str(e)) from None
    if not isinstance(doc, dict):
        raise ManifestError("json: cannot unmarshal into Go value of type manifest")
    field = doc.get("mediaType") or ""
    if mt == SCHEMA2:
        if field != SCHEMA2:
            raise ManifestError(f"mediaType in manifest should be '{SCHEMA2}' not '{field}'")
    elif mt == MANIFEST_LIST:
        if field != MANIFEST_LIST:
            raise ManifestError(f"mediaType in manifest list should be '{MANIFEST_LIST}' not '{field}'")
    elif mt == OCI_MANIFEST:
        if field and field != OCI_MANIFEST:
            raise ManifestError(f"if present, mediaType in manifest should be '{OCI_MANIFEST}' not '{field}'")
    elif mt == OCI_INDEX:
        if "config" in doc or "layers" in doc:
            raise ManifestError("index: expected index but found manifest")
        if field and field != OCI_INDEX:
            raise ManifestError(f"if present, mediaType in image index should be '{OCI_INDEX}' not '{field}'")
    return Manifest(mt, raw, sha256_digest(raw), doc)


def check_config_media_type(m: Manifest) -> None:
    mt = m.config.media_type
    if mt not in _CONFIG_OK:
        cls = "plugin" if mt == PLUGIN_CONFIG else "unknown"
        raise ManifestError(f'Encountered remote "{mt}"({cls}) when fetching')


def check_layer_media_type(mt: str) -> None:
    """xfer's check: docker/oci prefixes and a few generic types; zstd passes (and fails later)."""
    if mt in ("application/octet-stream", "application/json", "text/html", ""):
        return
    for prefix in ("application/vnd.oci.image", "application/vnd.docker"):
        if mt == prefix or mt.startswith(prefix + "."):
            return
    raise ManifestError(f"unsupported media type {mt}")


def default_platform(requested: Platform | None) -> Platform:
    p = requested or Platform("", "")
    return platforms.normalize(Platform(p.OS or platforms.HOST_OS, p.Architecture or platforms.HOST_ARCH,
                                        p.Variant))


def select(m: Manifest, requested: Platform | None) -> Descriptor:
    """filterManifests: first entry whose OS/arch/variant equal the wanted ones, after
    normalisation; for arm only, equal OS+arch as a fallback."""
    want = default_platform(requested)
    entries = m.entries
    for d in entries:
        p = d.platform or {}
        have = platforms.normalize(Platform(str(p.get("os") or ""), str(p.get("architecture") or ""),
                                            str(p.get("variant") or "")))
        if have == want:
            return d
    if want.Architecture == "arm":
        for d in entries:
            p = d.platform or {}
            have = platforms.normalize(Platform(str(p.get("os") or ""), str(p.get("architecture") or ""), ""))
            if have.OS == want.OS and have.Architecture == want.Architecture:
                return d
    raise ManifestError(f"no matching manifest for {platforms.format_platform(want)} in the manifest list entries")


def schema2_manifest(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """The schema2 manifest push writes: json.MarshalIndent with a 3-space indent."""
    doc = {"schemaVersion": 2, "mediaType": SCHEMA2,
           "config": {"mediaType": config.media_type, "size": config.size, "digest": config.digest},
           "layers": [{"mediaType": d.media_type, "size": d.size, "digest": d.digest,
                       **({"urls": d.urls} if d.urls else {})} for d in layers]}
    text = json.dumps(doc, indent=3, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")).encode()
