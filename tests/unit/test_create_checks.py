"""Unit tests for the create path's pure steps: checks, merges, names."""
from __future__ import annotations

import pytest

from berth import errdefs
from berth.daemon import merge, platform, verify
from berth.daemon.create import get_entrypoint_and_args, verify_networking_config
from berth.daemon.links import parse_link
from berth.daemon.sysinfo import SysInfo, parse_uint_list
from berth.pkg import caps, signal
from berth.pkg.registrar import NameReserved, Registrar
from berth.pkg.truncindex import AmbiguousPrefix, TruncIndex
from berth.types.container import (
    Config,
    EndpointIPAMConfig,
    EndpointSettings,
    HealthConfig,
    HostConfig,
    LogConfig,
    NetworkingConfig,
    PortBinding,
    RestartPolicy,
)

FULL = SysInfo(memory_limit=True, swap_limit=True, memory_reservation=True, oom_kill_disable=True,
               memory_swappiness=True, kernel_memory=True, cpu_shares=True, cpu_cfs=True, cpuset=True,
               cpus="0-1", mems="0", pids_limit=True, blkio_weight=True)


def check(hc=None, cfg=None, si=FULL):
    return verify.verify_container_settings(hc, cfg, si, "runc", {"runc", "crun"})


@pytest.mark.parametrize("cfg,msg", [
    (Config(WorkingDir="rel"), "the working directory 'rel' is invalid, it needs to be an absolute path"),
    (Config(StopSignal="SIGFOO"), "Invalid signal: SIGFOO"),
    (Config(StopSignal="0"), "Invalid signal: 0"),
    (Config(Env=["=x"]), "invalid environment variable: =x"),
    (Config(Env=[""]), "invalid environment variable: "),
    (Config(Healthcheck=HealthConfig(Interval=10)), "Interval in Healthcheck cannot be less than 1ms"),
    (Config(Healthcheck=HealthConfig(Timeout=-1)), "Timeout in Healthcheck cannot be less than 1ms"),
    (Config(Healthcheck=HealthConfig(Retries=-1)), "Retries in Healthcheck cannot be negative"),
    (Config(Healthcheck=HealthConfig(StartPeriod=5)), "StartPeriod in Healthcheck cannot be less than 1ms"),
])
def test_config_checks(cfg, msg):
    with pytest.raises(errdefs.InvalidParameter) as e:
        check(None, cfg)
    assert str(e.value) == msg


def test_config_ok():
    assert check(None, Config(StopSignal="sigusr1", Env=["FOO"], WorkingDir="/x")) == []


