"""The cgroup driver choice, cgroupsPath, --cgroup-parent checks (daemon/cgroupdriver.py,
moby 20.10.24 daemon_unix.go) and /info's cgroup warnings (info_unix.go fillPlatformInfo)."""
from __future__ import annotations

import pytest

from berth import errdefs
from berth.__main__ import load_config, parse_args
from berth.daemon import cgroupdriver as cd
from berth.daemon import info as _info
from berth.daemon import platform
from berth.daemon.sysinfo import SysInfo
from berth.runtime.oci import OCIRuntime
from berth.types.container import HostConfig


def test_get_cd_and_verify() -> None:
    assert cd.get_cd([]) == ""
    assert cd.get_cd(["foo", "Native.CgroupDriver = systemd", "native.cgroupdriver=cgroupfs"]) == "systemd"
    for ok in ([], ["native.cgroupdriver=cgroupfs"], ["native.cgroupdriver=systemd"], ["other=1"]):
        cd.verify_cgroup_driver(ok)
    with pytest.raises(ValueError, match="^native.cgroupdriver option foo not supported$"):
        cd.verify_cgroup_driver(["native.cgroupdriver=foo"])
    with pytest.raises(ValueError, match="^native.cgroupdriver option none is internally used and cannot be "
                                         "specified manually$"):
        cd.verify_cgroup_driver(["native.cgroupdriver=none"])


def test_using_systemd_default_on_v2_with_systemd() -> None:
    assert cd.using_systemd([], cgroup_v2=True, running_systemd=True)
    assert not cd.using_systemd([], cgroup_v2=True, running_systemd=False)
    assert not cd.using_systemd([], cgroup_v2=False, running_systemd=True)  # hybrid/v1: cgroupfs
    assert not cd.using_systemd(["native.cgroupdriver=cgroupfs"], cgroup_v2=True, running_systemd=True)
    assert cd.using_systemd(["native.cgroupdriver=systemd"], cgroup_v2=False, running_systemd=False)


def test_cgroups_path() -> None:
    assert cd.cgroups_path("abc", "", "", systemd=False) == "/berth/abc"
    assert cd.cgroups_path("abc", "foo", "", systemd=False) == "/foo/abc"
    assert cd.cgroups_path("abc", "", "/daemon", systemd=False) == "/daemon/abc"
    assert cd.cgroups_path("abc", "", "", systemd=True) == "system.slice:berth:abc"
    assert cd.cgroups_path("abc", "my.slice", "d.slice", systemd=True) == "my.slice:berth:abc"
    assert cd.cgroups_path("abc", "", "d.slice", systemd=True) == "d.slice:berth:abc"


def test_cgroup_parent_must_be_a_slice_under_systemd() -> None:
    msg = 'cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"'
    cd.verify_cgroup_parent("/any/path", systemd=False)
    cd.verify_cgroup_parent("a.slice", systemd=True)
    for bad in ("/bad/path", ".slice", "x"):
        with pytest.raises(ValueError, match=msg):
            cd.verify_cgroup_parent(bad, systemd=True)
    si = SysInfo(cgroup_v2=True, cgroup_namespaces=True)
    with pytest.raises(errdefs.InvalidParameter, match=msg):
        platform.verify_platform_container_settings(HostConfig(CgroupParent="/x"), si, "runc", {"runc"},
                                                    systemd_cgroup=True)
    platform.verify_platform_container_settings(HostConfig(CgroupParent="/x"), si, "runc", {"runc"})


