"""Per-API-version adaptations of requests and answers (API 1.42 to 1.52).

Berth's daemon answers in dockerd 20.10's shapes (API 1.41) and never sees a
version. For a request at 1.42 or newer the routers call the functions here,
which turn the 1.41 answer into the one dockerd 29 gives at that version, and
adjust requests the way moby's routers do (moby/daemon/server/router/*/…_routes.go
on the main branch, api/docs/CHANGELOG.md). A request at 1.41 or below is never
touched: every function returns its input unchanged (the same object, so the
bytes written are the ones written before this module existed).

Changelog items, v1.42 to v1.52, and what Berth does with each
(I = implemented here, N/A = Berth does not serve the endpoint or feature,
U = unversioned in dockerd (not gated; Berth keeps 20.10 behaviour at <= 1.41),
G = gap: applies but not done yet, see the README section "API versions").

v1.42
  I  GET /system/df: no `BuilderSize`; `type` query parameter selects object types
     (the others omitted, as dockerd 29's legacyDiskUsage).
  I  POST /containers/{id}/stop, /restart: `signal` query parameter (stop_options(); the daemon's
     containerStop parses it: "cannot stop container: <n>: Invalid signal: <s>", a 500 as
     dockerd's errdefs.System wrap; restart: "Cannot restart container <n>: ...", untyped).
  I  GET /images/json `shared-size`: SharedSize computed as for df (list_images shared_size).
  U  GET /system/df concurrent; POST /images/create platform for fromSrc.
  I  POST /containers/{id}/wait: 400 on an invalid condition (wait_condition()).
  I  POST /containers/create: KernelMemory ignored; mount options must match the type
     (VolumeOptions/BindOptions/TmpfsOptions); ConsoleSize kept (ignored below 1.42).
  G  POST /containers/create BindOptions.CreateMountpoint: types/mount.py has no such field
     (dropped at every version, so a missing bind source still fails as in 20.10).
  I  POST /containers/{id}/update: KernelMemory ignored (and KernelMemoryTCP from 1.52).
  I  GET /containers/{id}/json: KernelMemory, KernelMemoryTCP omitted when 0.
  I  GET /info: KernelMemory/KernelMemoryTCP omitted on cgroup v2.
  I  GET/HEAD /_ping: `Swarm: inactive` header (Builder-Version not sent: no builder).
  I  logs, attach, exec start: Content-Type multiplexed-stream / raw-stream
     (stream_content_type() for logs; hijack_content_type() for attach/exec start, where
     only a `101 UPGRADED` head of a non-TTY stream says multiplexed, as in moby).
  N/A cluster volumes (ClusterVolumeSpec, PUT /volumes/{name}); BuildCache Parent/Parents.
  G  attach/ws stdin/stdout/stderr (no websocket attach in Berth).
  I  POST /containers/{id}/exec ConsoleSize: exec_console_size() for the exec router (at
     exec start also dropped without Tty, as postContainerExecStart).
  I  POST /volumes/prune prunes anonymous volumes only unless `all=true` (volume_prune_filters(),
     withPrune's messages). dockerd 23+ labels every volume created without a name
     `com.docker.volume.anonymous` (unversioned); 20.10 did not, and a 1.41 answer must not
     change, so Berth keeps an "Anonymous" marker in the volume's metadata.json and shows
     and filters it as that label from 1.42 on (volume_anonymous_label(); inspect, list,
     create, prune, df).
v1.43
  I  POST /containers/create HostConfig.Annotations accepted (dropped below 1.43).
  I  GET /images/json: untagged images get [] instead of `<none>:<none>`/`<none>@<none>`.
  U  no-new-privileges in SecurityOptions.
v1.44
  U  GET /images/json `until` filter (unversioned in dockerd).
  I  VirtualSize omitted from image inspect, image list and system df images.
  N/A image search is_automated.
  G  ReadOnlyNonRecursive/ReadOnlyForceRecursive: ForceRecursive refused below 1.44 (I);
     the daemon does not make read-only binds recursively read-only.
  I  HealthConfig.StartInterval: dropped below 1.44 (health_start_interval(), called at every
     version as 20.10 had no such field); validated from 1.44 ("StartInterval in Healthcheck
     cannot be less than 1ms", daemon/verify.py), stored and shown in inspect. G: an image's
     StartInterval is dropped by the image store (20.10's config normaliser).
  I  GET /info CDISpecDirs ([]); Runtimes `status` not added (G).
  U  networks create IPAM validation / CheckDuplicate (network router's owner).
  U  create/connect report every validation error at once (Berth: the first, as 20.10).
  I  POST /containers/create: several EndpointsConfig entries allowed from 1.44
     (refused at 1.42/1.43 with moby's message; the daemon decides from 1.44).
  I  per-endpoint MacAddress; container-wide Config.MacAddress deprecated with a warning
     (mac_address_bc(): the endpoint's address is handed to the daemon as the
     container-wide one, which is what the daemon applies).
  N/A services Networks/Seccomp/AppArmor.
  I  image inspect Container/ContainerConfig dropped (at 1.45, as the changelog says).
  I  container inspect: DNSNames per endpoint (user-defined networks).
  I  image inspect omits `Created` when the image has none (zero time).
v1.45
  I  POST /containers/create VolumeOptions.Subpath refused below 1.45 (accepted from 1.45;
     G: the volume code does not mount subpaths yet).
  I  image inspect: no Container, ContainerConfig.
  I  container inspect: Aliases no longer hold the short container ID.
  N/A image search is-automated.
v1.46
  I  GET /containers/json HostConfig.Annotations (Berth stores none: nothing to show).
  G  per-endpoint sysctls in DriverOpts (`com.docker.network.endpoint.sysctls`): passed on
     as a DriverOpt; the migration of `--sysctl net.*.eth0.*` (1.46/1.47, with a warning)
     and its refusal from 1.48 (handleSysctlBC) are not done.
  G  tmpfs Options in Mounts; N/A push platform, services, image `create` event (no build).
  G  GET /info Containerd (omitted: not a containerd daemon, as dockerd without containerd).
v1.47
  N/A GET /images/json Manifests (no multi-platform image store; only with manifests=1).
v1.48
  N/A progress `error`/`progress` fields deprecation (no pull/push).
  U  /info AllowNondistributableArtifacts*, BridgeNf* (omitted at 1.49/1.50, done there).
  N/A build prune keep-storage.  G images history/load/save `platform` (single-platform store:
     the parameter is accepted and ignored).
  I  POST /containers/create: VolumeDriver + Mounts warning.
  G  Mount type `image` (refused below 1.48 with moby's message; the daemon has no
     image mounts, so from 1.48 the daemon's own validation answers).
  N/A image Descriptor/Manifests (no containerd store); ImageManifestDescriptor (same).
  N/A networks EnableIPv4 (network router's owner).
  I  EndpointsConfig GwPriority: reset below 1.48; shown (0) in inspect/list from 1.48.
  N/A debug endpoints under /v<version>/.
v1.49
  G  GET /images/{name}/json `platform` (ignored). I /info FirewallBackend not added (G),
  I  RegistryConfig AllowNondistributableArtifacts* omitted, *Commit.Expected omitted.
v1.50
  I  GET /info DiscoveredDevices ([]). I BridgeNfIptables/BridgeNfIp6tables omitted.
  N/A DELETE /images/{name} `platforms`.  I image inspect Config drops the container-only
     fields (Hostname, Domainname, Attach*, Tty, OpenStdin, StdinOnce, Image, ...).
v1.51
  I  GET /images/json Containers = number of containers using the image (was -1).
  N/A deprecations only (NetworkSettings.Bridge, KernelMemoryTCP, Parent/DockerVersion).
v1.52
  G  images save/load multiple `platform` (single-platform store: ignored).
  I  GET /events: no `status`, `id`, `from`; content negotiation (application/x-ndjson,
     application/json-seq).
  N/A GET /networks/{id} Status (network router's owner; network_inspect() hook below).
  I  POST /containers/create: empty PortBindings lists warned about (backfilled at start).
  I  image inspect Config omits Cmd, Entrypoint, Env, Labels, OnBuild, User, Volumes,
     WorkingDir when unset; Parent, Comment, DockerVersion, Author omitted when empty.
  I  container inspect: Config.OnBuild omitted when empty; NetworkSettings drops the
     deprecated top-level fields; Config.MacAddress gone; KernelMemoryTCP gone.
  I  GET /info: KernelMemoryTCP gone.  I GET /containers/json Health summary.
  N/A services/tasks SwapBytes.  G stats `os_type` (the stats router's owner).
  I  GET /system/df ImagesDiskUsage/ContainersDiskUsage/VolumesDiskUsage/BuildCacheDiskUsage
     (the v1.52 yaml's names; the changelog says *Usage), after the legacy fields, which
     `verbose=1` drops for each summary's Items (system_df(); from 1.42 the types not
     asked for are omitted, not null, and BuildCache is [] as an empty builder's).
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import msgspec

from .. import errdefs
from ..types.container import HealthConfig
from .httputils import compare_versions
from .versions_common import (  # re-exported: the routers read them as versions.X
    LEGACY_VERSION,
    MAX_API_VERSION,
    MIN_API_VERSION,
    _drop,
    _drop_empty,
    at_least,
    before,
    encode_doc,
    newer_than_legacy,
    to_doc,
)
from .versions_system import (
    df_types,
    event,
    events_media_type,
    image_inspect,
    image_list,
    system_df,
    system_info,
    volume_anonymous_label,
    volume_prune_filters,
)


def _insert_after(d: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    """A copy of `d` with `key` placed right after `after` (at the end when absent)."""
    if after not in d:
        out = dict(d)
        out.pop(key, None)
        out[key] = value
        return out
    out = {}
    for k, v in d.items():
        if k == key:
            continue
        out[k] = v
        if k == after:
            out[key] = value
    return out


# --- containers -----------------------------------------------------------------------------

_NS_DEPRECATED = (
    "Bridge", "HairpinMode", "LinkLocalIPv6Address", "LinkLocalIPv6PrefixLen", "SecondaryIPAddresses",
    "SecondaryIPv6Addresses", "EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen",
    "IPAddress", "IPPrefixLen", "IPv6Gateway", "MacAddress",
)
# network.EndpointSettings in moby 25+: configuration first, then operational data.
_EP_ORDER = (
    "IPAMConfig", "Links", "Aliases", "MacAddress", "DriverOpts", "GwPriority", "NetworkID", "EndpointID",
    "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "DNSNames",
)
_BUILTIN_NETWORKS = frozenset({"bridge", "host", "none", "default"})


def _is_user_defined(net: str) -> bool:
    return net not in _BUILTIN_NETWORKS and not net.startswith("container:")


def _endpoint(ep: dict[str, Any] | None, version: str, dns_names: list[str] | None) -> dict[str, Any] | None:
    if ep is None or not at_least(version, "1.44"):
        return ep
    ep = dict(ep)
    ep.setdefault("MacAddress", "")
    ep.setdefault("DriverOpts", None)
    if at_least(version, "1.48"):
        ep.setdefault("GwPriority", 0)
    ep["DNSNames"] = dns_names
    return {k: ep[k] for k in _EP_ORDER if k in ep} | {k: v for k, v in ep.items() if k not in _EP_ORDER}


def _dns_names(net: str, ep: dict[str, Any], name: str, short_id: str, hostname: str) -> list[str] | None:
    """buildEndpointDNSNames (moby/daemon/container_operations.go): user-defined
    networks only, once connected: name, aliases, short ID, hostname, deduplicated."""
    if not _is_user_defined(net) or not ep.get("EndpointID"):
        return None
    out: list[str] = []
    for n in [name, *(ep.get("Aliases") or []), short_id, hostname]:
        if n and n not in out:
            out.append(n)
    return out


def _networks(networks: dict[str, Any] | None, version: str, name: str, cid: str, hostname: str,
              strip_short_id: bool) -> dict[str, Any] | None:
    if not networks:
        return networks
    short_id = cid[:12]
    out: dict[str, Any] = {}
    for net, ep in networks.items():
        if ep is not None and strip_short_id and _is_user_defined(net) and ep.get("Aliases"):
            # 20.10 stored the short ID among the aliases; 1.45 shows only the user's.
            aliases = [a for a in ep["Aliases"] if a != short_id]
            ep = dict(ep, Aliases=aliases or None)
        dns = _dns_names(net, ep, name, short_id, hostname) if ep is not None else None
        out[net] = _endpoint(ep, version, dns)
    return out


def _host_config(hc: dict[str, Any], version: str) -> dict[str, Any]:
    """HostConfig as moby 29 writes it: ConsoleSize after VolumesFrom, KernelMemory* omitempty."""
    hc = dict(hc)
    _drop_empty(hc, "KernelMemory", "KernelMemoryTCP")
    if at_least(version, "1.52"):
        _drop(hc, "KernelMemory", "KernelMemoryTCP")
    if "ConsoleSize" in hc:
        hc = _insert_after(hc, "VolumesFrom", "ConsoleSize", hc["ConsoleSize"])
    return hc


def container_inspect(obj: Any, version: str) -> Any:
    """GET /containers/{name}/json (inspect.go getContainersByName + the 1.42+ changes)."""
    if not newer_than_legacy(version):
        return obj
    if isinstance(obj, bytes):
        return _container_inspect_encoded(obj, version)
    return _container_inspect(obj, version)


@functools.lru_cache(maxsize=512)
def _container_inspect_encoded(raw: bytes, version: str) -> bytes:
    """The daemon answers an unchanged container with the same bytes (its inspect cache),
    so their adaptation to `version` is kept too: today's clients ask 1.43 and up."""
    return _container_inspect(raw, version)


