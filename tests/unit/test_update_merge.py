"""daemon/update.py: decoding, the HostConfig merge and its conflicts, and the runtime
resources (moby container_unix.go UpdateContainer, update_linux.go; messages checked on
the reference dockerd 20.10)."""
from __future__ import annotations

import pytest

from berth import errdefs
from berth.daemon.update import (
    UpdateConfig,
    UpdateResponse,
    host_config_from_update,
    to_containerd_resources,
    update_container,
)
from berth.runtime import specs
from berth.types import gojson
from berth.types.container import HostConfig, RestartPolicy


def _decode(body: bytes) -> UpdateConfig:
    return gojson.decode(body, UpdateConfig, go_type_name="container.UpdateConfig")


def test_decode_errors_name_update_config() -> None:
    with pytest.raises(gojson.GoJSONError) as e:
        _decode(b'{"Memory":"x"}')
    assert str(e.value) == "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64"
    with pytest.raises(gojson.GoJSONError, match="^EOF$"):
        _decode(b"")
    # HostConfig keys that are not resources are ignored, as Go ignores unknown keys.
    uc = _decode(b'{"memory":10000000,"Binds":3,"RestartPolicy":{"Name":"always"}}')
    assert uc.Memory == 10000000 and uc.RestartPolicy.Name == "always"
    assert _decode(b"null").Memory == 0


def test_host_config_from_update_copies_resources_only() -> None:
    uc = _decode(b'{"CpuShares":5,"PidsLimit":7,"CpusetCpus":"0","RestartPolicy":{"Name":"on-failure","MaximumRetryCount":2}}')
    hc = host_config_from_update(uc)
    assert (hc.CpuShares, hc.PidsLimit, hc.CpusetCpus) == (5, 7, "0")
    assert hc.RestartPolicy == RestartPolicy(Name="on-failure", MaximumRetryCount=2)
    assert hc.NetworkMode == "" and hc.Binds is None


def _req(**kw: object) -> HostConfig:
    hc = HostConfig()
    for k, v in kw.items():
        setattr(hc, k, v)
    return hc


@pytest.mark.parametrize("cur,req,msg", [
    ({"CpuPeriod": 50000}, {"NanoCpus": 10**9}, "Nano CPUs cannot be updated as CPU Period has already been set"),
    ({"CpuQuota": 50000}, {"NanoCpus": 10**9}, "Nano CPUs cannot be updated as CPU Quota has already been set"),
    ({"NanoCpus": 10**9}, {"CpuPeriod": 50000}, "CPU Period cannot be updated as NanoCPUs has already been set"),
    ({"NanoCpus": 10**9}, {"CpuQuota": 50000}, "CPU Quota cannot be updated as NanoCPUs has already been set"),
])
def test_cpu_conflicts(cur: dict, req: dict, msg: str) -> None:
    with pytest.raises(errdefs.Conflict, match="^Conflicting options: " + msg):
        update_container(_req(**cur), _req(**req))


def test_memory_without_swap_conflicts_even_when_swap_unset() -> None:
    msg = "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
    for swap in (0, -1, 100 << 20):
        with pytest.raises(errdefs.Conflict, match=msg):
            update_container(_req(MemorySwap=swap), _req(Memory=200 << 20))
    cur = _req(MemorySwap=300 << 20)
    update_container(cur, _req(Memory=200 << 20))
    assert cur.Memory == 200 << 20 and cur.MemorySwap == 300 << 20
    cur = _req()
    update_container(cur, _req(Memory=200 << 20, MemorySwap=400 << 20))
    assert (cur.Memory, cur.MemorySwap) == (200 << 20, 400 << 20)


def test_merge_keeps_unset_fields_and_pids() -> None:
    cur = _req(CpuShares=100, CpusetCpus="0", PidsLimit=10, BlkioWeight=300)
    update_container(cur, _req(CpuShares=512, PidsLimit=0))
    assert (cur.CpuShares, cur.CpusetCpus, cur.PidsLimit, cur.BlkioWeight) == (512, "0", 0, 300)
    update_container(cur, _req())
    assert cur.PidsLimit == 0


def test_restart_policy_and_auto_remove() -> None:
    cur = _req(AutoRemove=True)
    with pytest.raises(errdefs.Conflict, match="^Restart policy cannot be updated because AutoRemove is enabled"):
        update_container(cur, _req(RestartPolicy=RestartPolicy(Name="always")))
    update_container(cur, _req(RestartPolicy=RestartPolicy(Name="no")))
    assert cur.RestartPolicy.Name == "no"
    cur = _req()
    update_container(cur, _req(RestartPolicy=RestartPolicy(Name="on-failure", MaximumRetryCount=3)))
    assert cur.RestartPolicy == RestartPolicy(Name="on-failure", MaximumRetryCount=3)
    update_container(cur, _req())  # no Name: the policy stays
    assert cur.RestartPolicy.Name == "on-failure"


def test_containerd_resources() -> None:
    r = to_containerd_resources(_req(NanoCpus=1_500_000_000, Memory=64 << 20, PidsLimit=0, CpuShares=300))
    assert r.cpu is not None and (r.cpu.period, r.cpu.quota, r.cpu.shares) == (100000, 150000, 300)
    assert r.memory is not None and r.memory.limit == 64 << 20 and r.memory.swap is None
    assert r.pids == specs.LinuxPids(limit=-1)
    r = to_containerd_resources(_req(CpuPeriod=50000, CpuQuota=20000, MemorySwap=-1))
    assert (r.cpu.period, r.cpu.quota) == (50000, 20000) and r.memory.swap is None and r.pids is None
    r = to_containerd_resources(_req(MemorySwap=128 << 20, PidsLimit=40))
    assert r.memory.swap == 128 << 20 and r.pids == specs.LinuxPids(limit=40)
    # zeros are absent, not 0: crun writes what is present (memory.max 0!) and refuses any
    # kernel memory field on cgroup v2
    assert specs.encode(to_containerd_resources(_req(NanoCpus=500_000_000))) == (
        b'{"memory":{},"cpu":{"quota":50000,"period":100000},"blockIO":{}}')


def test_response_warnings_null_when_none() -> None:
    assert gojson.encode_response(UpdateResponse(Warnings=None)) == b'{"Warnings":null}\n'


def test_live_resources_under_systemd_resend_every_merged_limit():
    # crun + systemd: a CPU weight set as a scope property made systemd rewrite memory.max,
    # cpu.max and pids.max; the merged limits are sent again (pids "max" when unset)
    from berth.daemon.update import live_resources, to_containerd_resources
    from berth.types.container import HostConfig
    cur = HostConfig(Memory=64 << 20, MemorySwap=128 << 20, NanoCpus=500_000_000, CpuShares=256)
    r = to_containerd_resources(live_resources(cur, HostConfig(CpuShares=256)))
    assert (r.memory.limit, r.memory.swap, r.cpu.quota, r.cpu.period, r.cpu.shares) == (
        64 << 20, 128 << 20, 50_000, 100_000, 256)
    assert r.pids.limit == -1
    assert to_containerd_resources(live_resources(HostConfig(PidsLimit=50), HostConfig())).pids.limit == 50
    # `update --memory` alone: memory.swap.max untouched, as runc leaves it for dockerd
    r = to_containerd_resources(live_resources(cur, HostConfig(Memory=100 << 20)))
    assert r.memory.swap is None and r.memory.limit == 64 << 20
    assert cur.PidsLimit is None  # the container's own config untouched
