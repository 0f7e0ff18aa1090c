"""API versions 1.42-1.52: the adaptations of api/versions.py, each tested at the
version before the changelog item and at the version introducing it; 1.41 untouched."""
from __future__ import annotations

import json

import msgspec
import pytest

from berth import errdefs
from berth.api import versions
from berth.types.container import Config, EndpointSettings, HostConfig, NetworkingConfig
from berth.types.filters import Args

CID = "9c0743c0330d00878a5ad373c2dfa9f6ac19d6df8ee3a00ad692c059e54db999"


def _inspect_doc() -> dict:
    return {
        "Id": CID, "Name": "/web",
        "HostConfig": {"Binds": None, "VolumesFrom": None, "CapAdd": None, "Runtime": "runc",
                       "ConsoleSize": [0, 0], "Isolation": "", "KernelMemory": 0, "KernelMemoryTCP": 0,
                       "MemoryReservation": 0},
        "Config": {"Hostname": "9c0743c0330d", "MacAddress": "02:42:ac:11:00:09", "OnBuild": None, "Labels": {}},
        "NetworkSettings": {
            "Bridge": "", "IPAddress": "", "MacAddress": "", "Ports": {},
            "Networks": {
                "bridge": {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "n1", "EndpointID": "e1",
                           "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                           "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None},
                "mynet": {"IPAMConfig": None, "Links": None, "Aliases": ["db", "9c0743c0330d"], "NetworkID": "n2",
                          "EndpointID": "e2", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                          "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None},
            },
        },
    }


def _raw(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _adapt(version: str) -> dict:
    return json.loads(versions.container_inspect(_raw(_inspect_doc()), version))


@pytest.mark.parametrize("v", ["1.12", "1.24", "1.40", "1.41"])
def test_legacy_versions_untouched(v: str) -> None:
    raw = _raw(_inspect_doc())
    assert versions.container_inspect(raw, v) is raw
    items = [{"Id": "x"}]
    assert versions.container_list(items, v) is items
    img = {"VirtualSize": 1, "Container": ""}
    assert versions.image_inspect(img, v) is img
    assert versions.image_list([img], v, None) == [img]
    assert versions.container_create(v, {"HostConfig": {"KernelMemory": 5}}, None, None, None) == []


def test_kernel_memory_omitted_from_142() -> None:
    hc = _adapt("1.42")["HostConfig"]
    assert "KernelMemory" not in hc and "KernelMemoryTCP" not in hc
    # moby 29's HostConfig layout: ConsoleSize follows VolumesFrom
    keys = list(hc)
    assert keys.index("ConsoleSize") == keys.index("VolumesFrom") + 1


def test_dns_names_from_144() -> None:
    assert "DNSNames" not in _adapt("1.43")["NetworkSettings"]["Networks"]["mynet"]
    nets = _adapt("1.44")["NetworkSettings"]["Networks"]
    assert nets["bridge"]["DNSNames"] is None
    assert nets["mynet"]["DNSNames"] == ["web", "db", "9c0743c0330d"]
    # configuration fields first, as moby 25+'s EndpointSettings
    assert list(nets["mynet"])[:5] == ["IPAMConfig", "Links", "Aliases", "MacAddress", "DriverOpts"]


def test_aliases_lose_short_id_at_145() -> None:
    assert _adapt("1.44")["NetworkSettings"]["Networks"]["mynet"]["Aliases"] == ["db", "9c0743c0330d"]
    assert _adapt("1.45")["NetworkSettings"]["Networks"]["mynet"]["Aliases"] == ["db"]


def test_gw_priority_from_148() -> None:
    assert "GwPriority" not in _adapt("1.47")["NetworkSettings"]["Networks"]["bridge"]
    assert _adapt("1.48")["NetworkSettings"]["Networks"]["bridge"]["GwPriority"] == 0


def test_network_settings_and_mac_at_152() -> None:
    d51 = _adapt("1.51")
    assert "IPAddress" in d51["NetworkSettings"] and d51["Config"]["MacAddress"] == "02:42:ac:11:00:09"
    assert "OnBuild" in d51["Config"]
    d52 = _adapt("1.52")
    ns = d52["NetworkSettings"]
    for k in ("Bridge", "IPAddress", "MacAddress"):
        assert k not in ns
    assert "Ports" in ns and "Networks" in ns
    assert "MacAddress" not in d52["Config"] and "OnBuild" not in d52["Config"]


def test_container_list_health_at_152() -> None:
    items = [{"Id": "a", "Status": "Up 2 seconds (healthy)", "NetworkSettings": {"Networks": {}}}]
    assert "Health" not in json.loads(versions.container_list(items, "1.51"))[0]
    assert json.loads(versions.container_list(items, "1.52"))[0]["Health"] == {"Status": "healthy",
                                                                              "FailingStreak": 0}


def _create(version: str, raw: dict, mac: str = "", ep_mac: str = "", nets: tuple[str, ...] = ("bridge",)):
    config = Config(Image="busybox")
    config.MacAddress = mac
    hc = HostConfig(NetworkMode="default")
    nc = NetworkingConfig(EndpointsConfig={n: EndpointSettings(MacAddress=ep_mac) for n in nets})
    warnings = versions.container_create(version, raw, config, hc, nc)
    return warnings, config, nc


def test_mount_option_type_mismatch_from_142() -> None:
    raw = {"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/x", "Target": "/y", "VolumeOptions": {}}]}}
    assert versions.container_create("1.41", raw, None, None, None) == []
    with pytest.raises(errdefs.InvalidParameter, match='VolumeOptions must not be specified on mount type "bind"'):
        versions.container_create("1.42", raw, None, HostConfig(), None)