def test_flags_and_daemon_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "daemon.json"
    cfg = load_config(parse_args(["--config-file", str(f), "--exec-opt", "native.cgroupdriver=cgroupfs",
                                  "--cgroup-parent", "/mine"]))
    assert cfg.exec_opts == ["native.cgroupdriver=cgroupfs"] and cfg.cgroup_parent == "/mine"
    f.write_text('{"exec-opts": ["native.cgroupdriver=systemd"], "cgroup-parent": "b.slice"}')
    cfg = load_config(parse_args(["--config-file", str(f)]))
    assert cfg.exec_opts == ["native.cgroupdriver=systemd"] and cfg.cgroup_parent == "b.slice"
    f.write_text('{"exec-opts": ["native.cgroupdriver=systemd"], "cgroup-parent": "/not/a/slice"}')
    with pytest.raises(SystemExit, match="should be a valid slice"):
        load_config(parse_args(["--config-file", str(f)]))
    f.write_text("{}")
    with pytest.raises(SystemExit, match="^native.cgroupdriver option bogus not supported$"):
        load_config(parse_args(["--config-file", str(f), "--exec-opt", "native.cgroupdriver=bogus"]))


def test_runtime_flag() -> None:
    assert OCIRuntime("/usr/bin/crun", "crun", "/r").global_args() == ["--root", "/r"]
    assert OCIRuntime("/usr/bin/crun", "crun", "/r", systemd_cgroup=True).global_args() == [
        "--root", "/r", "--systemd-cgroup"]


def _v(**kw: object) -> object:
    base: dict[str, object] = {
        "MemoryLimit": True, "SwapLimit": True, "KernelMemoryTCP": False, "OomKillDisable": False,
        "CpuCfsQuota": True, "CpuCfsPeriod": True, "CPUShares": True, "CPUSet": True, "IPv4Forwarding": True,
        "BridgeNfIptables": True, "BridgeNfIp6tables": True, "CgroupVersion": "2"}
    base.update(kw)
    return type("V", (), base)()


def test_info_warnings_v1_and_v2() -> None:
    si = SysInfo(cgroup_v2=True, blkio_weight=True, blkio_weight_device=True, blkio_read_bps=True,
                 blkio_write_bps=True, blkio_read_iops=True, blkio_write_iops=True)
    # v2: no kernel memory / oom-kill-disable warnings (nothing a user can do)
    assert _info._platform_warnings(_v(), si) == []  # type: ignore[arg-type]
    assert _info._platform_warnings(_v(SwapLimit=False, BridgeNfIptables=False), SysInfo(cgroup_v2=True)) == [  # type: ignore[arg-type]
        "WARNING: No swap limit support", "WARNING: No io.weight support", "WARNING: No io.weight (per device) support",
        "WARNING: No io.max (rbps) support", "WARNING: No io.max (wbps) support", "WARNING: No io.max (riops) support",
        "WARNING: No io.max (wiops) support", "WARNING: bridge-nf-call-iptables is disabled"]
    assert _info._platform_warnings(_v(CgroupVersion="1"), SysInfo(blkio_read_bps=True, blkio_write_bps=True,  # type: ignore[arg-type]
                                                                  blkio_read_iops=True)) == [
        "WARNING: No kernel memory TCP limit support", "WARNING: No oom kill disable support",
        "WARNING: No blkio throttle.write_iops_device support"]