@pytest.mark.parametrize("hc,msg", [
    (HostConfig(AutoRemove=True, RestartPolicy=RestartPolicy(Name="always")),
     "can't create 'AutoRemove' container with restart policy"),
    (HostConfig(ExtraHosts=["noip"]), 'bad format for add-host: "noip"'),
    (HostConfig(ExtraHosts=["h:1.2.3"]), 'invalid IP address in add-host: "1.2.3"'),
    (HostConfig(PortBindings={"abc/tcp": []}), 'invalid port specification: "abc"'),
    (HostConfig(PortBindings={"80-81/tcp": []}), 'invalid port specification: "80-81"'),
    (HostConfig(PortBindings={"80/tcp": [PortBinding(HostPort="x")]}), 'invalid port specification: "x"'),
    (HostConfig(RestartPolicy=RestartPolicy(Name="always", MaximumRetryCount=2)),
     "maximum retry count cannot be used with restart policy 'always'"),
    (HostConfig(RestartPolicy=RestartPolicy(Name="on-failure", MaximumRetryCount=-1)),
     "maximum retry count cannot be negative"),
    (HostConfig(RestartPolicy=RestartPolicy(Name="sometimes")), "invalid restart policy 'sometimes'"),
    (HostConfig(CapAdd=["foo"]), 'invalid CapAdd: unknown capability: "CAP_FOO"'),
    (HostConfig(CapDrop=["cap_bpf"]), 'invalid CapDrop: unknown capability: "CAP_BPF"'),
    (HostConfig(Memory=1024), "Minimum memory limit allowed is 6MB"),
    (HostConfig(Memory=10 << 20, MemorySwap=5 << 20),
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    (HostConfig(MemorySwap=10 << 20), "You should always set the Memory limit when using Memoryswap limit, see usage"),
    (HostConfig(MemorySwappiness=101), "Invalid value: 101, valid memory swappiness range is 0-100"),
    (HostConfig(CpuPeriod=100), "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    (HostConfig(CpuQuota=10), "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    (HostConfig(NanoCpus=1, CpuQuota=2000), "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    (HostConfig(CpusetCpus="0-x"), "Invalid value 0-x for cpuset cpus: invalid format: 0-x"),
    (HostConfig(CpusetCpus="7"), "Requested CPUs are not available - requested 7, available: 0-1"),
    (HostConfig(BlkioWeight=5), "Range of blkio weight is from 10 to 1000"),
    (HostConfig(ShmSize=-1), "SHM size can not be less than 0"),
    (HostConfig(OomScoreAdj=1001), "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
    (HostConfig(Runtime="nope"), "Unknown runtime specified nope"),
    (HostConfig(CgroupnsMode="bogus"), "invalid cgroup namespace mode: bogus"),
])
def test_host_config_checks(hc, msg):
    with pytest.raises(errdefs.InvalidParameter) as e:
        check(hc)
    assert str(e.value) == msg


def test_warnings_and_defaults():
    hc = HostConfig(Memory=10 << 20, CpuPercent=5, NetworkMode="host",
                    PortBindings={"80/tcp": [PortBinding(HostPort="80")]})
    w = check(hc, si=SysInfo(memory_limit=True, cpu_cfs=True))
    assert "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap." in w
    assert "linux does not support CPU percent. Percent discarded." in w
    assert "Published ports are discarded when using host network mode" in w
    assert hc.Runtime == "runc" and hc.MemorySwap == -1 and hc.CpuPercent == 0
    hc2 = HostConfig(MemorySwappiness=-1, Memory=8 << 20)
    check(hc2)
    assert hc2.MemorySwappiness is None
    platform.adapt_container_settings(hc2, False, FULL)
    assert hc2.MemorySwap == 16 << 20 and hc2.ShmSize == 67108864 and hc2.IpcMode == "private"
    assert hc2.CgroupnsMode == "host" and hc2.OomKillDisable is False


def test_networking_config():
    verify_networking_config(None)
    with pytest.raises(errdefs.InvalidParameter, match="Container cannot be connected to network endpoints: a, b"):
        verify_networking_config(NetworkingConfig(EndpointsConfig={"a": EndpointSettings(), "b": EndpointSettings()}))
    with pytest.raises(errdefs.InvalidParameter, match="no EndpointSettings for a"):
        verify_networking_config(NetworkingConfig(EndpointsConfig={"a": None}))
    with pytest.raises(errdefs.InvalidParameter, match="invalid IPv4 address: ::1"):
        verify_networking_config(NetworkingConfig(EndpointsConfig={
            "a": EndpointSettings(IPAMConfig=EndpointIPAMConfig(IPv4Address="::1"))}))
    with pytest.raises(errdefs.InvalidParameter, match="invalid IPv6 address: 1.2.3.4"):
        verify_networking_config(NetworkingConfig(EndpointsConfig={
            "a": EndpointSettings(IPAMConfig=EndpointIPAMConfig(IPv6Address="1.2.3.4"))}))


def test_merge_rules():
    image = Config(User="u", Env=["PATH=/bin", "FOO=img", "BAR=1"], Cmd=["sh"], Entrypoint=["/ep"],
                   Labels={"a": "1"}, WorkingDir="/w", Volumes={"/v": {}}, StopSignal="SIGUSR1",
                   ExposedPorts={"80/tcp": {}})
    user = Config(Env=["FOO=user", "BAR"], ExposedPorts={"81/tcp": {}})
    merge.merge_and_verify_config(user, image)
    assert user.Env == ["FOO=user", "BAR", "PATH=/bin"]
    assert user.Cmd == ["sh"] and user.Entrypoint == ["/ep"]
    assert user.Labels == {"a": "1"} and user.User == "u" and user.WorkingDir == "/w"
    assert set(user.ExposedPorts) == {"80/tcp", "81/tcp"} and user.StopSignal == "SIGUSR1"
    # A user entrypoint suppresses the image Cmd; [] means "no entrypoint but inherit Cmd".
    u2 = Config(Entrypoint=["/mine"])
    merge.merge_and_verify_config(u2, image)
    assert u2.Cmd is None and u2.Entrypoint == ["/mine"]
    u3 = Config(Entrypoint=[])
    merge.merge_and_verify_config(u3, image)
    assert u3.Cmd == ["sh"] and u3.Entrypoint == []
    # --entrypoint "" clears the entrypoint and, with no Cmd of the image inherited, fails.
    with pytest.raises(errdefs.InvalidParameter, match="No command specified"):
        merge.merge_and_verify_config(Config(Entrypoint=[""]), Config())
    with pytest.raises(errdefs.InvalidParameter, match="No command specified"):
        merge.merge_and_verify_config(Config(), None)


def test_log_config():
    lc = LogConfig()
    merge.merge_and_verify_log_config(lc, "json-file", {})
    assert lc.Type == "json-file" and lc.Config == {}
    for cfg, msg in [
        (LogConfig(Type="json-file", Config={"bogus": "1"}), "unknown log opt 'bogus' for json-file log driver"),
        (LogConfig(Type="nosuch"), 'error looking up logging plugin nosuch: plugin "nosuch" not found'),
        (LogConfig(Type="json-file", Config={"mode": "x"}), "logger: logging mode not supported: x"),
        (LogConfig(Type="json-file", Config={"max-buffer-size": "1m"}),
         "logger: max-buffer-size option is only supported with 'mode=non-blocking'"),
        (LogConfig(Type="json-file", Config={"cache-disabled": "maybe"}), "invalid value for option cache-disabled: maybe"),
    ]:
        with pytest.raises(errdefs.InvalidParameter) as e:
            merge.merge_and_verify_log_config(cfg, "json-file", {})
        assert str(e.value) == msg
    merge.merge_and_verify_log_config(LogConfig(Type="none", Config={"anything": "1"}), "json-file", {})


def test_entrypoint_and_args():
    assert get_entrypoint_and_args(["/ep", "a"], ["b"]) == ("/ep", ["a", "b"])
    assert get_entrypoint_and_args(None, ["echo", "hi"]) == ("echo", ["hi"])
    assert get_entrypoint_and_args(None, [""]) == ("", [])


def test_links_signals_caps_lists():
    assert parse_link("db") == ("db", "db")
    assert parse_link("db:alias") == ("db", "alias")
    with pytest.raises(errdefs.Untyped, match="bad format for links: a:b:c"):
        parse_link("a:b:c")
    assert signal.parse_signal("SIGKILL") == 9 and signal.parse_signal("hup") == 1
    assert signal.parse_signal("RTMIN+3") == signal.SIGNAL_MAP["RTMIN"] + 3
    assert caps.normalize_legacy_capabilities(["net_admin", "ALL"]) == ["CAP_NET_ADMIN", "ALL"]
    assert parse_uint_list("0-2,5") == {0, 1, 2, 5}
    with pytest.raises(ValueError, match="invalid format"):
        parse_uint_list("2-1")


def test_registrar_and_truncindex():
    r = Registrar()
    r.reserve("/a", "id1")
    r.reserve("/a", "id1")
    with pytest.raises(NameReserved):
        r.reserve("/a", "id2")
    r.delete("id1")
    r.reserve("/a", "id2")
    t = TruncIndex()
    t.add("abcd")
    t.add("abef")
    assert t.get("abc") == "abcd" and t.get("x") is None
    with pytest.raises(AmbiguousPrefix):
        t.get("ab")