def test_multiple_endpoints_allowed_from_144() -> None:
    with pytest.raises(errdefs.InvalidParameter, match="multiple network endpoints: a, b"):
        _create("1.43", {}, nets=("a", "b"))
    assert _create("1.44", {}, nets=("a", "b"))[0] == []


def test_read_only_force_recursive_needs_144() -> None:
    raw = {"HostConfig": {"Mounts": [{"Type": "bind", "BindOptions": {"ReadOnlyForceRecursive": True}}]}}
    with pytest.raises(errdefs.InvalidParameter, match="needs API v1.44"):
        versions.container_create("1.43", raw, None, HostConfig(), None)
    versions.container_create("1.44", raw, None, HostConfig(), None)


def test_subpath_needs_145() -> None:
    raw = {"HostConfig": {"Mounts": [{"Type": "volume", "VolumeOptions": {"Subpath": "a"}}]}}
    with pytest.raises(errdefs.InvalidParameter, match="Subpath needs API v1.45"):
        versions.container_create("1.44", raw, None, HostConfig(), None)
    versions.container_create("1.45", raw, None, HostConfig(), None)


def test_image_mount_needs_148() -> None:
    raw = {"HostConfig": {"Mounts": [{"Type": "image", "Source": "busybox", "Target": "/i"}]}}
    with pytest.raises(errdefs.InvalidParameter, match='Mount type "Image" needs API v1.48'):
        versions.container_create("1.47", raw, None, HostConfig(), None)
    versions.container_create("1.48", raw, None, HostConfig(), None)


def test_endpoint_mac_address_from_144() -> None:
    _, config, nc = _create("1.43", {}, ep_mac="02:00:00:00:00:01")
    assert config.MacAddress == "" and nc.EndpointsConfig["bridge"].MacAddress == ""
    warnings, config, _ = _create("1.44", {}, ep_mac="02:00:00:00:00:01")
    assert warnings == [] and config.MacAddress == "02:00:00:00:00:01"
    warnings, _, _ = _create("1.44", {}, mac="02:00:00:00:00:01")
    assert warnings == ["The container-wide MacAddress field is now deprecated. It should be specified in "
                        "EndpointsConfig instead."]
    with pytest.raises(errdefs.InvalidParameter, match="must match the endpoint-specific MAC"):
        _create("1.44", {}, mac="02:00:00:00:00:01", ep_mac="02:00:00:00:00:02")


