"""API-version gaps closed after the first pass (issue #5): each at the version before the
changelog item and at the version introducing it, with 1.41 (dockerd 20.10) untouched.

stop/restart `signal` (1.42), anonymous volumes and prune (1.42), hijacked Content-Type
(1.42), Healthcheck.StartInterval (1.44) and the /system/df usage summaries (1.52).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

import msgspec
import pytest

from berth import errdefs
from berth.api import versions

sys.path.insert(0, os.path.dirname(__file__))  # --import-mode=importlib: make the sibling importable
from test_api_versions import _DF

from berth.daemon import verify
from berth.types import gojson
from berth.types.container import Config, HealthConfig
from berth.types.filters import Args
from berth.volume.service import ANONYMOUS_LABEL, VolumeService

RAW = "application/vnd.docker.raw-stream"
MUX = "application/vnd.docker.multiplexed-stream"


# --- hijacked attach / exec start (1.42) ------------------------------------------------------

@pytest.mark.parametrize("version", ["1.12", "1.41"])
def test_hijack_content_type_raw_before_142(version: str) -> None:
    for multiplexed in (True, False):
        for upgrade in (True, False):
            assert versions.hijack_content_type(version, multiplexed, upgrade) == RAW


def test_hijack_content_type_from_142() -> None:
    # postContainersAttach / postContainerExecStart: only an upgraded, multiplexed stream
    assert versions.hijack_content_type("1.42", True, True) == MUX
    assert versions.hijack_content_type("1.52", True, True) == MUX
    assert versions.hijack_content_type("1.42", False, True) == RAW  # TTY
    assert versions.hijack_content_type("1.42", True, False) == RAW  # a plain 200 OK head


def test_exec_start_console_size_needs_tty() -> None:
    assert versions.exec_console_size("1.41", [10, 20], True) is None
    assert versions.exec_console_size("1.42", [10, 20], True) == [10, 20]
    assert versions.exec_console_size("1.42", [10, 20], False) is None
    assert versions.exec_console_size("1.42", [10, 20]) == [10, 20]  # exec create: no TTY check


# --- Healthcheck.StartInterval (1.44) ---------------------------------------------------------

def _config(doc: dict) -> Config:
    return gojson.decode(json.dumps(doc).encode(), Config, go_type_name="container.Config")


def test_start_interval_dropped_before_144() -> None:
    for version in ("1.41", "1.43"):
        cfg = _config({"Healthcheck": {"Test": ["CMD", "true"], "StartInterval": 5}})
        versions.health_start_interval(version, cfg)
        assert cfg.Healthcheck.StartInterval is msgspec.UNSET
        assert b"StartInterval" not in gojson.encode_response(cfg)


def test_start_interval_kept_and_validated_from_144() -> None:
    cfg = _config({"Healthcheck": {"Test": ["CMD", "true"], "StartPeriod": 2000000000, "StartInterval": 1000000000,
                                   "Retries": 3}})
    versions.health_start_interval("1.44", cfg)
    assert cfg.Healthcheck.StartInterval == 1000000000
    out = json.loads(gojson.encode_response(cfg))["Healthcheck"]
    assert list(out) == ["Test", "StartPeriod", "StartInterval", "Retries"]  # Go field order
    verify.validate_container_config(cfg)
    with pytest.raises(errdefs.InvalidParameter, match="^StartInterval in Healthcheck cannot be less than 1ms$"):
        verify.validate_container_config(Config(Healthcheck=HealthConfig(StartInterval=999)))
    verify.validate_container_config(Config(Healthcheck=HealthConfig(StartInterval=0)))  # 0: unset


# --- stop/restart signal (1.42) ------------------------------------------------------------------

def test_stop_signal_query_from_142() -> None:
    assert versions.stop_options({"signal": "SIGINT"}, "1.41") == ""
    assert versions.stop_options({"signal": "SIGINT"}, "1.42") == "SIGINT"
    assert versions.stop_options({}, "1.52") == ""


# --- anonymous volumes and prune (1.42) -----------------------------------------------------------

@pytest.fixture
def svc() -> Iterator[VolumeService]:
    root = tempfile.mkdtemp(prefix="bt-ver-vol-")
    try:
        yield VolumeService(os.path.join(root, "volumes"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_anonymous_marker_is_not_a_label_at_141(svc: VolumeService) -> None:
    anon = svc.create("", labels={"t": "x"})
    named = svc.create("named-vol")
    # 1.41 (dockerd 20.10): Labels exactly as given
    assert anon.Labels == {"t": "x"} and named.Labels is None
    assert svc.get(anon.Name).Labels == {"t": "x"}
    assert {v.Name: v.Labels for v in svc.list()[0]} == {anon.Name: {"t": "x"}, "named-vol": None}
    # 1.42+: the label dockerd 23+ sets
    assert svc.get(anon.Name, anonymous_label=True).Labels == {ANONYMOUS_LABEL: "", "t": "x"}
    assert svc.get("named-vol", anonymous_label=True).Labels is None
    listed = svc.list(Args.from_json('{"label":["com.docker.volume.anonymous"]}'), anonymous_label=True)[0]
    assert [v.Name for v in listed] == [anon.Name]
    assert svc.list(Args.from_json('{"label":["com.docker.volume.anonymous"]}'))[0] == []
    # the marker survives a restart of the service (metadata.json)
    again = VolumeService(svc._driver.root)
    assert again.get(anon.Name, anonymous_label=True).Labels == {ANONYMOUS_LABEL: "", "t": "x"}
    assert again.get(anon.Name).Labels == {"t": "x"}


def test_named_by_the_parser_but_anonymous(svc: VolumeService) -> None:
    # 20.10's mount parser names `-v /x` volumes itself; the daemon says they are anonymous
    v = svc.create("a" * 64, anonymous=True, reference="c1")
    assert v.Labels is None and svc.get(v.Name, anonymous_label=True).Labels == {ANONYMOUS_LABEL: ""}
    again = svc.create("a" * 64)  # an existing volume keeps its marker
    assert svc.get(again.Name, anonymous_label=True).Labels == {ANONYMOUS_LABEL: ""}


def _prune(svc: VolumeService, version: str, filters: str = "") -> list[str]:
    f = versions.volume_prune_filters(Args.from_json(filters), version)
    report = svc.prune(f, versions.volume_anonymous_label(version))
    return sorted(report.VolumesDeleted or [])


def test_volume_prune_141_prunes_named_and_anonymous(svc: VolumeService) -> None:
    anon = svc.create("").Name
    svc.create("named-vol")
    assert _prune(svc, "1.41") == sorted([anon, "named-vol"])


def test_volume_prune_142_anonymous_only_unless_all(svc: VolumeService) -> None:
    anon = svc.create("").Name
    svc.create("named-vol")
    used = svc.create("", reference="c1").Name
    assert _prune(svc, "1.42") == [anon]
    assert svc.get(used).Name == used  # in use: kept
    assert _prune(svc, "1.52", '{"all":["true"]}') == ["named-vol"]


def test_volume_prune_all_filter_errors() -> None:
    with pytest.raises(errdefs.InvalidParameter,
                       match=r"""^invalid filter 'all': strconv.ParseBool: parsing "maybe": invalid syntax$"""):
        versions.volume_prune_filters(Args.from_json('{"all":["maybe"]}'), "1.42")
    with pytest.raises(errdefs.InvalidParameter, match=r"^invalid filter 'all=\[0 1\]': only one value is expected$"):
        versions.volume_prune_filters(Args.from_json('{"all":["1","0"]}'), "1.42")
    f = versions.volume_prune_filters(Args.from_json('{"all":["False"]}'), "1.42")
    assert f.get("label") == [ANONYMOUS_LABEL] and not f.contains("all")
    # 1.41: `all` is just an unknown filter, refused by the service as 20.10 does
    assert versions.volume_prune_filters(Args.from_json('{"all":["1"]}'), "1.41").contains("all")


# --- /system/df (1.42, 1.52) -------------------------------------------------------------------------

_IMAGES = [{"Id": "a", "Size": 100, "VirtualSize": 100, "Containers": 1},
           {"Id": "b", "Size": 30, "VirtualSize": 30, "Containers": 0}]
_CONTAINERS = [{"Id": "c1", "State": "running", "SizeRw": 5}, {"Id": "c2", "State": "exited", "SizeRw": 7}]
_VOLUMES = [{"Name": "v1", "UsageData": {"Size": 10, "RefCount": 1}},
            {"Name": "v2", "UsageData": {"Size": 4, "RefCount": 0}},
            {"Name": "v3", "UsageData": {"Size": -1, "RefCount": 0}}]


def _df() -> _DF:
    return _DF(130, [dict(i) for i in _IMAGES], [dict(c) for c in _CONTAINERS], [dict(v) for v in _VOLUMES], None, 0)


def test_system_df_before_152_has_no_summaries() -> None:
    df = _df()
    assert versions.system_df(df, "1.41", None) is df
    d = json.loads(versions.system_df(df, "1.51", None, verbose=True))
    assert list(d) == ["LayersSize", "Images", "Containers", "Volumes", "BuildCache"]
    assert d["BuildCache"] == [] and "VirtualSize" not in d["Images"][0]


def test_system_df_summaries_at_152() -> None:
    d = json.loads(versions.system_df(_df(), "1.52", None))
    assert list(d) == ["LayersSize", "Images", "Containers", "Volumes", "BuildCache", "ImagesDiskUsage",
                       "ContainersDiskUsage", "VolumesDiskUsage", "BuildCacheDiskUsage"]
    assert d["ImagesDiskUsage"] == {"ActiveCount": 1, "Reclaimable": 30, "TotalCount": 2, "TotalSize": 130}
    assert d["ContainersDiskUsage"] == {"ActiveCount": 1, "Reclaimable": 7, "TotalCount": 2, "TotalSize": 12}
    assert d["VolumesDiskUsage"] == {"ActiveCount": 1, "Reclaimable": 4, "TotalCount": 3, "TotalSize": 14}
    assert d["BuildCacheDiskUsage"] == {}


def test_system_df_verbose_and_type_at_152() -> None:
    d = json.loads(versions.system_df(_df(), "1.52", None, verbose=True))
    # verbose: an API 1.52-aware client, the legacy fields are left out
    assert list(d) == ["ImagesDiskUsage", "ContainersDiskUsage", "VolumesDiskUsage", "BuildCacheDiskUsage"]
    assert list(d["ImagesDiskUsage"]) == ["ActiveCount", "Items", "Reclaimable", "TotalCount", "TotalSize"]
    assert [i["Id"] for i in d["ImagesDiskUsage"]["Items"]] == ["a", "b"]
    assert "VirtualSize" not in d["ImagesDiskUsage"]["Items"][0]
    assert [v["Name"] for v in d["VolumesDiskUsage"]["Items"]] == ["v1", "v2", "v3"]
    d = json.loads(versions.system_df(_df(), "1.52", versions.df_types(["volume"], "1.52")))
    assert list(d) == ["Volumes", "VolumesDiskUsage"]