def _container_inspect(obj: Any, version: str) -> bytes:
    doc = to_doc(obj)
    cid = doc.get("Id", "")
    name = (doc.get("Name") or "").lstrip("/")
    config = doc.get("Config") or {}
    if isinstance(doc.get("HostConfig"), dict):
        doc["HostConfig"] = _host_config(doc["HostConfig"], version)
    ns = doc.get("NetworkSettings")
    if isinstance(ns, dict):
        ns["Networks"] = _networks(ns.get("Networks"), version, name, cid, config.get("Hostname", ""),
                                   at_least(version, "1.45"))
        if at_least(version, "1.52"):
            _drop(ns, *_NS_DEPRECATED)
    if at_least(version, "1.52") and isinstance(config, dict):
        _drop(config, "MacAddress")
        _drop_empty(config, "OnBuild")
    return encode_doc(doc)


def container_list(items: Any, version: str) -> Any:
    """GET /containers/json (getContainersJSON): endpoint fields of 1.44/1.48, Health of 1.52."""
    if not newer_than_legacy(version):
        return items
    docs = to_doc(items)
    for c in docs:
        ns = c.get("NetworkSettings")
        if isinstance(ns, dict) and ns.get("Networks"):
            ns["Networks"] = {k: _endpoint(v, version, None) for k, v in ns["Networks"].items()}
        if at_least(version, "1.52"):
            health = _health_from_status(c.get("Status", ""))
            if health is not None:
                c["Health"] = health
    return encode_doc(docs)


