"""Unit tests for berth.runtime.spec / seccomp / specs against bundles dockerd 20.10.24 wrote."""
from __future__ import annotations

import json
import pathlib
from types import SimpleNamespace

import pytest

from berth import errdefs
from berth.runtime import seccomp, spec, specs

GOLDEN = pathlib.Path(__file__).parent / "data" / "runtime_golden"
DEFAULT_CAPS_MASK = 0xA80425FB


def golden(name: str) -> bytes:
    return (GOLDEN / f"dockerd-20.10.24-{name}.json").read_bytes()


def build_like_dockerd(g: specs.Spec, *, caps: list[str], readonly: bool = False,
                       shm_size: int = 67108864, private_net: bool = True,
                       ulimits: list[SimpleNamespace] | None = None) -> specs.Spec:
    """Compose the pieces the way daemon/oci.py will, taking per-container facts from `g`."""
    s = spec.default_linux_spec()
    assert s.process is not None and s.linux is not None and g.process is not None
    assert g.linux is not None and g.root is not None
    s.process.user = g.process.user
    s.process.args = g.process.args
    s.process.env = g.process.env
    s.process.oom_score_adj = 0
    s.process.capabilities = spec.capabilities_for_user(caps, 0)
    s.process.rlimits = spec.rlimits(ulimits or [])
    s.root = specs.Root(path=g.root.path, readonly=readonly)
    s.hostname = g.hostname
    user_mounts = [m for m in g.mounts if m.type == "bind"]
    for m in user_mounts:  # network files: Writable unless the rootfs is read-only
        m.options = ["rbind", "ro", "rprivate"] if readonly else ["rbind", "rprivate"]
    s.mounts = spec.with_mounts(s.mounts, user_mounts, shm_size=shm_size, readonly_rootfs=readonly)
    s.hooks = g.hooks
    s.linux.sysctl = spec.merge_sysctls(spec.default_sysctls(private_net, exists=lambda _: True))
    s.linux.resources = specs.LinuxResources(
        devices=spec.default_device_cgroup_rules(),
        memory=specs.LinuxMemory(disable_oom_killer=False),
        cpu=specs.LinuxCPU(shares=0),
        block_io=specs.LinuxBlockIO(weight=0),
    )
    s.linux.cgroups_path = g.linux.cgroups_path
    s.linux.namespaces = g.linux.namespaces
    s.linux.seccomp = spec.default_seccomp_profile(caps, arch="amd64", kernel=(6, 1, 0))
    return s


@pytest.mark.parametrize("name", ["default", "capdrop", "ulim", "ro", "hostnet", "shm"])
def test_specs_round_trip_golden_bytes(name: str) -> None:
    raw = golden(name)
    assert specs.encode(specs.decode(raw)) == raw


def test_default_spec_matches_dockerd_bundle() -> None:
    raw = golden("default")
    g = specs.decode(raw)
    s = build_like_dockerd(g, caps=spec.default_capabilities())
    assert specs.encode(s) == raw


def test_capdrop_all_add_chown_matches_dockerd() -> None:
    raw = golden("capdrop")
    caps = spec.tweak_capabilities(spec.default_capabilities(), ["chown"], ["ALL"], False)
    assert caps == ["CAP_CHOWN"]
    s = build_like_dockerd(specs.decode(raw), caps=caps)
    assert specs.encode(s) == raw  # includes seccomp without the CAP_SYS_CHROOT chroot group


def test_readonly_rootfs_matches_dockerd() -> None:
    raw = golden("ro")
    s = build_like_dockerd(specs.decode(raw), caps=spec.default_capabilities(), readonly=True)
    assert specs.encode(s) == raw


def test_shm_size_and_ulimits_match_dockerd() -> None:
    raw = golden("shm")
    assert specs.encode(build_like_dockerd(
        specs.decode(raw), caps=spec.default_capabilities(), shm_size=1048576)) == raw
    raw = golden("ulim")
    uls = [SimpleNamespace(Name="nofile", Soft=100, Hard=200),
           SimpleNamespace(Name="nproc", Soft=50, Hard=50)]
    assert specs.encode(build_like_dockerd(
        specs.decode(raw), caps=spec.default_capabilities(), ulimits=uls)) == raw


