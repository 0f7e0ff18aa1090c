"""docker-default generated as moby v20.10.24's profiles/apparmor does, and loaded as
ensureDefaultAppArmorProfile does (daemon/apparmor.py)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from berth import errdefs
from berth.daemon import apparmor

# What dockerd 20.10.24 writes for parser 3.0.8 on a host with tunables/global and
# abstractions/base, daemon unconfined (text/template output, byte for byte).
EXPECTED_3_0_8 = """

#include <tunables/global>


profile docker-default flags=(attach_disconnected,mediate_deleted) {

  #include <abstractions/base>


  network,
  capability,
  file,
  umount,

  # Host (privileged) processes may send signals to container processes.
  signal (receive) peer=unconfined,
  # dockerd may send signals to container processes (for "docker kill").
  signal (receive) peer=unconfined,
  # Container processes may send signals amongst themselves.
  signal (send,receive) peer=docker-default,


  deny @{PROC}/* w,   # deny write for all files directly in /proc (not in a subdir)
  # deny write to files not in /proc/<number>/** or /proc/sys/**
  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,
  deny @{PROC}/sys/[^k]** w,  # deny /proc/sys except /proc/sys/k* (effectively /proc/sys/kernel)
  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,  # deny everything except shm* in /proc/sys/kernel/
  deny @{PROC}/sysrq-trigger rwklx,
  deny @{PROC}/kcore rwklx,

  deny mount,

  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,


  # suppress ptrace denials when using 'docker ps' or using 'ps' inside a container
  ptrace (trace,read,tracedby,readby) peer=docker-default,

}
"""


def test_parser_version() -> None:
    out = "AppArmor parser version 3.0.8\nCopyright (C) 1999-2008 Novell Inc.\n"
    assert apparmor.parse_parser_version(out) == 300008
    assert apparmor.parse_parser_version("AppArmor parser version 2.9.1\n") == 209001
    assert apparmor.parse_parser_version("AppArmor parser version 2.10\n") == 210000
    assert apparmor.parse_parser_version("AppArmor parser version 3.0.0-beta1\n") == 300000
    assert apparmor.parse_parser_version("AppArmor parser version 2.13.3~beta1\n") == 213003
    with pytest.raises(ValueError, match="parsing version failed"):
        apparmor.parse_parser_version("AppArmor parser version 1.2.3.4\n")


def test_generated_profile_matches_dockerd(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tunables").mkdir()
    (tmp_path / "tunables/global").write_text("")
    (tmp_path / "abstractions").mkdir()
    (tmp_path / "abstractions/base").write_text("")
    text = apparmor.generate_default("docker-default", "unconfined", 300008, str(tmp_path))
    assert text == EXPECTED_3_0_8


def test_generated_profile_old_parser_no_macros(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Parser 2.8.95 (< 2.8.96): no signal rules; ptrace from 2.8.95 on; @{PROC} defined inline.
    text = apparmor.generate_default("docker-default", "dockerd-prof", 208095, str(tmp_path))
    assert text.startswith("\n\n@{PROC}=/proc/\n\n\nprofile docker-default flags=(attach_disconnected,mediate_deleted) {\n\n\n")
    assert "signal" not in text and "ptrace (trace,read,tracedby,readby) peer=docker-default," in text
    old = apparmor.generate_default("docker-default", "x", 208000, str(tmp_path))
    assert "ptrace" not in old and "signal" not in old and "deny mount," in old
    new = apparmor.generate_default("docker-default", "dockerd-prof", 208096, str(tmp_path))
    assert "  signal (receive) peer=dockerd-prof,\n" in new


def test_daemon_profile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cur = tmp_path / "current"
    cur.write_text("unconfined\n")
    assert apparmor.daemon_profile(str(cur)) == "unconfined"
    cur.write_text("berthd (enforce)\n")
    assert apparmor.daemon_profile(str(cur)) == "berthd"
    assert apparmor.daemon_profile(str(tmp_path / "none")) == "unconfined"


def test_is_loaded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "profiles"
    f.write_text("docker-default-x (enforce)\nman_groff (enforce)\n")
    assert not apparmor.is_loaded("docker-default", str(f))
    f.write_text("man_groff (enforce)\ndocker-default (enforce)\n")
    assert apparmor.is_loaded("docker-default", str(f))


@pytest.mark.skipif(shutil.which("apparmor_parser") is None, reason="no apparmor_parser")
def test_host_parser_accepts_profile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The host's own apparmor_parser compiles the text (-Q: parse only, nothing loaded)."""
    out = subprocess.run(["apparmor_parser", "--version"], check=False, capture_output=True, text=True).stdout
    text = apparmor.generate_default("docker-default", "unconfined", apparmor.parse_parser_version(out))
    p = tmp_path / "docker-default"
    p.write_text(text)
    r = subprocess.run(["apparmor_parser", "-Q", "-K", str(p)], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_ensure_loads_only_when_missing(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    monkeypatch.setattr(apparmor, "enabled", lambda: True)
    monkeypatch.setattr(apparmor, "is_loaded", lambda name: name in calls)
    monkeypatch.setattr(apparmor, "install_default", lambda name: calls.append(name))
    apparmor.ensure_default_profile()
    apparmor.ensure_default_profile()
    assert calls == ["docker-default"]

    def fail(name: str) -> None:
        raise RuntimeError("running `/usr/sbin/apparmor_parser apparmor_parser -Kr /tmp/x` failed")
    monkeypatch.setattr(apparmor, "is_loaded", lambda name: False)
    monkeypatch.setattr(apparmor, "install_default", fail)
    with pytest.raises(RuntimeError, match="^AppArmor enabled on system but the docker-default profile "
                       "could not be loaded: running"):
        apparmor.ensure_default_profile()
    ctr = type("C", (), {"AppArmorProfile": "", "host_config": type("H", (), {"Privileged": False})()})()
    with pytest.raises(errdefs.System, match="docker-default profile could not be loaded"):
        apparmor.with_apparmor(ctr, True)
    named = type("C", (), {"AppArmorProfile": "mine", "host_config": ctr.host_config})()
    with pytest.raises(errdefs.System, match='^AppArmor profile "mine" is not loaded'):
        apparmor.with_apparmor(named, True)
    monkeypatch.setattr(apparmor, "is_loaded", lambda name: True)
    assert apparmor.with_apparmor(named, True) == "mine"
    monkeypatch.setattr(apparmor, "enabled", lambda: False)
    apparmor.ensure_default_profile()  # AppArmor off: nothing to do