def _health_from_status(status: str) -> dict[str, Any] | None:
    """container.HealthSummary from the list's Status text ("Up 3s (healthy)")."""
    for word in ("healthy", "unhealthy", "health: starting"):
        if status.endswith(f"({word})"):
            return {"Status": word.replace("health: ", ""), "FailingStreak": 0}
    return None


# --- container create -------------------------------------------------------------------------

_MULTIPLE_ENDPOINTS = "Container cannot be created with multiple network endpoints: {}"


def _lookup(doc: Any, *path: str) -> Any:
    """Go's case-insensitive field match, for the raw request document."""
    cur = doc
    for key in path:
        if not isinstance(cur, dict):
            return None
        if key in cur:
            cur = cur[key]
            continue
        low = key.lower()
        cur = next((v for k, v in cur.items() if k.lower() == low), None)
    return cur


def container_create(version: str, raw: Any, config: Any, hc: Any, nc: Any) -> list[str]:
    """postContainersCreate's version gates from 1.42 on; returns extra warnings.

    `raw` is the decoded request document (for fields the daemon's types do not
    carry); config, hc and nc are the decoded structs, adjusted in place.
    """
    if not newer_than_legacy(version):
        return []
    warnings: list[str] = []
    if hc is not None:
        hc.KernelMemory = 0  # removed in 1.42: "any value it is set to will be ignored"
        _check_mounts(version, _lookup(raw, "HostConfig", "Mounts") or [])
    endpoints = (nc.EndpointsConfig or {}) if nc is not None else {}
    if before(version, "1.44") and len(endpoints) > 1:
        raise errdefs.InvalidParameter(_MULTIPLE_ENDPOINTS.format(", ".join(endpoints)))
    if hc is not None and at_least(version, "1.48"):
        warn = _volume_driver_warning(raw)
        if warn:
            warnings.append(warn)
    warn = mac_address_bc(version, config, hc, nc)
    if warn:
        warnings.append(warn)
    if hc is not None and compare_versions(version, "1.52") == 0:
        empty = [p for p, b in (_lookup(raw, "HostConfig", "PortBindings") or {}).items() if not b]
        if empty:
            warnings.append(
                f"Following container port(s) have an empty list of port-bindings: {', '.join(empty)}. "
                "Starting with API 1.53, such bindings will be discarded."
            )
    return warnings


