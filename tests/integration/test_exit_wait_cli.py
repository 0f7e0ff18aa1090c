"""An exit is over when `docker wait` (or stop, kill, restart, `run --rm`) says so, and
`docker ps -f name=` matches names as dockerd does; through the real docker CLI.

dockerd's waiters read the result under the container lock, which handleContainerExit
holds until the network is released and the state written: right after the wait, the
published port is free again and inspect shows no address (reference dockerd 20.10.24:
0 failures in 3 tries each).
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from berthd_harness import Berthd

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root")


def uniq(prefix: str = "w") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def host_port() -> int:
    """A free TCP port on the host, from a range no ephemeral port comes from."""
    for port in range(15300, 15400):
        s = socket.socket()
        try:
            s.bind(("0.0.0.0", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port in 15300-15399")


def state(b: Berthd, name: str) -> tuple[str, str, dict]:
    info = json.loads(b.docker("inspect", name).stdout)[0]
    return info["State"]["Status"], info["NetworkSettings"]["IPAddress"], info["NetworkSettings"]["Ports"]


@pytest.fixture
def names(berthd: Berthd) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        berthd.docker("rm", "-f", *made, check=False)


def test_wait_returns_after_the_network_is_released(berthd: Berthd, names: list[str]) -> None:
    port = host_port()
    for _ in range(3):
        names.append(uniq())
        berthd.docker("run", "-d", "--name", names[-1], "-p", f"{port}:80", "busybox", "true")
        assert berthd.docker("wait", names[-1]).stdout.decode().strip() == "0"
        st, ip, ports = state(berthd, names[-1])
        assert (st, ip, ports) == ("exited", "", {})
        # the next run gets the port: it was released before the wait answered
        names.append(uniq())
        berthd.docker("run", "-d", "--name", names[-1], "-p", f"{port}:80", "busybox", "true")
        assert berthd.docker("wait", names[-1]).stdout.decode().strip() == "0"


def test_stop_kill_and_rm_return_after_the_network_is_released(berthd: Berthd, names: list[str]) -> None:
    port = host_port()
    for how in (("stop", "-t", "1"), ("kill",)):
        names.append(uniq())
        berthd.docker("run", "-d", "--name", names[-1], "-p", f"{port}:80", "busybox", "sleep", "60")
        berthd.docker(*how, names[-1])
        assert state(berthd, names[-1])[:2] == ("exited", ""), how
    # restart: the same port is taken again by the same container
    berthd.docker("restart", "-t", "1", names[-1])
    st, ip, ports = state(berthd, names[-1])
    assert st == "running" and ip and ports["80/tcp"][0]["HostPort"] == str(port)
    berthd.docker("rm", "-f", names[-1])
    # `run --rm` waits for the removal; the port is free for the next one
    for _ in range(2):
        berthd.docker("run", "--rm", "-p", f"{port}:80", "busybox", "true")


def test_wait_wakes_at_a_restart_after_the_exit_is_handled(berthd: Berthd, names: list[str]) -> None:
    """SetRestarting fires the waiters too (dockerd answers 3 with the container restarting)."""
    names.append(uniq())
    berthd.docker("run", "-d", "--name", names[-1], "--restart", "on-failure:1", "busybox", "sh", "-c",
                  "sleep 0.3; exit 3")
    assert berthd.docker("wait", names[-1]).stdout.decode().strip() == "3"
    info = json.loads(berthd.docker("inspect", names[-1]).stdout)[0]
    assert info["RestartCount"] == 1 and info["State"]["Status"] in ("restarting", "running")
    assert berthd.docker("wait", names[-1]).stdout.decode().strip() == "3"
    assert state(berthd, names[-1])[:2] == ("exited", "")


def test_ps_name_filter_with_and_without_the_slash(berthd: Berthd, names: list[str]) -> None:
    web, other = uniq("web"), uniq("cli")
    names += [web, other]
    berthd.docker("create", "--name", web, "busybox", "true")
    berthd.docker("create", "--name", other, "--link", f"{web}:al{web[-4:]}", "busybox", "true")

    def ps(f: str) -> list[str]:
        return sorted(berthd.docker("ps", "-a", "--filter", f"name={f}", "--format", "{{.Names}}")
                      .stdout.decode().split())

    assert ps(f"^{web}$") == [web]  # the usual exact-name idiom
    assert ps(f"^/{web}$") == [web]
    assert ps(web[-6:] + "$") == [web]
    assert ps(f"^({web}|{other})$") == sorted([web, other])
    # link names (/other/alias) are not the container's name: dockerd matches none
    assert ps(f"al{web[-4:]}") == []
    assert ps(f"^/{other}/") == []


def test_exit_while_the_daemon_is_down(busybox_tar: str) -> None:
    """The daemon-restart path: a container that exited while berthd was down is handled
    (network released, state written) before the restarted daemon answers its wait."""
    import signal
    import time

    from berthd_harness import start_berthd, stop_berthd

    b = start_berthd()
    port = host_port()
    try:
        b.docker("load", "-i", busybox_tar)
        b.docker("run", "-d", "--name", "down", "-p", f"{port}:80", "busybox", "sleep", "2")
        stop_berthd(b, sig=signal.SIGKILL, cleanup=False)
        time.sleep(3)  # it exits meanwhile; conmon keeps its exit code
        b = start_berthd(tmp=b.tmp)
        assert b.docker("wait", "down").stdout.decode().strip() == "0"
        assert state(b, "down")[:2] == ("exited", "")
        b.docker("run", "--rm", "-p", f"{port}:80", "busybox", "true")
        b.docker("rm", "down")
    finally:
        stop_berthd(b)
