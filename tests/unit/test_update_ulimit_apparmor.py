"""--default-ulimit parsing and merging (go-units ParseUlimit, oci_linux.go mergeUlimits)
and the AppArmor decision (daemon/apparmor.py)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from berth import errdefs
from berth.__main__ import load_config, parse_args
from berth.config import Ulimit, parse_ulimit
from berth.daemon import apparmor
from berth.runtime import spec
from berth.types.container import HostConfig


def test_parse_ulimit() -> None:
    assert parse_ulimit("nofile=1024:2048") == Ulimit(Name="nofile", Soft=1024, Hard=2048)
    assert parse_ulimit("core=-1") == Ulimit(Name="core", Soft=-1, Hard=-1)
    assert parse_ulimit("nproc=5:-1") == Ulimit(Name="nproc", Soft=5, Hard=-1)
    for bad, msg in [
        ("nofile", "invalid ulimit argument: nofile"),
        ("foo=1", "invalid ulimit type: foo"),
        ("nofile=1:2:3", "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"),
        ("nofile=x", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("nofile=10:5", "ulimit soft limit must be less than or equal to hard limit: 10 > 5"),
    ]:
        with pytest.raises(ValueError) as e:
            parse_ulimit(bad)
        assert str(e.value) == msg


def test_flag_and_daemon_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg_file = tmp_path / "daemon.json"
    args = parse_args(["--config-file", str(cfg_file), "--default-ulimit", "nofile=100:200",
                       "--default-ulimit", "nofile=300:400", "--default-ulimit", "core=0"])
    cfg = load_config(args)
    assert cfg.default_ulimits == {"nofile": Ulimit("nofile", 400, 300), "core": Ulimit("core", 0, 0)}
    cfg_file.write_text('{"default-ulimits": {"nproc": {"Name": "nproc", "Hard": 64, "Soft": 32}}}')
    cfg = load_config(parse_args(["--config-file", str(cfg_file)]))
    assert cfg.default_ulimits == {"nproc": Ulimit("nproc", 64, 32)}
    with pytest.raises(SystemExit, match="default-ulimits"):
        load_config(args)
    with pytest.raises(SystemExit):
        parse_args(["--default-ulimit", "bogus=1"])


def test_defaults_merge_and_clamp() -> None:
    own = [SimpleNamespace(Name="nofile", Soft=10, Hard=20)]
    defaults = {"nofile": Ulimit("nofile", 1000, 1000), "nproc": Ulimit("nproc", 99999, 50),
                "core": Ulimit("core", -1, -1)}
    ceil = {"nofile": 20000, "nproc": 500, "core": (1 << 64) - 1}
    out = spec.rlimits(own, defaults=defaults, hard_limits=ceil)
    assert [(r.type, r.soft, r.hard) for r in out] == [
        ("RLIMIT_NOFILE", 10, 20), ("RLIMIT_CORE", (1 << 64) - 1, (1 << 64) - 1), ("RLIMIT_NPROC", 50, 500)]
    # the container's own limit above the daemon's is still refused
    with pytest.raises(errdefs.System):
        spec.rlimits([SimpleNamespace(Name="nofile", Soft=1, Hard=99999)], defaults=defaults, hard_limits=ceil)


def _ctr(profile: str = "", privileged: bool = False, opts: list[str] | None = None) -> SimpleNamespace:
    hc = HostConfig(Privileged=privileged, SecurityOpt=opts)
    return SimpleNamespace(AppArmorProfile=profile, host_config=hc)


def test_apparmor_host_probe(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert apparmor.host_supports(str(tmp_path), parser="/x") is False
    (tmp_path / "kernel/security/apparmor").mkdir(parents=True)
    (tmp_path / "module/apparmor/parameters").mkdir(parents=True)
    enabled = tmp_path / "module/apparmor/parameters/enabled"
    enabled.write_text("N\n")
    assert apparmor.host_supports(str(tmp_path), parser="/x") is False
    enabled.write_text("Y\n")
    assert apparmor.host_supports(str(tmp_path), parser="/x") is True


def test_apparmor_profiles() -> None:
    assert apparmor.spec_profile(_ctr("foo"), False) == ""
    assert apparmor.spec_profile(_ctr(), True) == "docker-default"
    assert apparmor.spec_profile(_ctr(privileged=True), True) == "unconfined"
    assert apparmor.spec_profile(_ctr("foo", privileged=True), True) == "foo"
    c = _ctr("foo", opts=["apparmor=foo"])
    apparmor.save_app_armor_config(c, False)
    assert c.AppArmorProfile == ""  # AppArmor off: inspect shows "" from the first start (reference)
    apparmor.save_app_armor_config(c, True)
    assert c.AppArmorProfile == "foo"
    c = _ctr(opts=["seccomp=unconfined"])
    apparmor.save_app_armor_config(c, True)
    assert c.AppArmorProfile == "docker-default"
    c = _ctr(privileged=True, opts=["apparmor:bar"])
    apparmor.save_app_armor_config(c, True)
    assert c.AppArmorProfile == "unconfined"