def _check_mounts(version: str, mounts: Iterable[Any]) -> None:
    for m in mounts:
        if not isinstance(m, dict):
            continue
        mtype = _lookup(m, "Type") or ""
        for opt, want in (("VolumeOptions", "volume"), ("BindOptions", "bind"), ("TmpfsOptions", "tmpfs")):
            if _lookup(m, opt) is not None and mtype != want:
                raise errdefs.InvalidParameter(f'{opt} must not be specified on mount type "{mtype}"')
        if before(version, "1.44") and mtype == "bind" and _lookup(m, "BindOptions", "ReadOnlyForceRecursive"):
            raise errdefs.InvalidParameter("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer")
        if before(version, "1.45") and _lookup(m, "VolumeOptions", "Subpath"):
            raise errdefs.InvalidParameter("VolumeOptions.Subpath needs API v1.45 or newer")
        if before(version, "1.48") and mtype == "image":
            raise errdefs.InvalidParameter('Mount type "Image" needs API v1.48 or newer')


def _volume_driver_warning(raw: Any) -> str:
    """handleVolumeDriverBC (1.48): VolumeDriver does not apply to `Mounts` volumes."""
    if not _lookup(raw, "HostConfig", "VolumeDriver"):
        return ""
    for m in _lookup(raw, "HostConfig", "Mounts") or []:
        if isinstance(m, dict) and _lookup(m, "Type") == "volume" \
                and not _lookup(m, "VolumeOptions", "DriverConfig", "Name"):
            return ("WARNING: the container-wide volume-driver configuration is ignored for volumes specified "
                    "via 'mount'. Use '--mount type=volume,volume-driver=...' instead")
    return ""


