"""Make a busybox image from the host's static busybox, with no registry.

`rootfs_tar()` is a root filesystem as a tar stream (for `POST /images/create?fromSrc=-`,
i.e. `docker import`); `save_tar()` wraps it as a docker-save archive (for
`POST /images/load`). The bootstrap script and the tests both use these, so a new
user's first `docker create busybox` works and the tests exercise Berth's own
import and load paths.

    python -m berth.tools.busybox save OUT.tar [REPO:TAG]
    python -m berth.tools.busybox rootfs OUT.tar
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
CREATED = "2026-01-01T00:00:00Z"
ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def find_busybox() -> str:
    for p in BUSYBOX_CANDIDATES:
        if os.path.exists(p):
            return p
    found = shutil.which("busybox")
    if not found:
        raise FileNotFoundError("busybox not found: install busybox-static")
    return found


def _entry(name: str, kind: bytes = tarfile.DIRTYPE, mode: int = 0o755, data: bytes = b"", link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = 0
    ti.uid = ti.gid = 0
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
    if link:
        ti.linkname = link
    return ti, data


def rootfs_tar(busybox: str | None = None) -> bytes:
    """A deterministic busybox root filesystem (same host busybox → same bytes)."""
    busybox = busybox or find_busybox()
    with open(busybox, "rb") as f:
        binary = f.read()
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    entries: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    for d in ("bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin", "var"):
        entries[d] = _entry(d, mode=0o1777 if d == "tmp" else (0o700 if d == "root" else 0o755))
    entries["bin/busybox"] = _entry("bin/busybox", tarfile.REGTYPE, 0o755, binary)
    for a in applets:
        a = a.lstrip("/")
        if a in entries or a == "bin/busybox":
            continue
        parent = os.path.dirname(a)
        if parent and parent not in entries:
            entries[parent] = _entry(parent)
        entries[a] = _entry(a, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
    entries["etc/passwd"] = _entry("etc/passwd", tarfile.REGTYPE, 0o644,
                                   b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    entries["etc/group"] = _entry("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnogroup:x:65534:\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(entries):
            ti, data = entries[name]
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def save_tar(ref: str = "busybox:latest", layer: bytes | None = None, cmd: list[str] | None = None) -> bytes:
    """A docker-save archive holding one image made of `layer` (default: busybox)."""
    layer = rootfs_tar() if layer is None else layer
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    config = {
        "architecture": arch, "os": "linux", "created": CREATED,
        "config": {"Env": [ENV_PATH], "Cmd": cmd or ["sh"], "Entrypoint": None, "WorkingDir": "",
                   "Labels": None, "Volumes": None, "ExposedPorts": None},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": "berth busybox"}],
    }
    cfg = json.dumps(config, separators=(",", ":")).encode()
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    layer_dir = diff_id.split(":")[1]
    repo, _, tag = ref.rpartition(":")
    manifest = [{"Config": f"{cfg_hex}.json", "RepoTags": [ref], "Layers": [f"{layer_dir}/layer.tar"]}]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in (
            (f"{cfg_hex}.json", cfg),
            (f"{layer_dir}/layer.tar", layer),
            (f"{layer_dir}/VERSION", b"1.0"),
            ("manifest.json", json.dumps(manifest).encode()),
            ("repositories", json.dumps({repo: {tag: layer_dir}}).encode()),
        ):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
            t.addfile(ti, io.BytesIO(data))
    return out.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("save", "rootfs"):
        print(__doc__, file=sys.stderr)
        return 2
    data = save_tar(argv[2] if len(argv) > 2 else "busybox:latest") if argv[0] == "save" else rootfs_tar()
    with open(argv[1], "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