def test_swap_limit_v2_follows_the_daemons_cgroup(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from berth.daemon import sysinfo

    root = tmp_path / "cg"
    (root / "system.slice/berth.service").mkdir(parents=True)
    me = tmp_path / "self"
    me.write_text("0::/system.slice/berth.service\n")
    assert not sysinfo._swap_limit_v2(str(root), str(me))
    (root / "system.slice/berth.service/memory.swap.max").write_text("max\n")
    assert sysinfo._swap_limit_v2(str(root), str(me))
    me.write_text("0::/\n")  # the root cgroup has no memory.swap.max: dockerd warns there
    assert not sysinfo._swap_limit_v2(str(root), str(me))


def test_update_hands_resources_in_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`update --resources FILE`, not `-`: crun cannot reopen a stdin that is a socket or
    absent under systemd ("error opening file `/dev/stdin`")."""
    import asyncio

    from berth.runtime import specs

    fake = tmp_path / "fake-runtime"
    log = tmp_path / "log"
    fake.write_text(f'#!/bin/sh\necho "$@" > {log}\nfor a; do f="$a"; done\n'
                    f'prev=""; for a; do [ "$prev" = --resources ] && cat "$a" >> {log}; prev="$a"; done\n')
    fake.chmod(0o755)
    rt = OCIRuntime(str(fake), "crun", str(tmp_path / "root"), systemd_cgroup=True)
    asyncio.run(rt.update("abc", specs.LinuxResources(pids=specs.LinuxPids(limit=40))))
    args, body = log.read_text().split("\n", 1)
    argv = args.split()
    assert argv[:3] == ["--root", str(tmp_path / "root"), "--systemd-cgroup"]
    assert argv[3:5] == ["update", "--resources"] and argv[-1] == "abc" and argv[5] != "-"
    assert '"pids":{"limit":40}' in body
    assert list((tmp_path / "root").iterdir()) == []  # the file is gone afterwards


def test_v2_sysinfo_and_create_checks(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """newV2: what v2 cannot do (swappiness, kernel memory, OOM-kill disable, realtime) is
    discarded at create with dockerd's warnings; limits it can do pass."""
    from berth.daemon import sysinfo

    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (tmp_path / "cpuset.cpus.effective").write_text("0-1\n")
    (tmp_path / "cpuset.mems.effective").write_text("0\n")
    monkeypatch.setattr(sysinfo, "_swap_limit_v2", lambda root: True)
    si = sysinfo.probe(str(tmp_path))
    assert si.cgroup_v2 and si.memory_limit and si.swap_limit and si.cpu_shares and si.cpu_cfs and si.pids_limit
    assert not (si.memory_swappiness or si.kernel_memory or si.kernel_memory_tcp or si.oom_kill_disable
                or si.cpu_realtime)
    assert si.blkio_weight and si.blkio_read_bps and si.cpus == "0-1"
    hc = HostConfig(Memory=64 << 20, MemorySwap=128 << 20, MemorySwappiness=60, KernelMemory=10 << 20,
                    OomKillDisable=True, CpusetCpus="1", PidsLimit=10)
    w = platform.verify_platform_container_settings(hc, si, "crun", {"crun"})
    assert w == [
        "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
        "Memory swappiness discarded.",
        "Specifying a kernel memory limit is deprecated and will be removed in a future release.",
        "Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. "
        "Limitation discarded.",
        "Your kernel does not support OomKillDisable. OomKillDisable discarded."]
    assert (hc.MemorySwappiness, hc.KernelMemory, hc.OomKillDisable, hc.MemorySwap) == (None, 0, None, 128 << 20)


def test_start_errors_of_runc_and_crun() -> None:
    """translateContainerdStartErr reads the runtime's text case-insensitively: crun's
    capitalised errno text gives the exit code dockerd 20.10 + crun gives in the guest."""
    from berth.runtime.oci import classify_start_error

    pre = "failed to create shim task: OCI runtime create failed: "
    cases = [
        ('runc create failed: unable to start container process: exec: "nosuchcmd": '
         "executable file not found in $PATH: unknown", 127),
        ('runc create failed: unable to start container process: exec: "/etc": permission denied: unknown', 126),
        ("executable file `nosuchcmd` not found in $PATH: No such file or directory: unknown", 127),  # crun
        ("executable file `/no/such` not found in $PATH: No such file or directory: unknown", 127),
        ("open executable: Operation not permitted: unknown", 0),  # crun on a directory: dockerd's 128 too
        ("sd-bus call: Value specified in CPUWeight is out of range: Invalid argument: unknown", 0),
        ("Permission denied and no such file or directory", 126),  # both: the later test wins, as in moby
    ]
    for text, code in cases:
        assert classify_start_error(pre + text) == (code, pre + text), text
    code, msg = classify_start_error(pre + "mount /x: Not a directory: unknown")
    assert code == 127 and msg.endswith("Check if the specified host path exists and is the expected type")