def test_volume_driver_warning_from_148() -> None:
    raw = {"HostConfig": {"VolumeDriver": "local", "Mounts": [{"Type": "volume", "Target": "/v"}]}}
    assert _create("1.47", raw)[0] == []
    assert _create("1.48", raw)[0][0].startswith("WARNING: the container-wide volume-driver")


def test_empty_port_bindings_warning_at_152() -> None:
    raw = {"HostConfig": {"PortBindings": {"80/tcp": []}}}
    assert _create("1.51", raw)[0] == []
    assert "80/tcp" in _create("1.52", raw)[0][0]


def test_wait_condition_validated_from_142() -> None:
    assert versions.wait_condition({"condition": "bogus"}, "1.41") == "bogus"
    with pytest.raises(errdefs.InvalidParameter, match='invalid condition: "bogus"'):
        versions.wait_condition({"condition": "bogus"}, "1.42")


def test_stream_content_type_from_142() -> None:
    assert versions.stream_content_type("1.41", True) == ""
    assert versions.stream_content_type("1.42", True) == "application/vnd.docker.multiplexed-stream"
    assert versions.stream_content_type("1.42", False) == "application/vnd.docker.raw-stream"


def test_stop_signal_from_142() -> None:
    assert versions.stop_options({"signal": "SIGINT"}, "1.41") == ""
    assert versions.stop_options({"signal": "SIGINT"}, "1.42") == "SIGINT"


_IMAGE = {
    "Id": "sha256:x", "RepoTags": ["a:b"], "RepoDigests": [], "Parent": "", "Comment": "",
    "Created": "2026-01-01T00:00:00Z", "Container": "", "ContainerConfig": {"Hostname": ""}, "DockerVersion": "",
    "Author": "", "Config": {"Hostname": "", "Tty": False, "User": "", "Env": ["A=1"], "Cmd": ["sh"], "Image": "",
                             "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
                             "Labels": None},
    "Size": 5, "VirtualSize": 5,
}


def test_image_inspect_versions() -> None:
    assert "VirtualSize" in versions.image_inspect(_IMAGE, "1.43")
    d44 = versions.image_inspect(_IMAGE, "1.44")
    assert "VirtualSize" not in d44 and "Container" in d44
    d45 = versions.image_inspect(_IMAGE, "1.45")
    assert "Container" not in d45 and "ContainerConfig" not in d45
    assert "Hostname" in versions.image_inspect(_IMAGE, "1.49")["Config"]
    c50 = versions.image_inspect(_IMAGE, "1.50")["Config"]
    assert "Hostname" not in c50 and "Tty" not in c50 and "Image" not in c50 and "User" in c50
    assert "Parent" in versions.image_inspect(_IMAGE, "1.51")
    d52 = versions.image_inspect(_IMAGE, "1.52")
    assert d52["Config"] == {"Env": ["A=1"], "Cmd": ["sh"]}
    for k in ("Parent", "Comment", "DockerVersion", "Author"):
        assert k not in d52
    assert "Created" not in versions.image_inspect(dict(_IMAGE, Created="0001-01-01T00:00:00Z"), "1.44")
    assert "Created" in versions.image_inspect(dict(_IMAGE, Created="0001-01-01T00:00:00Z"), "1.43")


def test_image_list_versions() -> None:
    untagged = {"Containers": -1, "Id": "sha256:y", "RepoDigests": ["<none>@<none>"], "RepoTags": ["<none>:<none>"],
                "Size": 1, "VirtualSize": 1}

    def used_by(image_id: str) -> list[tuple[str, bool]]:
        return [("c1", True), ("c2", False)]

    assert versions.image_list([untagged], "1.42", used_by)[0]["RepoTags"] == ["<none>:<none>"]
    d43 = versions.image_list([untagged], "1.43", used_by)[0]
    assert d43["RepoTags"] == [] and d43["RepoDigests"] == [] and "VirtualSize" in d43
    assert "VirtualSize" not in versions.image_list([untagged], "1.44", used_by)[0]
    assert versions.image_list([untagged], "1.50", used_by)[0]["Containers"] == -1
    assert versions.image_list([untagged], "1.51", used_by)[0]["Containers"] == 2


