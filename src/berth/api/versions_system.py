"""Per-API-version adaptations of image, system, event and volume answers (1.42 to 1.52).

The list of changelog items and what Berth does with each is at the top of
api/versions.py; this module holds the image/system/events/volumes half.
moby/daemon/server/router/image/image_routes.go, system/system_routes.go,
volume/volume_routes.go (main branch). Requests at 1.41 and below are returned untouched.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import errdefs
from .versions_common import _drop, _drop_empty, at_least, encode_doc, newer_than_legacy, to_doc

# --- images ------------------------------------------------------------------------------------

# container.Config fields that are not part of an image's config (dropped from 1.50).
_NOT_IMAGE_CONFIG = (
    "Hostname", "Domainname", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce",
    "Image", "NetworkDisabled", "MacAddress", "StopTimeout",
)
_IMAGE_CONFIG_OMITEMPTY = ("Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "User", "Volumes", "WorkingDir")
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"

UsedBy = Callable[[str], list[tuple[str, bool]]]


def image_inspect(doc: dict[str, Any], version: str) -> dict[str, Any]:
    """GET /images/{name}/json (image_routes.go getImagesByName, 1.44/1.45/1.50/1.52)."""
    if not newer_than_legacy(version):
        return doc
    doc = dict(doc)
    if at_least(version, "1.44"):
        _drop(doc, "VirtualSize")
        if doc.get("Created") in ("", _GO_ZERO_TIME):
            _drop(doc, "Created")
    if at_least(version, "1.45"):
        _drop(doc, "Container", "ContainerConfig")
    cfg = doc.get("Config")
    if isinstance(cfg, dict):
        cfg = dict(cfg)
        if at_least(version, "1.50"):
            _drop(cfg, *_NOT_IMAGE_CONFIG)
        if at_least(version, "1.52"):
            _drop_empty(cfg, *_IMAGE_CONFIG_OMITEMPTY)
        doc["Config"] = cfg
    if at_least(version, "1.52"):
        _drop_empty(doc, "Parent", "Comment", "DockerVersion", "Author")
    return doc


def image_list(docs: list[dict[str, Any]], version: str, used_by: UsedBy | None) -> list[dict[str, Any]]:
    """GET /images/json (getImagesJSON): 1.43 no `<none>` placeholders, 1.44 no VirtualSize,
    1.51 Containers counted."""
    if not newer_than_legacy(version):
        return docs
    out = []
    for d in docs:
        d = dict(d)
        if at_least(version, "1.43"):
            if d.get("RepoTags") == ["<none>:<none>"] or d.get("RepoTags") is None:
                d["RepoTags"] = []
            if d.get("RepoDigests") == ["<none>@<none>"] or d.get("RepoDigests") is None:
                d["RepoDigests"] = []
        if at_least(version, "1.44"):
            _drop(d, "VirtualSize")
        if at_least(version, "1.51") and used_by is not None and d.get("Containers", -1) == -1:
            d["Containers"] = len(used_by(d.get("Id", "")))
        out.append(d)
    return out


# --- system -------------------------------------------------------------------------------------

_DF_TYPES = {"container": "Containers", "image": "Images", "volume": "Volumes", "build-cache": "BuildCache"}


def df_types(query_types: list[str], version: str) -> list[str] | None:
    """The `type` parameter of GET /system/df (1.42); None means every type."""
    if not newer_than_legacy(version) or not query_types:
        return None
    for t in query_types:
        if t not in _DF_TYPES:
            raise errdefs.InvalidParameter(f"unknown object type: {t}")
    return query_types


def system_df(obj: Any, version: str, types: list[str] | None, verbose: bool = False) -> Any:
    """GET /system/df as dockerd 29's getDiskUsage writes it from 1.42 on.

    1.42-1.51: the legacy document: no BuilderSize; only the asked `type`s (the others
    omitted, as `LayersSize` when 0: omitempty/omitzero); `BuildCache` [] (an empty
    builder, as Berth's build prune). 1.44: no image `VirtualSize`. 1.52: the summaries
    ImagesDiskUsage, ContainersDiskUsage, VolumesDiskUsage, BuildCacheDiskUsage follow
    the legacy fields, which `verbose=1` drops in favour of each summary's `Items`.
    """
    if not newer_than_legacy(version):
        return obj
    doc = to_doc(obj)
    want = set(types) if types is not None else set(_DF_TYPES)
    images = doc.get("Images") or []
    if at_least(version, "1.44"):
        for img in images:
            _drop(img, "VirtualSize")
    containers = doc.get("Containers") or []
    volumes = doc.get("Volumes") or []
    build_cache = doc.get("BuildCache") or []
    verbose = verbose and at_least(version, "1.52")
    out: dict[str, Any] = {}
    if not verbose:
        if "image" in want:
            if doc.get("LayersSize"):
                out["LayersSize"] = doc["LayersSize"]
            out["Images"] = images
        if "container" in want:
            out["Containers"] = containers
        if "volume" in want:
            out["Volumes"] = volumes
        if "build-cache" in want:
            out["BuildCache"] = build_cache
    if at_least(version, "1.52"):
        if "image" in want:
            active = [i for i in images if (i.get("Containers") or 0) > 0]
            total = doc.get("LayersSize") or 0
            # Layers that active images use are not reclaimable (their sizes may overlap).
            used = sum(i.get("Size") or 0 for i in active)
            out["ImagesDiskUsage"] = _usage(len(active), images, max(total - used, 0), len(images), total, verbose)
        if "container" in want:
            busy = [c for c in containers if c.get("State") in ("running", "paused", "restarting")]
            total = sum(c.get("SizeRw") or 0 for c in containers)
            idle = total - sum(c.get("SizeRw") or 0 for c in busy)
            out["ContainersDiskUsage"] = _usage(len(busy), containers, idle, len(containers), total, verbose)
        if "volume" in want:
            def size(v: dict[str, Any]) -> int:
                return max((v.get("UsageData") or {}).get("Size") or 0, 0)

            used_vols = [v for v in volumes if ((v.get("UsageData") or {}).get("RefCount") or 0) > 0]
            total = sum(size(v) for v in volumes)
            idle = total - sum(size(v) for v in used_vols)
            out["VolumesDiskUsage"] = _usage(len(used_vols), volumes, idle, len(volumes), total, verbose)
        if "build-cache" in want:
            out["BuildCacheDiskUsage"] = _usage(0, build_cache, 0, len(build_cache), 0, verbose)
    return encode_doc(out)


def _usage(active: int, items: list[Any], reclaimable: int, count: int, size: int, verbose: bool) -> dict[str, Any]:
    """One *DiskUsage summary (api/types/system, swagger-generated: fields in name order,
    all omitempty); `Items` only with `verbose`."""
    out: dict[str, Any] = {}
    for key, value in (("ActiveCount", active), ("Items", items if verbose else None),
                       ("Reclaimable", reclaimable), ("TotalCount", count), ("TotalSize", size)):
        if value:
            out[key] = value
    return out


def system_info(obj: Any, version: str, cgroup_v2: bool) -> Any:
    """GET /info (system_routes.go getInfo and the changelog's 1.42-1.52 items)."""
    if not newer_than_legacy(version):
        return obj
    doc = to_doc(obj)
    if cgroup_v2:
        _drop(doc, "KernelMemory", "KernelMemoryTCP")
    if at_least(version, "1.44"):
        doc["CDISpecDirs"] = []
    if at_least(version, "1.49"):
        reg = doc.get("RegistryConfig")
        if isinstance(reg, dict):
            _drop(reg, "AllowNondistributableArtifactsCIDRs", "AllowNondistributableArtifactsHostnames")
        for k in ("ContainerdCommit", "RuncCommit", "InitCommit"):
            if isinstance(doc.get(k), dict):
                _drop(doc[k], "Expected")
    if at_least(version, "1.50"):
        _drop(doc, "BridgeNfIptables", "BridgeNfIp6tables")
        doc["DiscoveredDevices"] = []
    if at_least(version, "1.52"):
        _drop(doc, "KernelMemoryTCP")
    return encode_doc(doc)


def event(ev: Any, version: str) -> bytes:
    """One GET /events message, encoded as the stream writes it (HTML-escaped, "\\n");
    1.52 drops the legacy `status`, `id` and `from`."""
    doc = to_doc(ev)
    if at_least(version, "1.52"):
        _drop(doc, "status", "id", "from")
    out = encode_doc(doc)
    if b"<" in out or b">" in out or b"&" in out:
        out = out.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    return out


def events_media_type(accept: str, version: str) -> str:
    """Content negotiation of GET /events (1.52): application/json (default),
    application/x-ndjson, or application/json-seq (each record led by RS, RFC 7464)."""
    if not at_least(version, "1.52") or not accept:
        return "application/json"
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("application/x-ndjson", "application/json-seq", "application/json"):
            return media
    return "application/json"


def volume_anonymous_label(version: str) -> bool:
    """Whether anonymous volumes show (and filter) as labelled `com.docker.volume.anonymous`.

    dockerd 23+ sets that label on every volume created without a name, whatever the API
    version; 20.10 never did, so Berth shows it from 1.42 on only (volume/service.py).
    """
    return newer_than_legacy(version)


def volume_prune_filters(filters: Any, version: str) -> Any:
    """POST /volumes/prune (1.42): anonymous volumes only unless the `all` filter is true.

    volumes_routes.go postVolumesPrune: the `all` filter is consumed here; without it the
    `label=com.docker.volume.anonymous` filter limits the prune to anonymous volumes (the
    service matches it against its anonymous marker, see volume_anonymous_label).
    """
    if not newer_than_legacy(version):
        return filters
    values = list(filters.get("all")) if filters.contains("all") else []
    # withPrune (volume/service/service.go): `all` is consumed here, so the service's
    # 20.10 filter validation (label, label!) still refuses anything else.
    for v in values:
        filters.delete("all", v)
    if len(values) > 1:
        shown = " ".join(sorted(values))  # fmt %s of the []string (filters.Get: map order)
        raise errdefs.InvalidParameter(f"invalid filter 'all=[{shown}]': only one value is expected")
    if values:
        truth = _parse_bool(values[0])
        if truth is None:
            raise errdefs.InvalidParameter(
                f'invalid filter \'all\': strconv.ParseBool: parsing "{values[0]}": invalid syntax')
        if truth:
            return filters
    filters.add("label", "com.docker.volume.anonymous")
    return filters


def _parse_bool(raw: str) -> bool | None:
    """strconv.ParseBool; None for what it refuses."""
    if raw in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if raw in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None
