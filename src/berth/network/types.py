"""API objects for networks (moby v20.10.24 api/types/types.go NetworkResource,
NetworkCreateRequest, EndpointResource; api/types/network/network.go IPAM, IPAMConfig).

Fields in Go declaration order; wire names as attribute names.
"""
from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from ..types.container import EndpointSettings


class IPAMConfig(Struct, omit_defaults=True):
    """network.IPAMConfig: every field is omitempty."""

    Subnet: str = ""
    IPRange: str = ""
    Gateway: str = ""
    AuxiliaryAddresses: dict[str, str] | None = None


class IPAM(Struct):
    Driver: str = "default"
    Options: dict[str, str] | None = None
    Config: list[IPAMConfig] | None = None


class ConfigReference(Struct):
    Network: str = ""


class EndpointResource(Struct):
    Name: str = ""
    EndpointID: str = ""
    MacAddress: str = ""
    IPv4Address: str = ""
    IPv6Address: str = ""


class NetworkResource(Struct):
    """types.NetworkResource as GET /networks/{id} writes it (Services/Peers omitempty, unset)."""

    Name: str
    Id: str
    Created: str
    Scope: str
    Driver: str
    EnableIPv6: bool
    IPAM: IPAM
    Internal: bool
    Attachable: bool
    Ingress: bool
    ConfigFrom: ConfigReference
    ConfigOnly: bool
    Containers: dict[str, EndpointResource]
    Options: dict[str, str]
    Labels: dict[str, str]


class NetworkCreateRequest(Struct):
    """types.NetworkCreateRequest (NetworkCreate embedded, then Name)."""

    Name: str = ""
    CheckDuplicate: bool = False
    Driver: str = ""
    Scope: str = ""
    EnableIPv6: bool = False
    IPAM: IPAM | None = None
    Internal: bool = False
    Attachable: bool = False
    Ingress: bool = False
    ConfigOnly: bool = False
    ConfigFrom: ConfigReference | None = None
    Options: dict[str, str] | None = None
    Labels: dict[str, str] | None = None


class NetworkCreateResponse(Struct):
    Id: str
    Warning: str


class NetworkConnect(Struct):
    Container: str = ""
    EndpointConfig: EndpointSettings | None = None


class NetworkDisconnect(Struct):
    Container: str = ""
    Force: bool = False


class NetworksPruneReport(Struct):
    NetworksDeleted: list[str] | None = None


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
