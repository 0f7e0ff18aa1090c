"""Shared fixtures: a real berthd on a temporary socket and data root."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from berthd_harness import Berthd, start_berthd, stop_berthd


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> str:
    from berth.tools import busybox

    path = tmp_path_factory.mktemp("images") / "busybox.tar"
    path.write_bytes(busybox.save_tar("busybox:latest"))
    return str(path)


@pytest.fixture(scope="session")
def berthd(busybox_tar: str) -> Iterator[Berthd]:
    """One daemon for the session, holding busybox:latest loaded through `docker load`."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")
    b = start_berthd()
    try:
        b.docker("load", "-i", busybox_tar)
        yield b
    finally:
        stop_berthd(b)


@pytest.fixture
def sleeper(berthd: Berthd) -> Iterator[str]:
    """The name of a running `busybox sleep 600` on the session daemon, removed afterwards."""
    import uuid

    name = "t-" + uuid.uuid4().hex[:10]
    berthd.docker("run", "-d", "--name", name, "busybox", "sleep", "600")
    yield name
    berthd.docker("rm", "-f", name, check=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every daemon is stopped by now: leave no netavark chain the run made and nothing
    uses any more (network/leftovers.py; a chain in use, anyone's, is never touched)."""
    if os.geteuid() != 0 or not os.path.isdir("/run/lock"):
        return
    from berth.network import leftovers
    from berth.network.netavark import host_lock

    with host_lock():
        leftovers.sweep(full=True)


def pytest_configure(config: pytest.Config) -> None:
    # `guest`: the subset scripts/guest-test runs in its cgroup v2 + systemd + AppArmor guest
    # (every test that touches cgroups); they run on this host with the rest as well.
    config.addinivalue_line("markers", "guest: also run by scripts/guest-test in the cgroup v2/systemd guest")
