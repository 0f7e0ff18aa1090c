"""berth.logger: option parsing with dockerd's messages, --details attributes and tags,
and the rotation of conmon-written files (simulating conmon's reopen)."""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile

import pytest

from berth import errdefs
from berth.daemon.logs import _Files, _Follower
from berth.logger import rotate
from berth.logger.config import file_config
from berth.logger.info import Info, details_prefix, json_file_attrs, parse_log_tag
from berth.runtime import k8sfile


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="bt-logs-unit-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def rec(i: int, stream: str = "stdout", flag: str = "F") -> bytes:
    return f"2026-01-01T00:00:{i // 1000:02d}.{i % 1000:09d}+00:00 {stream} {flag} line {i}\n".encode()


def write(path: str, lines: range, mode: str = "ab") -> None:
    with open(path, mode) as f:
        f.writelines(rec(i) for i in lines)


def read_all(cfg, tail: int = -1, since: int = 0) -> list[int]:
    files = _Files(cfg, cfg.path, tail, since)
    try:
        return [int(ln.data.split()[-1]) for ln in k8sfile.read_lines(files.backlog())]
    finally:
        files.close()


@pytest.mark.parametrize("driver,opts,msg", [
    ("json-file", {"max-size": "abc"}, "invalid size: 'abc'"),
    ("json-file", {"max-size": "-1"}, "invalid size: '-1'"),
    ("json-file", {"max-size": "0"}, "max-size must be a positive number"),
    ("json-file", {"max-file": "0"}, "max-file cannot be less than 1"),
    ("json-file", {"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
    ("json-file", {"compress": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
    ("json-file", {"compress": "true", "max-file": "2"},
     "compress cannot be true when max-file is less than 2 or max-size is not set"),
    ("local", {"max-size": "abc"}, "invalid value for max-size: abc: invalid size: 'abc'"),
    ("local", {"max-file": "x"}, 'invalid value for max-file: x: strconv.Atoi: parsing "x": invalid syntax'),
    ("local", {"max-file": "-1"}, "max file count cannot be less than 0"),
    ("local", {"max-file": "1"}, "compression cannot be enabled when max file count is 1"),
    ("local", {"compress": "x"}, 'error reading compress log option: strconv.ParseBool: parsing "x": invalid syntax'),
])
def test_option_errors_as_dockerd(driver: str, opts: dict[str, str], msg: str) -> None:
    with pytest.raises(errdefs.Untyped) as e:
        file_config("/r", "abc", driver, opts)
    assert str(e.value) == msg


def test_paths_and_defaults() -> None:
    j = file_config("/r", "abc", "json-file", {})
    assert (j.path, j.max_size, j.max_files, j.compress) == ("/r/abc-json.log", -1, 1, False)
    loc = file_config("/r", "abc", "local", {})
    assert (loc.path, loc.max_size, loc.max_files, loc.compress) == ("/r/local-logs/container.log", 20 << 20, 5, True)
    c = file_config("/r", "abc", "syslog", {"cache-max-size": "1k", "cache-max-file": "2"})
    assert (c.path, c.max_size, c.max_files) == ("/r/container-cached.log", 1000, 2)
    assert file_config("/r", "abc", "syslog", {"cache-disabled": "true"}) is None
    assert file_config("/r", "abc", "none", {}) is None


def test_details_attributes_and_tag() -> None:
    info = Info(Config={"labels": "X,a,zz", "env": "X,FOO", "labels-regex": "^l",
                        "tag": "{{.ImageID}}|{{.Name}}|{{.ID}}|{{.Command}}|{{upper .ImageName}}"},
                ContainerID="cbad7bd6ad19" + "0" * 52, ContainerName="/web", ContainerEntrypoint="echo",
                ContainerArgs=["hi"], ContainerImageID="sha256:8c5283a1a363", ContainerImageName="busybox",
                ContainerEnv=["X=env", "FOO=a b"], ContainerLabels={"X": "lab", "a": "1", "l1": "v"})
    assert details_prefix(json_file_attrs(info)) == (
        b"FOO=a+b,X=env,a=1,l1=v,tag=sha256%3A8c528%7Cweb%7Ccbad7bd6ad19%7Cecho+hi%7CBUSYBOX")
    for tag, msg in (("{{.Bad", "template: log-tag:1: unclosed action"),
                     ("{{.Nope}}", ('template: log-tag:1:2: executing "log-tag" at <.Nope>: '
                                    "can't evaluate field Nope in type *logger.Info"))):
        info.Config = {"tag": tag}
        with pytest.raises(errdefs.Untyped) as e:
            parse_log_tag(info)
        assert str(e.value) == msg
    info.Config = {"labels-regex": "("}
    with pytest.raises(errdefs.Untyped, match=r"missing closing \)"):
        json_file_attrs(info)


def test_settle_cuts_like_dockerd(tmp: str) -> None:
    cfg = file_config(tmp, "c", "json-file", {"max-size": "1k", "max-file": "3"})
    rotate.prepare(cfg)
    write(cfg.path, range(100))
    rotate.settle(cfg)
    names = sorted(n for n in os.listdir(tmp))
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    for n in names[1:]:
        size = os.path.getsize(os.path.join(tmp, n))
        assert 1000 <= size < 1000 + len(rec(99))  # cut before the record that finds it full
    nums = read_all(cfg)
    assert nums == list(range(nums[0], 100))
    current = read_all(cfg, tail=0)  # no tail wanted: the rotated files are not even opened
    assert current == nums[-len(current):] and len(current) < len(nums)


def test_conmon_reopen_is_a_rotation(tmp: str) -> None:
    """What conmon's reopen does (a new empty file renamed over the path) becomes one
    dockerd rotation, compressed, with nothing lost; readers see the pending chunk too."""
    cfg = file_config(tmp, "c", "json-file", {"max-size": "1k", "max-file": "3", "compress": "true"})
    rotate.prepare(cfg)
    write(cfg.path, range(30))
    rotate.started(cfg)
    asked: dict = {}
    calls: list[int] = []
    follower = _Follower(cfg.path, open(cfg.path, "rb"), 0)  # noqa: SIM115
    seen = follower.read_new()

    def reopen() -> None:  # conmon ctr_logging.c reopen_k8s_file
        calls.append(1)
        tmpf = cfg.path + ".tmp"
        open(tmpf, "wb").close()
        os.rename(tmpf, cfg.path)

    rotate.check_running(cfg, reopen, asked, "c")
    assert calls == [1]
    write(cfg.path, range(30, 40))
    assert read_all(cfg) == list(range(40))  # the old inode is read through the .live link
    rotate.check_running(cfg, reopen, asked, "c")
    assert sorted(os.listdir(tmp)) == [".c-json.log.live", "c-json.log", "c-json.log.1.gz"]
    with open(os.path.join(tmp, "c-json.log.1.gz"), "rb") as f:
        assert rotate.gz_last_time(f) == k8sfile.parse_time(rec(29).split()[0].decode())
    with gzip.open(os.path.join(tmp, "c-json.log.1.gz")) as f:
        assert f.read().count(b"\n") == 30
    assert os.stat(cfg.path).st_mode & 0o777 == 0o640
    seen += follower.read_new()  # drains the old file, then the new one from its start
    follower.close()
    assert [int(r.split()[-1]) for r in seen] == list(range(40))
    assert read_all(cfg) == list(range(40))
    # since after the compressed file's last time: dockerd 20.10 skips it
    since = k8sfile.parse_time(rec(35).split()[0].decode())
    assert read_all(cfg, since=since) == list(range(30, 40))


def test_partial_lines_across_files() -> None:
    m = k8sfile.LineMerger()
    first = list(m.feed([b"2026-01-01T00:00:00.1+00:00 stdout P abc\n"]))
    assert first == []
    out = list(m.feed([b"2026-01-01T00:00:00.2+00:00 stdout F def\n"]))
    assert out == [k8sfile.LogLine("2026-01-01T00:00:00.1+00:00", "stdout", b"abcdef\n")]
    list(m.feed([b"2026-01-01T00:00:00.3+00:00 stderr P tail\n"]))
    assert list(m.flush()) == [k8sfile.LogLine("2026-01-01T00:00:00.3+00:00", "stderr", b"tail")]
