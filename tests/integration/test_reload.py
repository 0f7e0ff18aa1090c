"""SIGHUP: the configuration reloaded as dockerd 20.10 does it (moby daemon/reload.go).

Checked against a private dockerd 20.10.24 (own socket, data and exec root): the `reload`
event's attributes, `docker info` after it, which keys keep their value when the file
leaves them out and which go back to their defaults, and the errors logged for a file that
cannot be used (nothing changes then).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator

import docker
import pytest
from berthd_harness import Berthd, start_berthd, stop_berthd


@pytest.fixture
def hupd(busybox_tar: str) -> Iterator[Berthd]:
    """A daemon of its own, started with a daemon.json and a transfer limit as a flag."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")
    tmp = tempfile.mkdtemp(prefix="berth-reload-")
    with open(os.path.join(tmp, "daemon.json"), "w") as f:
        json.dump({"labels": ["start=1"], "live-restore": True}, f)
    b = start_berthd(tmp, extra=["--max-concurrent-downloads", "6"])
    try:
        b.docker("load", "-i", busybox_tar)
        yield b
    finally:
        for cid in b.docker("ps", "-aq", check=False).stdout.decode().split():
            b.docker("rm", "-f", cid, check=False)
        stop_berthd(b)


def _client(b: Berthd) -> docker.DockerClient:
    return docker.DockerClient(base_url=b.host, version="1.41")