def test_host_network_has_no_default_sysctls() -> None:
    assert spec.default_sysctls(False, exists=lambda _: True) == {}
    assert spec.default_sysctls(True, userns=True, exists=lambda _: True) == {
        "net.ipv4.ip_unprivileged_port_start": "0"}
    assert spec.default_sysctls(True, exists=lambda _: False) == {}
    merged = spec.merge_sysctls(spec.default_sysctls(True, exists=lambda _: True),
                                {"net.ipv4.ping_group_range": "1 1", "kernel.shmmax": "1"})
    assert list(merged) == ["kernel.shmmax", "net.ipv4.ip_unprivileged_port_start",
                            "net.ipv4.ping_group_range"]
    assert merged["net.ipv4.ping_group_range"] == "1 1"


def test_default_capabilities_mask() -> None:
    caps = spec.default_capabilities()
    assert len(caps) == 14 and caps[0] == "CAP_CHOWN" and caps[-1] == "CAP_AUDIT_WRITE"
    assert sum(1 << spec.CAPABILITIES.index(c) for c in caps) == DEFAULT_CAPS_MASK


def test_tweak_capabilities() -> None:
    base = spec.default_capabilities()
    assert spec.tweak_capabilities(base, None, None, False) == base
    assert spec.tweak_capabilities(base, ["net_admin"], ["chown", "CAP_KILL"], False) == (
        [c for c in base if c not in ("CAP_CHOWN", "CAP_KILL")] + ["CAP_NET_ADMIN"])
    everything = spec.all_capabilities(40)
    assert spec.tweak_capabilities(base, [], [], True) == spec.all_capabilities()
    held = [c for c in everything if c != "CAP_SYS_RESOURCE"]
    priv = spec.tweak_capabilities(base, [], [], True, available=held)
    assert "CAP_SYS_RESOURCE" not in priv and "CAP_SYS_ADMIN" in priv
    all_but = spec.tweak_capabilities(base, ["ALL"], ["mknod"], False, available=held)
    assert "CAP_MKNOD" not in all_but and "CAP_SYS_RESOURCE" not in all_but
    assert spec.tweak_capabilities(base, ["sys_admin"], ["all"], False) == ["CAP_SYS_ADMIN"]
    with pytest.raises(errdefs.InvalidParameter, match='unknown capability: "CAP_BOGUS"'):
        spec.tweak_capabilities(base, ["bogus"], None, False)


