"""Pieces of the run-to-exit path (issue #12): several files written with shared syncs, run
state written without syncing, runc's delete of a stopped container done in-process (and
refused whenever runc would do more), network namespaces made ahead of the starts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from berth.network import netns
from berth.pkg import atomicfile
from berth.runtime.oci import delete_stopped_in_place


def test_write_files_replaces_each_atomically(tmp_path: Path) -> None:
    d = str(tmp_path)
    atomicfile.write_files(d, [("a.json", b"old-a", 0o600), ("b.json", b"old-b", 0o644)])
    atomicfile.write_files(d, [("a.json", b"new-a", 0o600), ("b.json", b"new-b", 0o644)])
    assert sorted(os.listdir(d)) == ["a.json", "b.json"]  # no temporary file left
    assert (tmp_path / "a.json").read_bytes() == b"new-a"
    assert (tmp_path / "b.json").read_bytes() == b"new-b"
    assert os.stat(tmp_path / "a.json").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "b.json").st_mode & 0o777 == 0o644


def test_write_files_failing_leaves_the_old_files(tmp_path: Path) -> None:
    d = str(tmp_path)
    atomicfile.write_files(d, [("a.json", b"old-a", 0o600)])
    with pytest.raises(TypeError):
        atomicfile.write_files(d, [("a.json", b"new-a", 0o600), ("b.json", None, 0o600)])  # type: ignore[list-item]
    assert os.listdir(d) == ["a.json"] and (tmp_path / "a.json").read_bytes() == b"old-a"


def test_write_file_not_durable_is_still_atomic(tmp_path: Path) -> None:
    path = str(tmp_path / "berth-conmon.json")
    atomicfile.write_file(path, b"one", 0o600, durable=False)
    atomicfile.write_file(path, b"two", 0o600, durable=False)
    assert os.listdir(tmp_path) == ["berth-conmon.json"] and (tmp_path / "berth-conmon.json").read_bytes() == b"two"


def _runc_state(d: Path, pid: int, start: int, cgroups: dict[str, str], **config: object) -> None:
    d.mkdir(exist_ok=True)
    cfg = {"namespaces": [{"type": "NEWNS", "path": ""}, {"type": "NEWPID", "path": ""}], **config}
    (d / "state.json").write_text(json.dumps({
        "id": d.name, "init_process_pid": pid, "init_process_start": start, "cgroup_paths": cgroups,
        "config": cfg, "intel_rdt_path": ""}))


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def test_delete_stopped_in_place_removes_state_of_an_exited_init(tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    start = _start_time(p.pid)
    p.wait()
    state = tmp_path / "ctr"
    _runc_state(state, p.pid, start, {})
    assert delete_stopped_in_place(str(state))
    assert not state.exists()
    assert delete_stopped_in_place(str(state))  # nothing there: nothing to do


def test_delete_stopped_in_place_leaves_what_runc_must_do(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        cases = {
            "alive": dict(pid=live.pid, start=_start_time(live.pid), cgroups={}),
            "host-pid-ns": dict(pid=1 << 30, start=0, cgroups={}, namespaces=[{"type": "NEWNS", "path": ""}]),
            "poststop-hook": dict(pid=1 << 30, start=0, cgroups={}, hooks={"poststop": [{"path": "/bin/true"}]}),
            "foreign-cgroup": dict(pid=1 << 30, start=0, cgroups={"memory": str(tmp_path / "not-a-cgroup")}),
        }
        for name, c in cases.items():
            state = tmp_path / name
            extra = {k: v for k, v in c.items() if k not in ("pid", "start", "cgroups")}
            _runc_state(state, c["pid"], c["start"], c["cgroups"], **extra)  # type: ignore[arg-type]
            assert not delete_stopped_in_place(str(state)), name
            assert (state / "state.json").exists(), name
        (tmp_path / "garbled").mkdir()
        (tmp_path / "garbled" / "state.json").write_text("{")
        assert not delete_stopped_in_place(str(tmp_path / "garbled"))
    finally:
        live.kill()
        live.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts)")
def test_spare_namespaces_are_moved_into_place_and_removed_at_close(tmp_path: Path) -> None:
    spares = netns.Spares(str(tmp_path / "ahead"), size=2)
    target = str(tmp_path / "ctr-ns")
    try:
        assert not spares.take(target)  # none made yet: the start makes its own; filling begins
        assert _until(lambda: len(os.listdir(tmp_path / "ahead")) == 2)  # the filler stays for more
        assert spares.take(target)
        assert os.path.ismount(target)
        assert len(os.listdir(tmp_path / "ahead")) in (1, 2)  # one taken, maybe one made again
    finally:
        spares.close()
        netns.remove(target)
    assert os.listdir(tmp_path / "ahead") == []
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts)")
def test_spares_left_by_a_crash_go_at_the_next_start(tmp_path: Path) -> None:
    ahead = tmp_path / "ahead"
    ahead.mkdir()
    netns.create(str(ahead / "left"))
    spares = netns.Spares(str(ahead))
    spares.close()
    assert os.listdir(ahead) == []
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()


def _until(cond: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts)")
def test_retired_namespaces_are_removed_behind_the_exit_and_at_close(tmp_path: Path) -> None:
    paths = [str(tmp_path / f"ns{i}") for i in range(3)]
    for p in paths:
        netns.create(p)
    retired = netns.Retired()
    retired.retire(paths[0])
    assert _until(lambda: not os.path.exists(paths[0]))
    retired.retire(paths[1])
    retired.retire(paths[2])
    retired.close()  # the thread ends after the one it is at; the rest go here
    assert not any(os.path.exists(p) for p in paths)
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()