def mac_address_bc(version: str, config: Any, hc: Any, nc: Any) -> str:
    """handleMACAddressBC, the other way round for Berth's daemon.

    dockerd 29 moves the container-wide MAC address into the endpoint settings; the
    daemon here (20.10's) applies the container-wide one, so an endpoint address for the
    main network becomes the container-wide address. Below 1.44 endpoint addresses are
    ignored, as the old API did.
    """
    if config is None:
        return ""
    endpoints = (nc.EndpointsConfig or {}) if nc is not None else {}
    mode = (hc.NetworkMode if hc is not None else "") or "default"
    main = "bridge" if mode == "default" else mode
    ep = endpoints.get(main) or (endpoints.get("default") if main == "bridge" else None)
    wide = config.MacAddress or ""
    if before(version, "1.44"):
        for e in endpoints.values():
            if e is not None:
                e.MacAddress = ""
        return ""
    bridge_or_user = mode in ("default", "bridge") or _is_user_defined(mode)
    if not wide:
        if ep is not None and ep.MacAddress and bridge_or_user:
            config.MacAddress = ep.MacAddress
        return ""
    if bridge_or_user and ep is not None and ep.MacAddress and ep.MacAddress != wide:
        raise errdefs.InvalidParameter(
            "the container-wide MAC address must match the endpoint-specific MAC address for the main network, "
            "or be left empty"
        )
    return "The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig instead."