def test_daemon_capabilities_parses_status(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "status"
    p.write_text("Name:\tx\nCapBnd:\t000001fffeffffff\n")
    caps = spec.daemon_capabilities("CapBnd", str(p))
    assert len(caps) == 40 and "CAP_SYS_RESOURCE" not in caps


def test_capabilities_for_non_root_only_bounding() -> None:
    c = spec.capabilities_for_user(["CAP_CHOWN"], 1000)
    assert json.loads(specs.encode(specs.Spec(oci_version="x", process=specs.Process(
        user=specs.User(uid=1000, gid=1000), cwd="/", capabilities=c))))["process"][
        "capabilities"] == {"bounding": ["CAP_CHOWN"]}


def test_with_mounts_rules() -> None:
    d = spec.default_mounts()
    dev = specs.Mount(destination="/dev", type="bind", source="/dev", options=["rbind"])
    out = spec.with_mounts(d, [dev], shm_size=1)
    assert [m.destination for m in out] == ["/proc", "/sys", "/sys/fs/cgroup", "/dev"]
    out = spec.with_mounts(d, [], shm_size=1, ipc_none=True)
    assert "/dev/shm" not in [m.destination for m in out]
    out = {m.destination: m for m in spec.with_mounts(d, [], shm_size=1, privileged=True)}
    assert "ro" not in out["/sys"].options and "ro" not in out["/sys/fs/cgroup"].options
    assert out["/dev/shm"].options[-1] == "size=1"
    # defaults stay untouched for the next container
    assert d[-1].options == ["nosuid", "noexec", "nodev", "mode=1777"]


def test_device_cgroup_rules() -> None:
    out = spec.append_device_permissions_from_cgroup_rules([], ["c 1:* rw", "b *:3 m"])
    assert (out[0].type, out[0].major, out[0].minor, out[0].access) == ("c", 1, -1, "rw")
    assert (out[1].major, out[1].minor) == (-1, 3)
    with pytest.raises(ValueError, match="invalid device cgroup rule format: 'x 1:1 r'"):
        spec.append_device_permissions_from_cgroup_rules([], ["x 1:1 r"])


def test_rlimits_against_daemon_hard_limit() -> None:
    ul = [SimpleNamespace(Name="nofile", Soft=100000, Hard=100000)]
    with pytest.raises(errdefs.System, match="ulimit nofile: hard limit 100000 is above"):
        spec.rlimits(ul, hard_limits={"nofile": 20000})
    (r,) = spec.rlimits(ul, hard_limits={"nofile": 20000}, clamp=True)
    assert (r.type, r.soft, r.hard) == ("RLIMIT_NOFILE", 20000, 20000)
    unl = [SimpleNamespace(Name="core", Soft=-1, Hard=-1)]
    (r,) = spec.rlimits(unl, defaults={"nofile": SimpleNamespace(Name="nofile", Soft=1, Hard=2)})[:1]
    assert r.hard == 2**64 - 1
    both = spec.rlimits(unl, defaults={"core": SimpleNamespace(Name="core", Soft=1, Hard=1),
                                       "nofile": SimpleNamespace(Name="nofile", Soft=1, Hard=2)})
    assert [x.type for x in both] == ["RLIMIT_CORE", "RLIMIT_NOFILE"]
    assert spec.daemon_hard_limits(["CAP_SYS_RESOURCE"]) == {}
    assert "nofile" in spec.daemon_hard_limits([])


def test_seccomp_filters_by_caps_arch_kernel() -> None:
    caps = spec.default_capabilities()
    s = seccomp.default_seccomp_profile(caps, arch="amd64", kernel=(6, 1, 0))
    names = [n for c in s.syscalls for n in c.names]
    assert s.architectures == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert "ptrace" in names and "arch_prctl" in names and "chroot" in names
    assert "bpf" not in names and "sync_file_range2" not in names
    old = seccomp.default_seccomp_profile(caps, arch="amd64", kernel=(4, 4, 0))
    assert "ptrace" not in [n for c in old.syscalls for n in c.names]
    arm = seccomp.default_seccomp_profile(caps + ["CAP_SYS_ADMIN"], arch="arm64", kernel=(6, 1, 0))
    arm_names = [n for c in arm.syscalls for n in c.names]
    assert arm.architectures == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "bpf" in arm_names and "arch_prctl" not in arm_names
    assert "clone3" in arm_names  # allowed via the CAP_SYS_ADMIN group, ENOSYS rule excluded
    assert not any(c.errno_ret == 38 for c in arm.syscalls)


def test_seccomp_profile_errors() -> None:
    with pytest.raises(ValueError, match="Decoding seccomp profile failed"):
        seccomp.load_profile("{")
    bad = seccomp.load_profile('{"defaultAction":"SCMP_ACT_ALLOW","architectures":["x"],'
                               '"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}')
    with pytest.raises(ValueError, match="'architectures' and 'archMap'"):
        seccomp.setup_seccomp(bad, [])
    assert seccomp.setup_seccomp(seccomp.load_profile("{}"), []) is None
    one = seccomp.setup_seccomp(seccomp.load_profile(
        '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO"}]}'), [])
    assert one is not None and one.syscalls[0].names == ["mkdir"]
