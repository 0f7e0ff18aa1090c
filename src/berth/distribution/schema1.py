"""Schema1 manifests as dockerd 20.10 pulls them (vendored docker/distribution
manifest/schema1/manifest.go SignedManifest.UnmarshalJSON, docker/libtrust jsonsign.go
ParsePrettySignature; moby/distribution/pull_v2.go verifySchema1Manifest,
fixManifestLayers, pullSchema1).

A signed manifest's digest is that of its payload: the bytes before the signatures
(`formatLength` of them) followed by the `formatTail` the protected header carries. The
signatures themselves are not checked (dockerd does not), only parsed."""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ..image import reference as refmod
from ..image import v1
from .manifesterror import ManifestError


def _b64url(s: str) -> bytes:
    """joseBase64UrlDecode."""
    s = s.replace("\n", "").replace(" ", "")
    pad = {0: "", 2: "==", 3: "="}.get(len(s) % 4)
    if pad is None:
        raise ManifestError("base64 decode error: illegal base64url string")
    try:
        return base64.urlsafe_b64decode(s + pad)
    except (binascii.Error, ValueError) as e:
        raise ManifestError(f"base64 decode error: {e}") from None


def payload(raw: bytes) -> bytes:
    """libtrust ParsePrettySignature(raw, "signatures").Payload()."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ManifestError(f"error unmarshalling content: {e}") from None
    if not isinstance(doc, dict):
        raise ManifestError("error unmarshalling content: json: cannot unmarshal into Go value of type "
                            "map[string]json.RawMessage")
    if "signatures" not in doc:
        raise ManifestError("missing signature key")
    blocks = doc["signatures"]
    if blocks is not None and not isinstance(blocks, list):
        raise ManifestError("error unmarshalling signatures: json: cannot unmarshal into Go value of type "
                            "[]libtrust.jsParsedSignature")
    length, tail = 0, b""
    for block in blocks or []:
        if not isinstance(block, dict):
            raise ManifestError("error unmarshalling signatures: json: cannot unmarshal into Go value of type "
                                "libtrust.jsParsedSignature")
        protected = block.get("protected")
        try:
            header = json.loads(_b64url(protected if isinstance(protected, str) else ""))
        except ValueError as e:
            raise ManifestError(f"error unmarshalling protected header: {e}") from None
        if not isinstance(header, dict):
            raise ManifestError("error unmarshalling protected header: json: cannot unmarshal into Go value of "
                                "type map[string]interface {}")
        fl = header.get("formatLength")
        if isinstance(fl, bool) or not isinstance(fl, (int, float)):
            raise ManifestError("missing formatted length")
        ft = header.get("formatTail")
        if not isinstance(ft, str):
            raise ManifestError("missing formatted tail")
        try:
            this_tail = _b64url(ft)
        except ManifestError as e:
            raise ManifestError(str(e).replace("base64 decode error", "base64 decode error on tail")) from None
        if length == 0:
            length = int(fl)
        elif length != int(fl):
            raise ManifestError("conflicting format length")
        if not tail:
            tail = this_tail
        elif tail != this_tail:
            raise ManifestError("conflicting format tail")
    if length > len(raw):
        raise ManifestError("invalid format length")
    return raw[:max(length, 0)] + tail


@dataclass
class Schema1:
    """A SignedManifest: the canonical payload and its fields."""

    canonical: bytes
    schema_version: int
    name: str
    tag: str
    architecture: str
    fs_layers: list[str]
    history: list[str]


def _str(doc: dict[str, Any], key: str) -> str:
    v = doc.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ManifestError(f"json: cannot unmarshal {type(v).__name__} into Go struct field Manifest.{key} "
                            "of type string")
    return v


def parse(raw: bytes) -> Schema1:
    canonical = payload(raw)
    try:
        doc = json.loads(canonical)
    except ValueError as e:
        raise ManifestError("unexpected end of JSON input" if not canonical.strip() else str(e)) from None
    if not isinstance(doc, dict):
        raise ManifestError("json: cannot unmarshal into Go value of type schema1.Manifest")
    layers = [d.get("blobSum") if isinstance(d, dict) else None for d in doc.get("fsLayers") or []]
    hist = [h.get("v1Compatibility") if isinstance(h, dict) else None for h in doc.get("history") or []]
    version = doc.get("schemaVersion")
    return Schema1(canonical, version if isinstance(version, int) and not isinstance(version, bool) else 0,
                   _str(doc, "name"), _str(doc, "tag"), _str(doc, "architecture"),
                   [x if isinstance(x, str) else "" for x in layers], [x if isinstance(x, str) else "" for x in hist])


def verify(m: Schema1, ref: refmod.Reference, digest: str) -> None:
    """verifySchema1Manifest: by digest, the payload's digest first; then the shape."""
    if ref.digest and digest != ref.digest:
        raise ManifestError(f"image verification failed for digest {ref.digest}")
    what = json.dumps(refmod.familiar_string(ref))
    if m.schema_version != 1:
        raise ManifestError(f"unsupported schema version {m.schema_version} for {what}")
    if len(m.fs_layers) != len(m.history):
        raise ManifestError(f"length of history not equal to number of layers for {what}")
    if not m.fs_layers:
        raise ManifestError(f"no FSLayers in manifest for {what}")


def fix_layers(m: Schema1) -> None:
    """fixManifestLayers: consecutive entries with one ID count once (the lower one
    stays), every other entry must name the next as its parent, the base none."""
    imgs = []
    for h in m.history:
        try:
            img = v1.decode_v1_image(h.encode())
            v1.validate_id(img.id if isinstance(img.id, str) else "")
        except v1.V1Error as e:
            raise ManifestError(str(e)) from None
        imgs.append((img.id if isinstance(img.id, str) else "", img.parent if isinstance(img.parent, str) else ""))
    if imgs[-1][1]:
        raise ManifestError("invalid parent ID in the base layer of the image")
    seen: set[str] = set()
    last = ""
    for img_id, _ in imgs:
        if img_id != last and img_id in seen:
            raise ManifestError(f"ID {img_id} appears multiple times in manifest")
        last = img_id
        seen.add(img_id)
    for i in range(len(imgs) - 2, -1, -1):
        if imgs[i][0] == imgs[i + 1][0]:
            del m.fs_layers[i], m.history[i]
        elif imgs[i][1] != imgs[i + 1][0]:
            raise ManifestError(f"invalid parent ID. Expected {imgs[i + 1][0]}, got {imgs[i][1]}")



def deprecation_notice(ref: refmod.Reference) -> str:
    """What dockerd writes when a manifest list entry is a schema1 manifest."""
    return ("[DEPRECATION NOTICE] v2 schema1 manifests in manifest lists are not supported and will break in a "
            f"future release. Suggest author of {ref} to upgrade to v2 schema2. More information "
            "at https://docs.docker.com/registry/spec/deprecated-schema-v1/")


def outdated_warning(ref: refmod.Reference) -> str:
    """What dockerd writes when a docker.io image comes as schema1."""
    return (f"Image {ref} uses outdated schema1 manifest format. Please upgrade to a schema2 "
            "image for better future compatibility. More information at "
            "https://docs.docker.com/registry/spec/deprecated-schema-v1/")
