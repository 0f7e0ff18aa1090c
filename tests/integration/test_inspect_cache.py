"""Inspect answers from a cache keyed on the container's checkpoint revision and State
(daemon/inspect.py); every change a client makes must show in the next inspect. The
harness runs berthd with BERTH_CHECK_INSPECT_CACHE=1, so a stale hit is also a 500."""
from __future__ import annotations

import json
import uuid

from berthd_harness import Berthd


def _inspect(b: Berthd, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(b.docker("inspect", name).stdout)[0]


def test_every_change_shows_in_the_next_inspect(berthd: Berthd) -> None:
    name, other = "ic-" + uuid.uuid4().hex[:8], "ic-" + uuid.uuid4().hex[:8]
    cid = berthd.docker("create", "--name", name, "busybox", "sleep", "300").stdout.decode().strip()
    try:
        assert _inspect(berthd, name)["State"]["Status"] == "created"
        assert _inspect(berthd, name)["State"]["Status"] == "created"  # a hit
        berthd.docker("start", name)
        first = _inspect(berthd, name)
        assert first["State"]["Running"] and first["State"]["Pid"] > 0
        berthd.docker("update", "--memory", "64m", "--memory-swap", "128m", name)
        assert _inspect(berthd, name)["HostConfig"]["Memory"] == 64 << 20
        assert _inspect(berthd, name)["ExecIDs"] is None
        berthd.docker("exec", "-d", name, "sleep", "30")
        assert len(_inspect(berthd, name)["ExecIDs"]) == 1  # exec IDs are part of the key
        berthd.docker("rename", name, other)
        assert _inspect(berthd, cid)["Name"] == "/" + other
        berthd.docker("pause", other)
        assert _inspect(berthd, cid)["State"]["Status"] == "paused"
        berthd.docker("unpause", other)
        berthd.docker("stop", "-t", "0", other)
        stopped = _inspect(berthd, cid)
        assert stopped["State"]["Status"] == "exited" and stopped["State"]["Pid"] == 0
        assert stopped["State"]["StartedAt"] == first["State"]["StartedAt"]
    finally:
        berthd.docker("rm", "-f", cid, check=False)