class _DF(msgspec.Struct):
    LayersSize: int
    Images: list
    Containers: list
    Volumes: list
    BuildCache: object
    BuilderSize: int


def test_system_df_versions() -> None:
    df = _DF(1, [{"Id": "i", "VirtualSize": 1, "Size": 1}], [{"Id": "c"}], [], None, 0)
    assert versions.system_df(df, "1.41", None) is df
    d42 = json.loads(versions.system_df(df, "1.42", versions.df_types(["volume"], "1.42")))
    # dockerd 29: the types not asked for are omitted (omitzero), LayersSize too (omitempty)
    assert d42 == {"Volumes": []}
    assert "VirtualSize" in json.loads(versions.system_df(df, "1.43", None))["Images"][0]
    assert "VirtualSize" not in json.loads(versions.system_df(df, "1.44", None))["Images"][0]
    assert versions.df_types(["bogus"], "1.41") is None
    with pytest.raises(errdefs.InvalidParameter):
        versions.df_types(["bogus"], "1.42")


def test_system_info_versions() -> None:
    info = {"KernelMemory": True, "KernelMemoryTCP": True, "BridgeNfIptables": True, "BridgeNfIp6tables": True,
            "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [], "Mirrors": []},
            "ContainerdCommit": {"ID": "", "Expected": ""}}
    raw = _raw(info)
    assert versions.system_info(raw, "1.41", True) is raw
    d42 = json.loads(versions.system_info(raw, "1.42", True))
    assert "KernelMemory" not in d42
    assert "KernelMemoryTCP" in json.loads(versions.system_info(raw, "1.42", False))
    assert "CDISpecDirs" not in d42 and json.loads(versions.system_info(raw, "1.44", False))["CDISpecDirs"] == []
    d48 = json.loads(versions.system_info(raw, "1.48", False))
    assert "Expected" in d48["ContainerdCommit"] and "AllowNondistributableArtifactsCIDRs" in d48["RegistryConfig"]
    d49 = json.loads(versions.system_info(raw, "1.49", False))
    assert "Expected" not in d49["ContainerdCommit"]
    assert "AllowNondistributableArtifactsCIDRs" not in d49["RegistryConfig"]
    assert "BridgeNfIptables" in d49
    d50 = json.loads(versions.system_info(raw, "1.50", False))
    assert "BridgeNfIptables" not in d50 and d50["DiscoveredDevices"] == []
    assert "KernelMemoryTCP" in d50
    assert "KernelMemoryTCP" not in json.loads(versions.system_info(raw, "1.52", False))


def test_events_at_152() -> None:
    from berth.types.events import Actor, Message

    ev = Message(status="create", id="c", From="busybox", Type="container", Action="create",
                 Actor=Actor(ID="c", Attributes={"image": "a<b"}), scope="local", time=1, timeNano=1)
    e51 = versions.event(ev, "1.51")
    assert json.loads(e51)["status"] == "create" and b"\\u003c" in e51
    e52 = json.loads(versions.event(ev, "1.52"))
    assert list(e52) == ["Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert versions.events_media_type("application/x-ndjson", "1.51") == "application/json"
    assert versions.events_media_type("application/x-ndjson", "1.52") == "application/x-ndjson"
    assert versions.events_media_type("application/json-seq, */*", "1.52") == "application/json-seq"


def test_volume_prune_all_filter_from_142() -> None:
    f = Args.from_json('{"label":{"x":true}}')
    assert versions.volume_prune_filters(f, "1.41").get("label") == ["x"]
    f = versions.volume_prune_filters(Args(), "1.42")
    assert f.get("label") == ["com.docker.volume.anonymous"]
    f = versions.volume_prune_filters(Args.from_json('{"all":{"true":true}}'), "1.42")
    assert not f.contains("all") and not f.contains("label")
    with pytest.raises(errdefs.InvalidParameter):
        versions.volume_prune_filters(Args.from_json('{"all":{"maybe":true}}'), "1.42")


def test_encode_doc_go_escapes() -> None:
    assert versions.encode_doc({"a": "\b\f\u2028<"}) == b'{"a":"\\u0008\\u000c\\u2028<"}\n'
