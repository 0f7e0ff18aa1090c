"""runtime/oomwatch.py: an oom_kill increase seen through inotify, read while the file exists."""
from __future__ import annotations

import os
import time

from berth.runtime import oomwatch

EVENTS = "low 0\nhigh 0\nmax {max}\noom {oom}\noom_kill {kill}\noom_group_kill 0\n"


def _wait(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    t = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < t, "timed out"
        time.sleep(0.01)


def test_oom_kill_seen_before_the_cgroup_goes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "memory.events"
    events.write_text(EVENTS.format(max=3, oom=0, kill=0))
    other = tmp_path / "other.events"
    other.write_text("oom_kill 2\n")
    w = oomwatch.OOMWatcher()
    try:
        w.watch_file("a", str(events))
        w.watch_file("b", str(other))
        with open(other, "a") as f:  # a change that is no OOM kill
            f.write("max 9\n")
        events.write_text(EVENTS.format(max=5, oom=1, kill=1))
        # no event loop runs here (a busy daemon): the reader thread reads the file anyway
        _wait(lambda: "a" in w._killed)
        os.unlink(events)  # the scope goes away before the exit is handled
        assert (w.forget("a"), w.forget("b")) == (True, False)
        assert w.forget("a") is False  # reported once
    finally:
        w.close()
    assert w._thread is not None and not w._thread.is_alive()


def test_a_change_that_is_no_kill_and_a_last_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "memory.events"
    events.write_text(EVENTS.format(max=0, oom=0, kill=4))  # kills before it was watched do not count
    w = oomwatch.OOMWatcher()
    try:
        w.watch_file("a", str(events))
        events.write_text(EVENTS.format(max=7, oom=1, kill=4))
        time.sleep(0.05)
        assert w.forget("a") is False
        w.watch_file("a", str(events))
        events.write_text(EVENTS.format(max=7, oom=2, kill=5))
        assert w.forget("a") is True  # forget reads once more, whether or not the event was seen
    finally:
        w.close()


def test_watch_again_keeps_the_count_from_creation(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "cg"
    (root / "system.slice" / "berth-x.scope").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    events = root / "system.slice" / "berth-x.scope" / "memory.events"
    events.write_text(EVENTS.format(max=0, oom=0, kill=0))
    monkeypatch.setattr(oomwatch, "_CGROUP_ROOT", str(root))
    monkeypatch.setattr(oomwatch, "cgroup_v2_dir", lambda pid: str(events.parent))
    w = oomwatch.OOMWatcher()
    try:
        w.watch("x", 1)  # at create, before the process runs
        events.write_text(EVENTS.format(max=1, oom=1, kill=1))  # killed at once
        _wait(lambda: "x" in w._killed)
        w.watch("x", 1)  # the monitor's call after start keeps the first count
        assert w.forget("x") is True
    finally:
        w.close()


def test_helpers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "memory.events"
    f.write_text("oom 2\noom_kill 1\n")
    assert oomwatch.oom_kill_count(str(f)) == 1
    assert oomwatch.oom_kill_count(str(tmp_path / "gone")) is None
    assert oomwatch.cgroup_v2_dir(os.getpid()) is None or oomwatch.cgroup_v2_dir(os.getpid()).startswith("/sys/fs/cgroup")

    oomwatch.OOMWatcher().close()  # nothing started, nothing to stop


def test_the_kernels_line_when_the_file_told_nothing(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The kill's line in /dev/kmsg marks the container whose cgroup holds task_memcg, even
    when memory.events never said so before the scope went (here a FIFO stands in)."""
    root = tmp_path / "cg"
    scope = root / "system.slice" / "berth-x.scope"
    scope.mkdir(parents=True)
    (root / "system.slice" / "berth-y.scope").mkdir()
    for d in (scope, root / "system.slice" / "berth-y.scope"):
        (d / "memory.events").write_text(EVENTS.format(max=0, oom=0, kill=0))
    kmsg = tmp_path / "kmsg"
    os.mkfifo(kmsg)
    writer = os.open(kmsg, os.O_RDWR)
    monkeypatch.setattr(oomwatch, "_CGROUP_ROOT", str(root))
    monkeypatch.setattr(oomwatch, "_KMSG", str(kmsg))
    w = oomwatch.OOMWatcher()
    try:
        w.watch_file("x", str(scope / "memory.events"))
        w.watch_file("y", str(root / "system.slice" / "berth-y.scope" / "memory.events"))
        os.write(writer, b"6,1,2,-;Memory cgroup out of memory: Killed process 5 (tail)\n"
                         b"4,2,3,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=berth-x.scope,"
                         b"mems_allowed=0,oom_memcg=/system.slice/berth-x.scope,"
                         b"task_memcg=/system.slice/berth-x.scope/sub,task=tail,pid=5,uid=0\n")
        os.unlink(scope / "memory.events")  # gone without a change seen
        assert w.forget("x") is True  # forget reads what the kernel wrote first
        assert w.forget("y") is False
    finally:
        w.close()
        os.close(writer)
