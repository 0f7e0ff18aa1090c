"""Pure parts of the run path: user lookup, environment, tmpfs options, restart back-off,
log parsing and framing, wait bookkeeping, resolv.conf filtering."""
from __future__ import annotations

import asyncio
import os
import tempfile

import pytest

from berth import errdefs
from berth.daemon import etcfiles, logs, monitor, oci, wait


@pytest.fixture()
def rootfs() -> str:
    d = tempfile.mkdtemp(prefix="berth-lc-unit-")
    os.makedirs(os.path.join(d, "etc"))
    with open(os.path.join(d, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
                "app:x:1000:1000::/home/app:/bin/sh\n")
    with open(os.path.join(d, "etc", "group"), "w") as f:
        f.write("root:x:0:\nwheel:x:10:app\nnogroup:x:65534:\napp:x:1000:\n")
    yield d
    import shutil

    shutil.rmtree(d)


@pytest.mark.parametrize("user,uid,gid,gids", [
    ("", 0, 0, [0]),
    ("1234", 1234, 0, [0]),          # as the reference: Groups "0"
    ("1234:5", 1234, 5, [5]),
    ("nobody", 65534, 65534, [65534]),
    ("root:nogroup", 0, 65534, [65534]),
    ("app", 1000, 1000, [1000, 10]),  # member of wheel
])
def test_get_user(rootfs: str, user: str, uid: int, gid: int, gids: list[int]) -> None:
    u = oci.get_user(rootfs, user, None)
    assert (u.uid, u.gid, u.additional_gids) == (uid, gid, gids)


def test_get_user_group_add_and_errors(rootfs: str) -> None:
    assert oci.get_user(rootfs, "", ["5", "nogroup"]).additional_gids == [0, 5, 65534]
    with pytest.raises(errdefs.System, match="unable to find user nosuch: no matching entries in passwd file"):
        oci.get_user(rootfs, "nosuch", None)


def test_replace_or_append_env() -> None:
    base = ["PATH=/bin", "HOSTNAME=h", "TERM=xterm"]
    assert oci.replace_or_append_env(base, ["PATH=/x", "TERM", "A=1", "A=2"]) == ["PATH=/x", "HOSTNAME=h", "A=1", "A=2"]


def test_merge_tmpfs_options() -> None:
    opts = ["noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m", "mode=1777", "size=2m"]
    assert oci.merge_tmpfs_options(opts) == ["nosuid", "nodev", "rprivate", "exec", "mode=1777", "size=2m"]
    with pytest.raises(errdefs.System):
        oci.merge_tmpfs_options(["bogus=1"])


def test_restart_manager_backoff_and_policies() -> None:
    rm = monitor.RestartManager("always", 0, 0)
    timeouts = []
    for _ in range(12):
        assert rm.should_restart(0, False, 0.5)
        rm.active = False
        timeouts.append(rm.timeout)
    assert timeouts[:4] == [0.1, 0.2, 0.4, 0.8] and timeouts[-1] == 60.0
    assert rm.should_restart(0, False, 11) and rm.timeout == 0.1  # reset after 10 s of running
    rm.active = False
    rm.cancel()
    assert not rm.should_restart(1, False, 0)
    of = monitor.RestartManager("on-failure", 2, 0)
    assert not of.should_restart(0, False, 0)
    assert of.should_restart(1, False, 0)
    of.active = False
    assert of.should_restart(1, False, 0)
    of.active = False
    assert not of.should_restart(1, False, 0)  # MaximumRetryCount reached
    us = monitor.RestartManager("unless-stopped", 0, 0)
    assert not us.should_restart(0, True, 0)
    assert not monitor.RestartManager("no", 0, 0).should_restart(1, False, 0)


def test_log_time_parse_and_format() -> None:
    ns = logs.parse_cri_time("2026-11-28T01:52:28.312768697+00:00")
    assert logs.format_timestamp(ns) == "2026-11-28T01:52:28.312768697Z"
    assert logs.format_timestamp(logs.parse_cri_time("2026-11-28T03:52:28.3+02:00")) == "2026-11-28T01:52:28.300000000Z"
    assert logs.parse_timestamp("") == 0
    assert logs.parse_timestamp("10.5") == 10_500_000_000
    with pytest.raises(errdefs.Untyped, match='strconv.ParseInt: parsing "abc": invalid syntax'):
        logs.parse_timestamp("abc")


def test_frame() -> None:
    assert logs.frame(2, b"err\n") == b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"


def test_wait_conditions() -> None:
    from berth.container.container import Container
    from berth.types.container import HostConfig

    async def go() -> None:
        ctr = Container(ID="x").attach("/nonexistent", HostConfig())
        f = wait.wait_condition(ctr, "not-running")
        assert f.done() and f.result() == (0, "")          # created: answered at once
        ctr.State.Running = True
        nr, ne, rm = (wait.wait_condition(ctr, c) for c in ("bogus", "next-exit", "removed"))
        assert not (nr.done() or ne.done() or rm.done())
        ctr.State.Running = False
        ctr.State.ExitCode = 3
        wait.notify_stop(ctr)
        assert nr.result() == (3, "") and ne.result() == (3, "") and not rm.done()
        ctr.State.Error = "boom"
        wait.notify_removed(ctr)
        assert rm.result() == (3, "")  # SetRemovalError(nil) clears the error

    asyncio.run(go())


def test_filter_resolv_dns() -> None:
    assert etcfiles.filter_resolv_dns("nameserver 127.0.0.53\nsearch x\n") == (
        "search x\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n")
    assert etcfiles.filter_resolv_dns("nameserver 10.0.0.1\nnameserver ::1\n") == "nameserver 10.0.0.1\n"
