"""GET /containers/{id}/json for API 1.20 and older (moby/daemon/inspect.go
containerInspect120, daemon/inspect_linux.go containerInspectPre120, the
api/types/versions/v1p19 and v1p20 types).

Both shapes embed the current `container.Config` and add fields after it; Go's encoder
keeps the outer (shallower) `MacAddress`, `NetworkDisabled` and `ExposedPorts`, so those
move from their place inside Config to the end, always present. NetworkSettings is the
pre-1.21 flat one: no `Networks`, and `Ports` as stored (`null` before a start).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from ..types import gojson
from .inspect import container_inspect, container_mounts, network_settings_json

if TYPE_CHECKING:
    from .core import Daemon

_HIDDEN = ("MacAddress", "NetworkDisabled", "ExposedPorts")
_BASE_END = "GraphDriver"  # ContainerJSONBase ends here (SizeRw/SizeRootFs are never asked for)


def _value(v: Any) -> bytes:
    return gojson.encode_response(v)[:-1]


def _object(pairs: list[tuple[str, bytes]]) -> bytes:
    """A JSON object with keys in the given order (values already encoded)."""
    return b"{" + b",".join(_value(k) + b":" + v for k, v in pairs) + b"}"


def _struct_pairs(s: Any, skip: tuple[str, ...] = ()) -> list[tuple[str, bytes]]:
    """A struct's fields as encoded pairs, in declaration order, without unset ones."""
    return [(f, _value(getattr(s, f))) for f in s.__struct_fields__ if f not in skip and getattr(s, f) is not UNSET]


async def container_inspect_legacy(d: Daemon, name: str, pre120: bool) -> bytes:
    """containerInspectPre120 (`pre120`: API < 1.20) or containerInspect120 (1.20), encoded."""
    cur = await container_inspect(d, name, False)
    ctr = d.get_container(cur.Id)
    pairs: list[tuple[str, bytes]] = []
    for f in cur.__struct_fields__:
        if f in ("SizeRw", "SizeRootFs"):
            continue
        pairs.append((f, _value(getattr(cur, f))))
        if f == _BASE_END:
            break
    cfg = ctr.Config
    config = _struct_pairs(cur.Config, skip=_HIDDEN) + [
        ("MacAddress", _value(cfg.MacAddress or "")),
        ("NetworkDisabled", _value(bool(cfg.NetworkDisabled))),
        ("ExposedPorts", _value(cfg.ExposedPorts or None)),
        ("VolumeDriver", _value(ctr.host_config.VolumeDriver)),
    ]
    if pre120:
        hc = ctr.host_config
        config += [
            ("Memory", _value(hc.Memory)),
            ("MemorySwap", _value(hc.MemorySwap)),
            ("CpuShares", _value(hc.CpuShares)),
            ("Cpuset", _value(hc.CpusetCpus)),
        ]
        mounts = container_mounts(ctr)
        pairs.append(("Volumes", _value({m.Destination: m.Source for m in mounts})))
        pairs.append(("VolumesRW", _value({m.Destination: m.RW for m in mounts})))
    else:
        pairs.append(("Mounts", _value(cur.Mounts)))
    pairs.append(("Config", _object(config)))
    ns = network_settings_json(ctr)
    ns_pairs = [(k, v) for k, v in _struct_pairs(ns, skip=("Networks",))]
    ns_pairs = [(k, _value(ctr.NetworkSettings.Ports) if k == "Ports" else v) for k, v in ns_pairs]
    pairs.append(("NetworkSettings", _object(ns_pairs)))
    return _object(pairs) + b"\n"


__all__ = ["container_inspect_legacy"]
