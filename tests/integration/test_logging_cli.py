"""Logging drivers through the real docker CLI: json-file rotation (max-size, max-file,
compress) read back across rotated files, local, none, --details, the daemon's default
log options, and logs kept while berthd was down. Compared with dockerd 20.10.24."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import time

import docker
import pytest
from berthd_harness import Berthd, start_berthd, stop_berthd

BURST = "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done"


def _run(b: Berthd, *args: str) -> str:
    return b.docker("run", "-d", *args).stdout.decode().strip()


def _wait_exit(b: Berthd, cid: str, timeout: float = 20) -> None:
    """`docker wait`, then until the exit cleanup (which settles the log) is done: a wait
    that comes after the state changed may answer before it."""
    b.docker("wait", cid, timeout=timeout)
    d = os.path.join(b.data_root, "containers", cid)
    sub = os.path.join(d, "local-logs")
    deadline = time.monotonic() + 10
    last: list[str] = []
    while time.monotonic() < deadline:
        names = sorted(os.listdir(d) + (os.listdir(sub) if os.path.isdir(sub) else []))
        if names == last and not any(n.endswith((".rotating", ".live")) for n in names):
            return
        last = names
        time.sleep(0.2)


def _files(b: Berthd, cid: str, sub: str = "") -> list[str]:
    d = os.path.join(b.data_root, "containers", cid, sub)
    return sorted(n.replace(cid, "ID") for n in os.listdir(d) if "log" in n and not n.startswith("."))


def _lines(b: Berthd, *args: str) -> list[str]:
    return b.docker("logs", *args).stdout.decode().splitlines()


def _numbers(lines: list[str]) -> list[int]:
    return [int(s.split()[-1]) for s in lines]


def _consecutive_to(nums: list[int], last: int) -> bool:
    return bool(nums) and nums == list(range(nums[0], last + 1))


@pytest.fixture
def cleanup(berthd: Berthd):
    made: list[str] = []
    yield made
    if made:
        berthd.docker("rm", "-f", *made, check=False)


def test_json_file_rotation_files_and_reading(berthd: Berthd, cleanup: list[str]) -> None:
    cid = _run(berthd, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox", "sh", "-c", BURST)
    cleanup.append(cid)
    _wait_exit(berthd, cid)
    # dockerd: <id>-json.log, .1, .2, each rotated one just over max-size
    assert _files(berthd, cid) == ["ID-json.log", "ID-json.log.1", "ID-json.log.2"]
    root = os.path.join(berthd.data_root, "containers", cid)
    for i in (1, 2):
        assert 1000 <= os.path.getsize(os.path.join(root, f"{cid}-json.log.{i}")) < 1200
    info = json.loads(berthd.docker("inspect", cid).stdout)[0]
    assert info["LogPath"] == os.path.join(root, f"{cid}-json.log")
    nums = _numbers(_lines(berthd, cid))
    assert _consecutive_to(nums, 99) and nums[0] > 0  # the oldest lines went with the oldest file
    assert _numbers(_lines(berthd, "--tail", "5", cid)) == [95, 96, 97, 98, 99]
    assert os.stat(os.path.join(root, f"{cid}-json.log")).st_mode & 0o777 == 0o640


SPECIAL = ('printf "a\\tb<&>\\"\\\\\\\\ \\xe2\\x80\\xa8 \\xff\\x01\\r\\n\\nlast"; echo err >&2; '
           'head -c 40000 /dev/zero | tr "\\0" x; echo; printf "\\xe2\\x82\\xac\\n"')
# dockerd 20.10.24's json-file lines for SPECIAL (time values and the name replaced): the
# escaping, the 16 KiB pieces of the 40004-byte line, the attrs object. sha256, length.
DOCKERD_STDOUT = [("a7d8b50fdb19338d", 147), ("8e3bceb2f78f27c2", 95), ("32bde49a0e501631", 16477),
                  ("ca74153ee81c3029", 16477), ("06694dfd7a5a6abc", 7331), ("695c2a37e9b3d77d", 98)]
DOCKERD_STDERR = [("0034a2161bb7134c", 98)]


def test_json_file_lines_byte_for_byte_as_dockerd(berthd: Berthd, cleanup: list[str]) -> None:
    cid = _run(berthd, "--name", "logjson", "--label", "lab=1", "-e", "E=v<1>", "--log-opt", "labels=lab",
               "--log-opt", "env=E", "--log-opt", "tag={{.Name}}", "busybox", "sh", "-c", SPECIAL)
    cleanup.append(cid)
    _wait_exit(berthd, cid)
    path = json.loads(berthd.docker("inspect", cid).stdout)[0]["LogPath"]
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    times = [re.search(rb'"time":"([^"]*)"', ln).group(1) for ln in lines]  # type: ignore[union-attr]
    assert all(re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", t) for t in times)
    norm = [re.sub(rb'"time":"[^"]*"', b'"time":"T"', ln).replace(b"logjson", b"NAME") for ln in lines]

    def digests(stream: bytes) -> list[tuple[str, int]]:
        return [(hashlib.sha256(n).hexdigest()[:16], len(n)) for n in norm if b'"stream":"%s"' % stream in n]

    assert digests(b"stdout") == DOCKERD_STDOUT
    assert digests(b"stderr") == DOCKERD_STDERR
    # A Docker-format parser reads it: jq over dockerd's keys gives the output back.
    with open(path, "rb") as f:
        out = subprocess.run(["jq", "-j", 'select(.stream=="stdout") | .log'], stdin=f,
                             capture_output=True, check=True).stdout
    assert out == "a\tb<&>\"\\ \u2028 \ufffd\x01\r\n\nlast".encode() + b"x" * 40000 + "\n€\n".encode()
    logs = berthd.docker("logs", cid)
    assert logs.stdout == out and logs.stderr == b"err\n"
    # the pieces of a long line come back as dockerd's reader returns them, one per entry
    stamped = berthd.docker("logs", "-t", "--tail", "4", cid).stdout.split(b"Z ")
    assert len(stamped) == 5


def test_since_until_across_files(berthd: Berthd, cleanup: list[str]) -> None:
    # conmon stamps all lines of one read alike: pace them so each has its own time
    cid = _run(berthd, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); sleep 0.01; done")
    cleanup.append(cid)
    _wait_exit(berthd, cid)
    stamped = _lines(berthd, "-t", cid)
    nums = _numbers(stamped)
    assert _consecutive_to(nums, 99)
    k = 3  # a line in the oldest rotated file; the until line is in the current file
    since, until = stamped[k].split()[0], stamped[-4].split()[0]
    assert _numbers(_lines(berthd, "--since", since, cid)) == nums[k:]
    assert _numbers(_lines(berthd, "--since", since, "--until", until, cid)) == nums[k:-3]
    assert _numbers(_lines(berthd, "--tail", "2", "--until", until, cid)) == []  # tail first, then until


def test_json_file_rotation_compressed(berthd: Berthd, cleanup: list[str]) -> None:
    cid = _run(berthd, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "--log-opt", "compress=true",
               "busybox", "sh", "-c", BURST)
    cleanup.append(cid)
    _wait_exit(berthd, cid)
    assert _files(berthd, cid) == ["ID-json.log", "ID-json.log.1.gz", "ID-json.log.2.gz"]
    gz = os.path.join(berthd.data_root, "containers", cid, f"{cid}-json.log.1.gz")
    with open(gz, "rb") as f:
        head = f.read(64)
    assert head[:4] == b"\x1f\x8b\x08\x04" and b'{"lastTime":"' in head  # dockerd's gzip header
    with gzip.open(gz) as f:
        assert f.read().count(b"\n") > 5
    nums = _numbers(_lines(berthd, cid))
    assert _consecutive_to(nums, 99)
    assert _numbers(_lines(berthd, "--tail", "30", cid)) == list(range(70, 100))


def test_max_file_one_keeps_only_current(berthd: Berthd, cleanup: list[str]) -> None:
    cid = _run(berthd, "--log-opt", "max-size=1k", "busybox", "sh", "-c", BURST)
    cleanup.append(cid)
    _wait_exit(berthd, cid)
    # dockerd 20.10 still renames the full file to .1, and never reads it back
    assert _files(berthd, cid) == ["ID-json.log", "ID-json.log.1"]
    nums = _numbers(_lines(berthd, cid))
    assert _consecutive_to(nums, 99) and nums[0] > 80


def test_local_driver(berthd: Berthd, cleanup: list[str]) -> None:
    cid = _run(berthd, "--log-driver", "local", "--log-opt", "max-size=1k", "busybox", "sh", "-c", BURST)
    cleanup.append(cid)
    _wait_exit(berthd, cid)
    assert _files(berthd, cid, "local-logs") == [
        "container.log", "container.log.1.gz", "container.log.2.gz", "container.log.3.gz", "container.log.4.gz"]
    assert json.loads(berthd.docker("inspect", cid).stdout)[0]["LogPath"] == ""
    assert _consecutive_to(_numbers(_lines(berthd, cid)), 99)
    # local keeps no attributes: --details prints only the separating space
    assert berthd.docker("logs", "--details", "--tail", "1", cid).stdout == b" line 99\n"


def test_follow_across_rotation(berthd: Berthd, cleanup: list[str]) -> None:
    cid = _run(berthd, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 120 ]; do echo line $i; i=$((i+1)); sleep 0.02; done")
    cleanup.append(cid)
    out = berthd.docker("logs", "-f", cid, timeout=60).stdout.decode().splitlines()
    assert _numbers(out) == list(range(120))  # started before the first rotation: every line, once
    assert _files(berthd, cid) == ["ID-json.log", "ID-json.log.1", "ID-json.log.2"]
    assert _consecutive_to(_numbers(_lines(berthd, cid)), 119)


def test_details_attributes(berthd: Berthd, cleanup: list[str]) -> None:
    cid = _run(berthd, "--label", "a=1", "--label", "X=lab", "-e", "FOO=bar", "-e", "X=env",
               "--log-opt", "labels=a,X,zz", "--log-opt", "env=FOO,X,NOPE", "--log-opt", "tag={{.Name}}/{{.ID}}",
               "--name", "logdetails", "busybox", "sh", "-c", "echo hi; echo err >&2")
    cleanup.append(cid)
    _wait_exit(berthd, cid)
    r = berthd.docker("logs", "--details", cid)
    attrs = f"FOO=bar,X=env,a=1,tag=logdetails%2F{cid[:12]}"  # env wins over the label
    assert r.stdout == f"{attrs} hi\n".encode()
    assert r.stderr == f"{attrs} err\n".encode()
    plain = berthd.docker("logs", cid)
    assert plain.stdout == b"hi\n" and plain.stderr == b"err\n"


def test_none_driver_and_bad_options(berthd: Berthd, cleanup: list[str]) -> None:
    cid = berthd.docker("create", "--log-driver", "none", "busybox", "true").stdout.decode().strip()
    cleanup.append(cid)
    r = berthd.docker("logs", cid, check=False)
    assert r.returncode == 1
    assert r.stderr == b"Error response from daemon: configured logging driver does not support reading\n"
    for opt, msg in (("max-size=abc", "invalid size: 'abc'"), ("max-file=0", "max-file cannot be less than 1"),
                     ("compress=true", "compress cannot be true when max-file is less than 2 or max-size is not set")):
        bad = berthd.docker("create", "--log-opt", opt, "busybox", "true").stdout.decode().strip()
        cleanup.append(bad)
        r = berthd.docker("start", bad, check=False)
        assert r.returncode == 1
        assert f"Error response from daemon: failed to initialize logging driver: {msg}" in r.stderr.decode()
        state = json.loads(berthd.docker("inspect", bad).stdout)[0]["State"]
        assert state["Error"] == f"failed to initialize logging driver: {msg}" and state["ExitCode"] == 128
        r = berthd.docker("logs", bad, check=False)
        assert r.stderr.decode() == f"Error response from daemon: {msg}\n"


@pytest.fixture
def private_tmp(busybox_tar: str, tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    import tempfile

    tmp = tempfile.mkdtemp(prefix="bt-logs-test-")
    yield tmp
    import shutil

    from berthd_harness import unmount_under

    unmount_under(tmp)
    shutil.rmtree(tmp, ignore_errors=True)


def test_daemon_default_log_opts_and_restart(private_tmp: str, busybox_tar: str) -> None:
    with open(os.path.join(private_tmp, "daemon.json"), "w") as f:
        json.dump({"log-driver": "json-file", "log-opts": {"max-size": "1k", "max-file": "2"}}, f)
    b = start_berthd(tmp=private_tmp)
    cid = ""
    try:
        b.docker("load", "-i", busybox_tar)
        cid = _run(b, "busybox", "sh", "-c",
                   "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); sleep 0.02; done")
        lc = json.loads(b.docker("inspect", cid).stdout)[0]["HostConfig"]["LogConfig"]
        assert lc == {"Type": "json-file", "Config": {"max-file": "2", "max-size": "1k"}}
        time.sleep(1)
        stop_berthd(b, signal.SIGTERM, cleanup=False)  # live restore: the container logs on
        time.sleep(1.5)
        b = start_berthd(tmp=private_tmp)
        _wait_exit(b, cid, timeout=30)
        assert _files(b, cid) == ["ID-json.log", "ID-json.log.1"]
        nums = _numbers(_lines(b, cid))
        assert _consecutive_to(nums, 199)
    finally:
        if cid:
            b.docker("rm", "-f", cid, check=False)
        stop_berthd(b, cleanup=False)


def test_stopped_means_all_logs_are_readable(berthd: Berthd) -> None:
    """dockerd drains the container's output into the log before it marks the exit
    (StreamConfig.Wait, Reset, then SetStopped): a client that sees the container stopped
    and reads its logs gets all of them; a follow asked while it runs ends with the last."""
    client = docker.DockerClient(base_url=berthd.host, timeout=60)
    made: list[str] = []
    try:
        for _ in range(100):
            ctr = client.containers.create("busybox", ["sh", "-c", "echo out; echo err >&2"])
            made.append(ctr.id)
            ctr.start()
            # as `containers.run`: a follow asked at once, running or not by then
            out = b"".join(client.api.logs(ctr.id, stdout=True, stderr=True, stream=True, follow=True))
            assert out == b"out\nerr\n"
    finally:
        for cid in made:
            client.api.remove_container(cid, force=True)
        client.close()
