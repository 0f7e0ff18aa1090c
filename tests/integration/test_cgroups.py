"""Everything Berth does with cgroups, on whichever kind of host runs the tests: resources
in the container's cgroup, stats in dockerd's JSON shape, the OOM killer, the freezer, top,
/info, cgroup namespaces, the cgroup driver and AppArmor. Marked `guest`, so that
scripts/guest-test runs them on a cgroup v2 + systemd + AppArmor host too, and the answers
expected on v2 are dockerd 20.10's there (daemon/stats_collector statsV2, runc's shares →
weight conversion, sysinfo newV2)."""
from __future__ import annotations

import os
import uuid

import pytest

pytestmark = [pytest.mark.guest, pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root")]

V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
SYSTEMD = os.path.isdir("/run/systemd/system")


def _apparmor_on() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().startswith("Y") and os.path.exists("/sys/kernel/security/apparmor")
    except OSError:
        return False


def _name() -> str:
    return "cg-" + uuid.uuid4().hex[:10]


def _in(berthd, name: str, *paths: str) -> str:  # type: ignore[no-untyped-def]
    """The first of `paths` (under the container's /sys/fs/cgroup) that it can read."""
    script = " || ".join(f"cat /sys/fs/cgroup/{p} 2>/dev/null" for p in paths)
    return berthd.docker("exec", name, "sh", "-c", script).stdout.decode().strip()


def _host_cgroup_dir(pid: int) -> str:
    """The v2 (or v1 freezer) directory of `pid` on the host."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            if V2 and ctrl == "":
                return "/sys/fs/cgroup" + path
            if not V2 and "freezer" in ctrl.split(","):
                return "/sys/fs/cgroup/freezer" + path
    raise AssertionError("no cgroup")


@pytest.fixture
def ctr(berthd):  # type: ignore[no-untyped-def]
    name = _name()
    yield name
    berthd.docker("rm", "-f", name, check=False)


def test_resources_reach_the_cgroup(berthd, ctr) -> None:  # type: ignore[no-untyped-def]
    berthd.docker("run", "-d", "--name", ctr, "--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5",
                  "--pids-limit", "50", "--cpu-shares", "512", "--cpuset-cpus", "0", "busybox", "sleep", "300")
    assert _in(berthd, ctr, "memory/memory.limit_in_bytes", "memory.max") == str(64 << 20)
    # v1 memsw is memory+swap; v2's swap.max is the swap alone (runc converts)
    assert _in(berthd, ctr, "memory/memory.memsw.limit_in_bytes", "memory.swap.max") in (
        str(128 << 20), str(64 << 20))
    assert _in(berthd, ctr, "cpu/cpu.cfs_quota_us", "cpu.max").split()[0] == "50000"
    assert _in(berthd, ctr, "pids/pids.max", "pids.max") == "50"
    # cpu.weight = 1 + (shares - 2) * 9999 / 262142 (runc's ConvertCPUSharesToCgroupV2Value)
    assert _in(berthd, ctr, "cpu/cpu.shares", "cpu.weight") == ("20" if V2 else "512")
    assert _in(berthd, ctr, "cpuset/cpuset.cpus", "cpuset.cpus") == "0"


def test_stats_in_dockerds_shape(berthd, ctr) -> None:  # type: ignore[no-untyped-def]
    import docker

    berthd.docker("run", "-d", "--name", ctr, "--memory", "64m", "--pids-limit", "50", "busybox",
                  "sh", "-c", "while :; do :; done")
    client = docker.APIClient(base_url=berthd.host, version="1.41")
    try:
        s = client.stats(ctr, stream=False)
    finally:
        client.close()
    assert s["name"] == "/" + ctr
    mem, cpu = s["memory_stats"], s["cpu_stats"]
    assert mem["limit"] == 64 << 20 and mem["usage"] > 0
    assert s["pids_stats"] == {"current": 2, "limit": 50} or s["pids_stats"]["current"] >= 1
    assert s["pids_stats"]["limit"] == 50
    assert cpu["cpu_usage"]["total_usage"] > 0 and cpu["online_cpus"] >= 1 and cpu["system_cpu_usage"] > 0
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] > 0  # primed, as dockerd's one-shot=false
    if V2:
        # statsV2: cgroup v2 keys in memory_stats.stats, no max_usage, no per-CPU usage
        assert "anon" in mem["stats"] and "file" in mem["stats"] and "rss" not in mem["stats"]
        assert "workingset_refault" in mem["stats"]  # 0 where the kernel has only _anon/_file
        assert "max_usage" not in mem and "percpu_usage" not in cpu["cpu_usage"]
        # only io.stat's bytes; dockerd leaves every other blkio list null on v2
        assert s["blkio_stats"]["io_serviced_recursive"] is None and s["blkio_stats"]["io_queue_recursive"] is None
    else:
        assert "rss" in mem["stats"] and mem["max_usage"] > 0
    assert set(s["blkio_stats"]) >= {"io_service_bytes_recursive", "io_serviced_recursive"}
    out = berthd.docker("stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}", ctr).stdout.decode()
    assert out.split("/")[1].split()[0] == "64MiB"


def test_oom_killed(berthd, ctr) -> None:  # type: ignore[no-untyped-def]
    berthd.docker("run", "--name", ctr, "--memory", "32m", "--memory-swap", "32m", "busybox",
                  "sh", "-c", "x=$(head -c 100m /dev/zero | tr '\\0' a); echo survived", check=False,
                  timeout=300)
    state = berthd.docker("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", ctr).stdout.decode().split()
    assert state == ["true", "137"]


def test_pause_freezes_the_cgroup_and_top(berthd, ctr) -> None:  # type: ignore[no-untyped-def]
    berthd.docker("run", "-d", "--name", ctr, "busybox", "sleep", "300")
    pid = int(berthd.docker("inspect", "-f", "{{.State.Pid}}", ctr).stdout)
    d = _host_cgroup_dir(pid)

    def frozen() -> bool:
        if V2:
            with open(os.path.join(d, "cgroup.events")) as f:
                return "frozen 1\n" in f.read()
        with open(os.path.join(d, "freezer.state")) as f:
            return f.read().strip() == "FROZEN"
    berthd.docker("pause", ctr)
    assert frozen()
    top = berthd.docker("top", ctr).stdout.decode().splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and top[1].split()[1] == str(pid) and "sleep 300" in top[1]
    berthd.docker("unpause", ctr)
    assert not frozen()


def test_info_and_cgroup_namespace(berthd, ctr) -> None:  # type: ignore[no-untyped-def]
    info = berthd.docker("info", "-f", "{{.CgroupVersion}} {{.CgroupDriver}}").stdout.decode().split()
    assert info == (["2", "systemd" if SYSTEMD else "cgroupfs"] if V2 else ["1", "cgroupfs"])
    berthd.docker("run", "--name", ctr, "busybox", "cat", "/proc/self/cgroup")
    out = berthd.docker("logs", ctr).stdout.decode()
    if V2:  # CgroupnsMode private by default on v2: the container sees its own cgroup as /
        assert out == "0::/\n"
        hc = berthd.docker("inspect", "-f", "{{.HostConfig.CgroupnsMode}}", ctr).stdout.decode().strip()
        assert hc == "private"
    else:
        assert "/berth/" in out


@pytest.mark.skipif(not (V2 and SYSTEMD), reason="needs a cgroup v2 host run by systemd")
def test_systemd_driver_scope_and_parent(berthd, ctr) -> None:  # type: ignore[no-untyped-def]
    cid = berthd.docker("run", "-d", "--name", ctr, "--memory", "48m", "busybox", "sleep", "300").stdout.decode().strip()
    pid = int(berthd.docker("inspect", "-f", "{{.State.Pid}}", ctr).stdout)
    assert _host_cgroup_dir(pid) == f"/sys/fs/cgroup/system.slice/berth-{cid}.scope"
    with open(f"/sys/fs/cgroup/system.slice/berth-{cid}.scope/memory.max") as f:
        assert f.read().strip() == str(48 << 20)
    berthd.docker("update", "--memory", "40m", ctr)
    with open(f"/sys/fs/cgroup/system.slice/berth-{cid}.scope/memory.max") as f:
        assert f.read().strip() == str(40 << 20)
    r = berthd.docker("run", "--cgroup-parent", "/bad/path", "busybox", "true", check=False)
    assert "cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\"" in r.stderr.decode()
    name2 = _name()
    try:
        cid2 = berthd.docker("run", "-d", "--name", name2, "--cgroup-parent", "berthtest.slice", "busybox",
                             "sleep", "300").stdout.decode().strip()
        pid2 = int(berthd.docker("inspect", "-f", "{{.State.Pid}}", name2).stdout)
        assert _host_cgroup_dir(pid2) == f"/sys/fs/cgroup/berthtest.slice/berth-{cid2}.scope"
    finally:
        berthd.docker("rm", "-f", name2, check=False)


@pytest.mark.skipif(not _apparmor_on(), reason="AppArmor is off on this host")
def test_apparmor_default_profile(berthd, ctr) -> None:  # type: ignore[no-untyped-def]
    with open("/sys/kernel/security/apparmor/profiles") as f:
        assert any(line.startswith("docker-default ") for line in f)  # loaded at daemon start
    berthd.docker("run", "--name", ctr, "busybox", "cat", "/proc/self/attr/current")
    assert berthd.docker("logs", ctr).stdout.decode().strip() == "docker-default (enforce)"
    assert berthd.docker("inspect", "-f", "{{.AppArmorProfile}}", ctr).stdout.decode().strip() == "docker-default"
    out = berthd.docker("run", "--rm", "--security-opt", "apparmor=unconfined", "busybox",
                        "cat", "/proc/self/attr/current").stdout.decode().strip()
    assert out == "unconfined"
    r = berthd.docker("run", "--rm", "--security-opt", "apparmor=berth-no-such-profile", "busybox", "true",
                      check=False)
    assert r.returncode != 0
    assert 'AppArmor profile "berth-no-such-profile" is not loaded' in r.stderr.decode()


def test_runtime_choice(berthd, ctr) -> None:  # type: ignore[no-untyped-def]
    """crun where its probe runs a container (pure v2), runc on a hybrid host where crun
    refuses; either is still selectable with --runtime."""
    import shutil

    default = berthd.docker("info", "-f", "{{.DefaultRuntime}}").stdout.decode().strip()
    assert default == ("crun" if V2 and shutil.which("crun") else "runc")
    other = "runc" if default == "crun" else "crun"
    if V2 and shutil.which(other):
        out = berthd.docker("run", "--name", ctr, "--runtime", other, "--memory", "40m", "busybox",
                            "cat", "/sys/fs/cgroup/memory.max").stdout.decode().strip()
        assert out == str(40 << 20)
        assert berthd.docker("inspect", "-f", "{{.HostConfig.Runtime}}", ctr).stdout.decode().strip() == other