def container_create_response(result: Any, version: str, warnings: list[str]) -> Any:
    """ContainerCreateCreatedBody with the router's own warnings appended."""
    if not warnings:
        return result
    result.Warnings = [*(result.Warnings or []), *warnings]
    return result


def stop_options(query: Any, version: str) -> str:
    """The `signal` of stop/restart (postContainersStop/Restart): read from 1.42 on, ignored
    before. The daemon parses it (an invalid one fails the stop, as containerStop does)."""
    return query.get("signal", "") if newer_than_legacy(version) else ""


def health_start_interval(version: str, config: Any) -> None:
    """postContainersCreate: `Healthcheck.StartInterval` was added in 1.44; older requests
    have it dropped (the 20.10 decoder did not know the field at all)."""
    if before(version, "1.44") and config is not None:
        hc = config.Healthcheck
        if isinstance(hc, HealthConfig):
            hc.StartInterval = msgspec.UNSET


def wait_condition(query: Any, version: str) -> str:
    """The wait `condition`, refused with 400 when unknown from 1.42 on."""
    cond = query.get("condition", "")
    if newer_than_legacy(version) and cond not in ("", "not-running", "next-exit", "removed"):
        raise errdefs.InvalidParameter(f'invalid condition: "{cond}"')
    return cond


RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


def stream_content_type(version: str, multiplexed: bool) -> str:
    """Content-Type of the logs stream: moby's media types from 1.42 on; "" (no header,
    as 20.10 sends logs) before."""
    if not newer_than_legacy(version):
        return ""  # the caller keeps what it wrote before (20.10)
    return MULTIPLEXED_STREAM if multiplexed else RAW_STREAM


def hijack_content_type(version: str, multiplexed: bool, upgrade: bool) -> str:
    """Content-Type in the head of a hijacked attach or exec-start answer.

    postContainersAttach / postContainerExecStart: only the `101 UPGRADED` head of a
    multiplexed (non-TTY) stream says `multiplexed-stream`, from 1.42 on; a plain
    `200 OK` head and every answer before 1.42 say `raw-stream`.
    """
    if upgrade and multiplexed and newer_than_legacy(version):
        return MULTIPLEXED_STREAM
    return RAW_STREAM


def exec_console_size(version: str, size: Any, tty: bool | None = None) -> Any:
    """Exec ConsoleSize: honoured from 1.42 on, ignored before. At exec start (`tty` given)
    it is also dropped without a TTY ("No console without tty", postContainerExecStart)."""
    if not newer_than_legacy(version) or tty is False:
        return None
    return size


def network_inspect(doc: Any, version: str) -> Any:
    """Hook for the network router's owner (1.44 DNSNames/1.48 EnableIPv4/1.52 Status)."""
    return doc


__all__ = [
    "MAX_API_VERSION", "MIN_API_VERSION", "LEGACY_VERSION", "newer_than_legacy", "before", "at_least",
    "to_doc", "encode_doc", "container_inspect", "container_list", "container_create",
    "container_create_response", "mac_address_bc", "stop_options", "health_start_interval", "wait_condition",
    "stream_content_type", "hijack_content_type", "RAW_STREAM", "MULTIPLEXED_STREAM", "exec_console_size",
    "network_inspect",
]


__all__ += [
    "df_types", "event", "events_media_type", "image_inspect", "image_list", "system_df", "system_info",
    "volume_anonymous_label", "volume_prune_filters",
]
