"""`docker update` through the real CLI and SDK (daemon/update.py; every answer here was
compared with the reference dockerd 20.10)."""
from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest


def _name() -> str:
    return "upd-" + uuid.uuid4().hex[:10]


@pytest.fixture
def running(sleeper: str) -> str:
    return sleeper


def _cgroup(berthd, name: str, v1: str, v2: str) -> str:  # type: ignore[no-untyped-def]
    r = berthd.docker("exec", name, "sh", "-c", f"cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}")
    return r.stdout.decode().strip()


def _hostconfig(berthd, name: str) -> dict:  # type: ignore[no-untyped-def]
    cid = berthd.docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
    with open(os.path.join(berthd.data_root, "containers", cid, "hostconfig.json")) as f:
        return json.load(f)


@pytest.mark.guest
def test_update_running_applies_to_cgroups_and_disk(berthd, running) -> None:  # type: ignore[no-untyped-def]
    r = berthd.docker("update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5",
                      "--pids-limit", "40", "--cpu-shares", "300", "--restart", "on-failure:2", running)
    assert r.stdout.decode().strip() == running
    assert _cgroup(berthd, running, "memory/memory.limit_in_bytes", "memory.max") == str(64 << 20)
    assert _cgroup(berthd, running, "pids/pids.max", "pids.max") == "40"
    quota = _cgroup(berthd, running, "cpu/cpu.cfs_quota_us", "cpu.max")
    assert quota.split()[0] == "50000"
    hc = _hostconfig(berthd, running)
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"], hc["CpuShares"]) == (
        64 << 20, 128 << 20, 500_000_000, 40, 300)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    out = berthd.docker("inspect", "-f", "{{json .HostConfig.RestartPolicy}} {{.HostConfig.Memory}}", running)
    policy, memory = out.stdout.decode().split()
    assert json.loads(policy) == {"Name": "on-failure", "MaximumRetryCount": 2} and memory == str(64 << 20)
    berthd.docker("update", "--pids-limit", "-1", running)
    assert _cgroup(berthd, running, "pids/pids.max", "pids.max") == "max"
    assert _hostconfig(berthd, running)["PidsLimit"] == 0


@pytest.mark.guest
def test_update_errors_as_dockerd(berthd, running) -> None:  # type: ignore[no-untyped-def]
    cid = berthd.docker("inspect", "-f", "{{.Id}}", running).stdout.decode().strip()
    r = berthd.docker("update", "--memory", "100m", running, check=False)
    assert r.returncode == 1
    assert r.stderr.decode().strip() == (
        f"Error response from daemon: Cannot update container {cid}: Memory limit should be smaller than "
        "already set memoryswap limit, update the memoryswap at the same time")
    r = berthd.docker("update", "--memory", "1m", running, check=False)
    assert r.stderr.decode().strip() == "Error response from daemon: Minimum memory limit allowed is 6MB"
    r = berthd.docker("update", "--memory", "100m", "--memory-swap", "50m", running, check=False)
    assert "Minimum memoryswap limit should be larger than memory limit, see usage" in r.stderr.decode()
    berthd.docker("update", "--cpus", "0.5", running)
    r = berthd.docker("update", "--cpu-quota", "50000", running, check=False)
    assert r.stderr.decode().strip() == (
        f"Error response from daemon: Cannot update container {cid}: Conflicting options: CPU Quota cannot "
        "be updated as NanoCPUs has already been set")
    r = berthd.docker("update", "--restart", "foo", running, check=False)
    assert r.stderr.decode().strip() == "Error response from daemon: invalid restart policy 'foo'"
    r = berthd.docker("update", "--cpuset-cpus", "99", running, check=False)
    assert "Requested CPUs are not available - requested 99" in r.stderr.decode()
    # A runtime refusal: the old HostConfig comes back and the message quotes runc.
    r = berthd.docker("update", "--cpu-shares", "1", running, check=False)
    err = r.stderr.decode()
    if r.returncode != 0:
        assert err.startswith(f"Error response from daemon: Cannot update container {cid}: ")
        assert "did not terminate successfully: exit status 1: " in err and err.rstrip().endswith(": unknown")
        assert _hostconfig(berthd, running)["CpuShares"] == 0
    r = berthd.docker("update", "--cpus", "1", "nosuch-" + uuid.uuid4().hex[:6], check=False)
    assert "No such container: nosuch-" in r.stderr.decode()