def _hup(b: Berthd, doc: dict | str) -> None:
    with open(os.path.join(b.tmp, "daemon.json"), "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    os.kill(b.proc.pid, signal.SIGHUP)


def _reload_events(b: Berthd, since: float) -> list[dict]:
    """The `reload` events logged since `since` (the SDK's whole seconds, then by timeNano)."""
    c = _client(b)
    try:
        evs = c.events(since=int(since), until=int(time.time()) + 1, decode=True,
                       filters={"type": "daemon", "event": "reload"})
        return [e for e in evs if e["timeNano"] >= int(since * 1e9)]
    finally:
        c.close()


def _wait_reload(b: Berthd, since: float, count: int = 1) -> dict[str, str]:
    deadline = time.time() + 10
    while True:
        evs = _reload_events(b, since)
        if len(evs) >= count or time.time() > deadline:
            assert len(evs) >= count, b.log()[-3000:]
            return evs[-1]["Actor"]["Attributes"]  # type: ignore[no-any-return]
        time.sleep(0.1)


def _wait_log(b: Berthd, text: str, start: int) -> str:
    deadline = time.time() + 10
    while text not in b.log()[start:]:
        assert time.time() < deadline, f"{text!r} not logged:\n{b.log()[start:][-3000:]}"
        time.sleep(0.1)
    return b.log()[start:]


def _info(b: Berthd) -> dict:
    return json.loads(b.docker("info", "--format", "{{json .}}").stdout)


def test_reload_applies_what_dockerd_reloads(hupd: Berthd) -> None:
    b = hupd
    runc = shutil.which("runc") or "runc"
    r = b.docker("run", "--rm", "--runtime", "rt2", "busybox", "true", check=False)
    assert r.returncode != 0 and "Unknown runtime specified rt2" in r.stderr.decode()
    info = _info(b)
    assert info["Labels"] == ["start=1"] and info["Debug"] is False and info["LiveRestoreEnabled"] is True

    t0 = time.time()
    _hup(b, {"debug": True, "labels": ["a=b", "c=d", "a=b"], "runtimes": {"rt2": {"path": runc}},
             "default-runtime": "rt2", "live-restore": False, "shutdown-timeout": 7, "default-shm-size": "128M",
             "default-ipc-mode": "shareable", "default-cgroupns-mode": "private", "max-download-attempts": 2,
             "insecure-registries": ["10.9.0.0/16"]})
    attrs = _wait_reload(b, t0)
    assert attrs == {
        "allow-nondistributable-artifacts": "[]", "cluster-advertise": "", "cluster-store": "",
        "cluster-store-opts": "null", "debug": "true", "default-cgroupns-mode": "private",
        "default-ipc-mode": "shareable", "default-runtime": "rt2", "default-shm-size": "134217728",
        "features": "map[]", "insecure-registries": '["10.9.0.0/16"]', "labels": '["a=b","c=d"]',
        "live-restore": "false",
        # the flag's 6 is gone: dockerd reloads the file alone and resets what it leaves out
        "max-concurrent-downloads": "3", "max-concurrent-uploads": "5", "max-download-attempts": "2",
        "name": socket.gethostname(), "registry-mirrors": "[]", "runtimes": f"rt2:{runc} runc:runc",
        "shutdown-timeout": "7",
    }
    info = _info(b)
    assert info["Debug"] is True and info["Labels"] == ["a=b", "c=d"] and info["LiveRestoreEnabled"] is False
    assert info["Runtimes"]["rt2"] == {"path": runc} and info["DefaultRuntime"] == "rt2"
    assert "10.9.0.0/16" in info["RegistryConfig"]["InsecureRegistryCIDRs"]

    # the new runtime is usable, and the default for a container that names none
    b.docker("run", "--name", "h-rt", "--runtime", "rt2", "busybox", "true")
    assert b.docker("inspect", "-f", "{{.HostConfig.Runtime}}", "h-rt").stdout.decode().strip() == "rt2"
    b.docker("create", "--name", "h-def", "busybox", "df", "-k", "/dev/shm")
    hc = json.loads(b.docker("inspect", "-f", "{{json .HostConfig}}", "h-def").stdout)
    assert (hc["Runtime"], hc["IpcMode"], hc["CgroupnsMode"], hc["ShmSize"]) == \
        ("rt2", "shareable", "private", 128 << 20)
    b.docker("start", "-a", "h-def")
    assert " 131072 " in b.docker("logs", "h-def").stdout.decode()

    # a runtime with runtimeArgs: run through a script that adds them (dockerd's
    # <data-root>/runtimes/<name>); the runtime here records what it is called with
    rec = os.path.join(b.tmp, "rec-runtime")
    calls = os.path.join(b.tmp, "rec-calls")
    with open(rec, "w") as f:
        f.write(f'#!/bin/sh\necho "$@" >> {calls}\nexec {runc} "$@"\n')
    os.chmod(rec, 0o755)
    t_args = time.time()
    _hup(b, {"runtimes": {"rt2": {"path": runc}, "rt3": {"path": rec, "runtimeArgs": ["--debug"]}}})
    assert "rt3:" + rec in _wait_reload(b, t_args)["runtimes"]
    assert _info(b)["Runtimes"]["rt3"] == {"path": rec, "runtimeArgs": ["--debug"]}
    assert b.docker("run", "--rm", "--runtime", "rt3", "busybox", "echo", "via rt3").stdout == b"via rt3\n"
    with open(calls) as f:
        lines = f.read().splitlines()
    assert lines and all(line.startswith("--debug ") for line in lines), lines
    assert any(" create " in f" {line} " for line in lines), lines

    # debug logging is on from the next reload (dockerd switches it once Reload is done);
    # a file that leaves keys out keeps debug, labels, runtimes and live-restore as they are
    mark = len(b.log())
    t1 = time.time()
    _hup(b, {})
    attrs = _wait_reload(b, t1)
    _wait_log(b, "Reset Max Concurrent Downloads: 3", mark)
    assert (attrs["debug"], attrs["labels"], attrs["live-restore"], attrs["default-runtime"]) == \
        ("true", '["a=b","c=d"]', "false", "rt2")
    assert attrs["max-download-attempts"] == "5" and attrs["shutdown-timeout"] == "7"
    assert attrs["insecure-registries"] == '["10.9.0.0/16"]' and attrs["runtimes"] == f"rt2:{runc} rt3:{rec} runc:runc"

    # debug off: the info level again (the next reload's debug lines are not logged)
    _hup(b, {"debug": False, "runtimes": {}, "default-runtime": "runc", "insecure-registries": []})
    assert _wait_reload(b, t1, 2)["runtimes"] == "runc:runc"
    mark = len(b.log())
    t2 = time.time()
    _hup(b, {"debug": False})
    _wait_reload(b, t2)
    _wait_log(b, "Reloaded configuration", mark)
    assert "Reset Max Concurrent Downloads" not in b.log()[mark:]
    info = _info(b)
    assert info["Debug"] is False and "rt2" not in info["Runtimes"] and info["DefaultRuntime"] == "runc"
    r = b.docker("run", "--rm", "--runtime", "rt2", "busybox", "true", check=False)
    assert r.returncode != 0 and "Unknown runtime specified rt2" in r.stderr.decode()
    # a container made with a runtime a reload removed still stops and goes
    b.docker("rm", "-f", "h-rt", "h-def")


@pytest.mark.parametrize(("doc", "error"), [
    ('{"debug": ', "unable to configure the Docker daemon with file {path}: "),
    ('{"max-concurrent-downloads": 4}', "unable to configure the Docker daemon with file {path}: the following "
     "directives are specified both as a flag and in the configuration file: max-concurrent-downloads: "
     "(from flag: 6, from file: 4)"),
    ('{"runtimes": {"runc": {"path": "/bin/true"}}}', "file configuration validation failed: runtime name 'runc' "
     "is reserved"),
    ('{"default-runtime": "nope"}', "file configuration validation failed: specified default runtime 'nope' "
     "does not exist"),
    ('{"default-ipc-mode": "host"}', 'file configuration validation failed: IPC mode "host" is not supported as '
     'default value; use "shareable" or "private"'),
    ('{"default-ipc-mode": "bogus"}', 'file configuration validation failed: default IPC mode setting (bogus) is '
     'invalid; use "shareable" or "private"'),
    ('{"default-cgroupns-mode": "x"}', 'file configuration validation failed: default cgroup namespace mode (x) '
     'is invalid; use "host" or "private"'),
    ('{"labels": ["abc"]}', "file configuration validation failed: bad attribute format: abc"),
    ('{"labels": ["a=b", "a=c"]}', "conflict labels for a=c and a=b"),
    ('{"max-download-attempts": 0}', "file configuration validation failed: invalid max download attempts: 0"),
    ('{"max-concurrent-uploads": -1}', "file configuration validation failed: invalid max concurrent uploads: -1"),
    ('{"shutdown-timeout": "x"}', "unable to configure the Docker daemon with file {path}: json: cannot unmarshal "
     "string into Go struct field Config.shutdown-timeout of type int"),
    ('{"debug": "yes"}', "unable to configure the Docker daemon with file {path}: json: cannot unmarshal string "
     "into Go struct field Config.debug of type bool"),
    ('{"default-shm-size": 1000000}', 'unable to configure the Docker daemon with file {path}: invalid size: '
     '"1000000"'),
    ('{"default-shm-size": "x"}', "unable to configure the Docker daemon with file {path}: invalid size: 'x'"),
    ('{"registry-mirrors": ["ftp://nope"]}', "Error reconfiguring the daemon: "),
], ids=lambda v: v if isinstance(v, str) and v.startswith("{") else "")
def test_reload_refuses_what_dockerd_refuses(hupd: Berthd, doc: str, error: str) -> None:
    """An unusable file is logged with dockerd's text and changes nothing (no event either)."""
    b = hupd
    before = _info(b)
    mark = len(b.log())
    t0 = time.time()
    _hup(b, doc)
    _wait_log(b, error.format(path=os.path.join(b.tmp, "daemon.json")), mark)
    assert b.proc.poll() is None and not _reload_events(b, t0)
    after = _info(b)
    for key in ("Debug", "Labels", "Runtimes", "DefaultRuntime", "LiveRestoreEnabled", "RegistryConfig"):
        assert after[key] == before[key], key


def test_reload_live_restore_and_shutdown_timeout(busybox_tar: str) -> None:
    """live-restore turned off by a reload: the daemon's stop stops the running containers
    (dockerd's Shutdown), within the reloaded shutdown-timeout."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root")
    tmp = tempfile.mkdtemp(prefix="berth-reload-")
    b = start_berthd(tmp)
    try:
        b.docker("load", "-i", busybox_tar)
        b.docker("run", "-d", "--name", "lr", "--stop-timeout", "1", "busybox", "sleep", "600")
        pid = int(b.docker("inspect", "-f", "{{.State.Pid}}", "lr").stdout)
        t0 = time.time()
        _hup(b, {"live-restore": False, "shutdown-timeout": 3})
        assert _wait_reload(b, t0)["live-restore"] == "false"
        assert _info(b)["LiveRestoreEnabled"] is False
        b.proc.send_signal(signal.SIGTERM)
        b.proc.wait(30)
        assert not os.path.exists(f"/proc/{pid}"), "live-restore off: the container is stopped with the daemon"
        assert "Force shutdown daemon" not in b.log()
    finally:
        stop_berthd(b)
