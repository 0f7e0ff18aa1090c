"""runtime/oomwatch.py: an oom_kill increase seen through inotify, read while the file exists."""
from __future__ import annotations

import asyncio
import os

from berth.runtime import oomwatch


def test_oom_kill_seen_before_the_cgroup_goes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\noom_group_kill 0\n")
    other = tmp_path / "other.events"
    other.write_text("oom_kill 2\n")

    async def main() -> tuple[bool, bool]:
        w = oomwatch.OOMWatcher()
        w.watch_file("a", str(events))
        w.watch_file("b", str(other))
        with open(other, "a") as f:  # a change that is no OOM kill
            f.write("max 9\n")
        events.write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n")
        await asyncio.sleep(0.05)  # the reader runs and reads the file now
        os.unlink(events)  # the scope goes away before the exit is handled
        await asyncio.sleep(0.05)
        res = (w.forget("a"), w.forget("b"))
        assert w.forget("a") is False  # reported once
        w.close()
        return res

    assert asyncio.run(main()) == (True, False)


def test_helpers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "memory.events"
    f.write_text("oom 2\noom_kill 1\n")
    assert oomwatch.oom_kill_count(str(f)) == 1
    assert oomwatch.oom_kill_count(str(tmp_path / "gone")) is None
    assert oomwatch.cgroup_v2_dir(os.getpid()) is None or oomwatch.cgroup_v2_dir(os.getpid()).startswith("/sys/fs/cgroup")