def test_update_auto_remove_and_stopped(berthd) -> None:  # type: ignore[no-untyped-def]
    rm, stopped = _name(), _name()
    berthd.docker("run", "-d", "--rm", "--name", rm, "busybox", "sleep", "600")
    berthd.docker("create", "--name", stopped, "busybox", "true")
    try:
        cid = berthd.docker("inspect", "-f", "{{.Id}}", rm).stdout.decode().strip()
        r = berthd.docker("update", "--restart", "always", rm, check=False)
        assert r.stderr.decode().strip() == (
            f"Error response from daemon: Cannot update container {cid}: Restart policy cannot be updated "
            "because AutoRemove is enabled for the container")
        berthd.docker("update", "--restart", "no", rm)
        berthd.docker("update", "--cpu-period", "50000", "--memory", "32m", "--memory-swap", "64m", stopped)
        hc = _hostconfig(berthd, stopped)
        assert (hc["CpuPeriod"], hc["Memory"], hc["MemorySwap"]) == (50000, 32 << 20, 64 << 20)
        r = berthd.docker("update", "--cpus", "1", stopped, check=False)
        assert "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set" in r.stderr.decode()
        # the new limits apply at the next start
        berthd.docker("start", stopped)
    finally:
        berthd.docker("rm", "-f", rm, stopped, check=False)


def test_update_sdk_shapes_and_event(berthd, running) -> None:  # type: ignore[no-untyped-def]
    import docker

    c = docker.DockerClient(base_url=berthd.host, version="1.41")
    api = c.api
    seen: list[dict] = []
    stream = api.events(decode=True, filters={"event": "update", "container": running})
    threading.Thread(target=lambda: [seen.append(e) for e in stream], daemon=True).start()
    time.sleep(0.3)
    try:
        assert api.update_container(running, cpu_shares=512) == {"Warnings": None}
        url = api._url("/containers/{0}/update", running)
        r = api.post(url, data='{"KernelMemory":7000000}', headers={"Content-Type": "application/json"})
        assert r.status_code == 200
        assert r.json() == {"Warnings": ["Specifying a kernel memory limit is deprecated and will be removed in a future release."]}
        r = api.post(url, data="", headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()) == (500, {"message": "EOF"})
        r = api.post(url, data='{"Memory":"x"}', headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["message"]) == (
            500, "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64")
        r = api.post(url, data="{}", headers={"Content-Type": "text/plain"})
        assert r.status_code == 400
        r = api.post(url, data='{"Memory":100000000}', headers={"Content-Type": "application/json"})
        assert r.status_code == 409
        r = api.post(api._url("/v1.39/containers/{0}/update", running).replace("/v1.41/v1.39", "/v1.39"),
                     data='{"PidsLimit":77}', headers={"Content-Type": "application/json"})
        assert r.status_code == 200
        assert c.containers.get(running).attrs["HostConfig"]["PidsLimit"] in (None, 0)
        deadline = time.time() + 5
        while len(seen) < 3 and time.time() < deadline:
            time.sleep(0.1)
        assert [e["Action"] for e in seen] == ["update"] * 3  # failed updates log nothing
        assert seen[0]["Actor"]["Attributes"]["name"] == running
    finally:
        stream.close()
        c.close()


def test_default_ulimit_flag_and_apparmor_field(busybox_tar) -> None:  # type: ignore[no-untyped-def]
    """A daemon of its own with --default-ulimit: containers without that ulimit get it
    (never above the daemon's own hard limit), their own --ulimit wins, inspect's
    HostConfig.Ulimits stays as asked; AppArmorProfile follows the host (dockerd: "" from
    the first start when AppArmor is off, even with --security-opt apparmor=...)."""
    import resource

    from berthd_harness import start_berthd, stop_berthd

    from berth.daemon import apparmor

    if os.geteuid() != 0:
        pytest.skip("needs root")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft = min(512, hard)
    b = start_berthd(extra=["--default-ulimit", f"nofile={soft}:{hard}", "--default-ulimit", "nproc=4000:99999999999"])
    try:
        b.docker("load", "-i", busybox_tar)
        out = b.docker("run", "--rm", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn").stdout.decode().split()
        assert out == [str(soft), str(hard)]
        out = b.docker("run", "--rm", "--ulimit", "nofile=100:200", "busybox", "sh", "-c",
                       "ulimit -n; ulimit -Hn").stdout.decode().split()
        assert out == ["100", "200"]
        name = _name()
        b.docker("run", "--name", name, "--security-opt", "apparmor=foo", "busybox", "sh", "-c", "ulimit -u")
        fmt = "{{json .HostConfig.Ulimits}}|{{.AppArmorProfile}}"
        ulimits, profile = b.docker("inspect", "-f", fmt, name).stdout.decode().strip().split("|")
        assert ulimits in ("null", "[]")
        assert profile == ("foo" if apparmor.enabled() else "")
        nproc = b.docker("logs", name).stdout.decode().strip()
        assert int(nproc) <= 4000
    finally:
        stop_berthd(b)
