"""Builders of test layer tars, docker-save archives and OCI layouts (test helper, not a test)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field

MTIME = 1700000000


@dataclass
class Entry:
    """One tar member: kind is file, dir, symlink, hardlink, chardev, fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    linkname: str = ""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """An uncompressed layer tar holding `entries` in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.mtime = MTIME
            ti.uid, ti.gid = e.uid, e.gid
            ti.pax_headers = dict(e.pax)
            if e.kind == "file":
                ti.type = tarfile.REGTYPE
                ti.size = len(e.data)
                ti.mode = 0o644 if e.mode is None else e.mode
                tf.addfile(ti, io.BytesIO(e.data))
                continue
            if e.kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755 if e.mode is None else e.mode
            elif e.kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, e.linkname, 0o777
            elif e.kind == "hardlink":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, e.linkname, 0o644
            elif e.kind == "chardev":
                ti.type, ti.mode = tarfile.CHRTYPE, 0o666
                ti.devmajor, ti.devminor = 1, 3
            elif e.kind == "fifo":
                ti.type, ti.mode = tarfile.FIFOTYPE, 0o644
            tf.addfile(ti)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(diff_ids: list[str], cmd: list[str] | None = None, labels: dict[str, str] | None = None,
                 created: str = "2024-01-01T00:00:00Z") -> bytes:
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": cmd or ["sh"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": f"layer {i}"} for i in range(len(diff_ids))],
    }
    return json.dumps(cfg, separators=(",", ":")).encode()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = len(data), MTIME, 0o644
    tf.addfile(ti, io.BytesIO(data))


def docker_save_tar(layers: list[bytes], repo_tags: list[str], cmd: list[str] | None = None,
                    labels: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A docker-save archive of one image; returns (archive bytes, image id)."""
    diff_ids = [sha256(layer) for layer in layers]
    config = image_config(diff_ids, cmd, labels)
    image_id = sha256(config)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        names = []
        for i, layer in enumerate(layers):
            d = hashlib.sha256(f"v1-{i}-{diff_ids[i]}".encode()).hexdigest()
            _add(tf, f"{d}/layer.tar", layer)
            _add(tf, f"{d}/VERSION", b"1.0")
            names.append(f"{d}/layer.tar")
        _add(tf, image_id[7:] + ".json", config)
        manifest = [{"Config": image_id[7:] + ".json", "RepoTags": repo_tags, "Layers": names}]
        _add(tf, "manifest.json", json.dumps(manifest).encode())
    return buf.getvalue(), image_id


def oci_layout_tar(layers: list[bytes], ref_name: str | None, gzip_layers: bool = True) -> tuple[bytes, str]:
    """An OCI image layout archive of one image; returns (archive bytes, image id)."""
    diff_ids = [sha256(layer) for layer in layers]
    config = image_config(diff_ids)
    image_id = sha256(config)
    blobs: dict[str, bytes] = {image_id: config}
    descs = []
    for layer in layers:
        blob = gzip.compress(layer, mtime=0) if gzip_layers else layer
        d = sha256(blob)
        blobs[d] = blob
        mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else "")
        descs.append({"mediaType": mt, "digest": d, "size": len(blob)})
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image_id, "size": len(config)},
        "layers": descs,
    }).encode()
    mdig = sha256(manifest)
    blobs[mdig] = manifest
    mdesc: dict[str, object] = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig,
                                "size": len(manifest)}
    if ref_name:
        mdesc["annotations"] = {"io.containerd.image.name": ref_name, "org.opencontainers.image.ref.name": "latest"}
    index = {"schemaVersion": 2, "manifests": [mdesc]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        _add(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tf, "index.json", json.dumps(index).encode())
        for d, blob in blobs.items():
            _add(tf, "blobs/sha256/" + d[7:], blob)
    return buf.getvalue(), image_id
