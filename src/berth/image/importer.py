"""`docker import` (moby/daemon/images/image_import.go ImportImage) and the `changes`
it accepts (moby/builder/dockerfile/builder.go BuildFromConfig, restricted to the
commit commands).
"""
from __future__ import annotations

import json
import platform
import shlex
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import ENGINE_VERSION, errdefs
from . import reference as refmod
from .image import normalize_config, now_rfc3339_nano
from .progress import go_json

if TYPE_CHECKING:
    from .backend import ImageBackend

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x"}

# builder/dockerfile: validCommitCommands
_VALID_COMMIT_COMMANDS = ("cmd", "entrypoint", "healthcheck", "env", "expose", "label", "onbuild", "user",
                          "volume", "workdir")


def _json_or_shell(rest: str, shell: bool) -> list[str]:
    rest = rest.strip()
    if rest.startswith("["):
        try:
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(x, str) for x in value):
                return value
        except ValueError:
            pass
    return ["/bin/sh", "-c", rest] if shell else rest.split()


def _key_values(rest: str, key: str) -> list[tuple[str, str]]:
    """ENV/LABEL (parser parseNameVal): `k=v k2="v 2"`, or the legacy `k v` form."""
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        parts = rest.strip().split(None, 1)
        if len(parts) < 2:
            raise errdefs.InvalidParameter(f"{key} must have two arguments")
        return [(parts[0], parts[1])]
    out = []
    for w in words:
        k, sep, v = w.partition("=")
        if not sep:
            raise errdefs.InvalidParameter("Syntax error - can't find = in \"" + w + "\". Must be of the form: name=value")
        out.append((k, v))
    return out


def build_from_config(changes: list[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply Dockerfile-style `changes` to a copy of `base` (a container.Config document;
    empty for import). As dispatchEntrypoint, an ENTRYPOINT clears a CMD these changes
    did not set."""
    cfg: dict[str, Any] = dict(base or {})
    cmd_set = False
    for change in changes:
        line = change.strip()
        if not line:
            continue
        cmd, _, rest = line.partition(" ")
        lower = cmd.lower()
        if lower not in _VALID_COMMIT_COMMANDS:
            raise errdefs.InvalidParameter(f"{lower} is not a valid change command")
        if lower == "cmd":
            cfg["Cmd"] = _json_or_shell(rest, True)
            cmd_set = cmd_set or bool(rest.strip())
        elif lower == "entrypoint":
            cfg["Entrypoint"] = _json_or_shell(rest, True)
            if not cmd_set:
                cfg["Cmd"] = None
        elif lower == "env":
            env = list(cfg.get("Env") or [])
            for k, v in _key_values(rest, "ENV"):
                # dispatchEnv: a variable already set is replaced where it stands
                keys = [e.partition("=")[0] for e in env]
                if k in keys:
                    env[keys.index(k)] = f"{k}={v}"
                else:
                    env.append(f"{k}={v}")
            cfg["Env"] = env
        elif lower == "label":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_key_values(rest, "LABEL"))
            cfg["Labels"] = labels
        elif lower == "expose":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                ports[p if "/" in p else p + "/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif lower == "user":
            cfg["User"] = rest.strip()
        elif lower == "workdir":
            cfg["WorkingDir"] = rest.strip()
        elif lower == "volume":
            vols = dict(cfg.get("Volumes") or {})
            for v in _json_or_shell(rest, False):
                vols[v] = {}
            cfg["Volumes"] = vols
        elif lower == "onbuild":
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest.strip()]
        elif lower == "healthcheck":
            raise errdefs.InvalidParameter("HEALTHCHECK is not supported by import in Berth")
    out = normalize_config(cfg)
    assert out is not None
    return out


def import_image(svc: ImageBackend, tar_stream: BinaryIO, repo: str, tag: str, changes: list[str],
                 message: str) -> str:
    """Register the rootfs tar as a one-layer image; tag it if `repo` is given. Returns the image ID."""

    new_ref = None
    if repo:
        try:
            new_ref = refmod.parse_normalized_named(repo)
            if new_ref.digest:
                raise errdefs.InvalidParameter("cannot import digest reference")
            if tag:
                new_ref = refmod.with_tag(new_ref, tag)
        except refmod.ReferenceError as e:
            raise errdefs.InvalidParameter(str(e)) from None
    config = build_from_config(changes)
    if not message:
        message = "Imported from -"
    layer = svc.layers.register(tar_stream, None)
    try:
        created = now_rfc3339_nano()
        doc: dict[str, Any] = {
            "architecture": _GOARCH.get(platform.machine(), platform.machine()),
            "comment": message,
            "config": config,
            "container_config": normalize_config({}),
            "created": created,
            "docker_version": ENGINE_VERSION,
            "history": [{"created": created, "comment": message}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
        img = svc.create_image(go_json(doc))
    finally:
        svc.layers.release(layer.chain_id)
    if new_ref is not None:
        svc.tag_image_with_reference(img.id, new_ref)
    svc.log_image_event(img.id, img.id, "import")
    return img.id
