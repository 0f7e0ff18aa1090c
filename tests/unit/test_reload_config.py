"""The configuration as a reload reads it, validation with dockerd's texts, and the
shutdown's time limit (cmd/dockerd shutdownDaemon, daemon.ShutdownTimeout)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from types import SimpleNamespace
from typing import Any

import pytest

from berth.__main__ import _shutdown_containers, load_config, parse_args, reload_config
from berth.config import DOCKERD_KEYS, DaemonConfig, Runtime, config_file_keys, conflict_free_labels, validate
from berth.daemon.daemon import Daemon


def _args(tmp_path: Any, doc: object, *flags: str) -> Any:
    path = os.path.join(tmp_path, "daemon.json")
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return parse_args(["--config-file", path, *flags])


def test_reload_reads_the_file_alone(tmp_path: Any) -> None:
    args = _args(tmp_path, {"labels": ["a=1", "b=2", "a=1"], "debug": True}, "--max-concurrent-downloads", "6",
                 "--label", "x=y")
    # at start the flags count: labels from both ways is a conflict
    with pytest.raises(SystemExit, match=r"labels: \(from flag: \[x=y\], from file: \[a=1 b=2 a=1\]\)"):
        load_config(args)
    args = _args(tmp_path, {"labels": ["a=1", "b=2", "a=1"], "debug": True}, "--max-concurrent-downloads", "6")
    assert load_config(args).max_concurrent_downloads == 6
    cfg, keys = reload_config(args)
    assert keys == {"labels", "debug"}
    assert cfg.labels == ["a=1", "b=2"] and cfg.debug is True
    assert cfg.max_concurrent_downloads == 3  # the flag's value is not the file's


def test_reload_config_errors_as_dockerd(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "daemon.json")
    for doc, text in [
        ('{"debug": true,', f"unable to configure the Docker daemon with file {path}: "),
        ("[1]", f"unable to configure the Docker daemon with file {path}: json: cannot unmarshal array into Go "
                "value of type map[string]interface {}"),
        ('{"labels": ["k=v", "k=w"]}', "conflict labels for k=w and k=v"),
        ('{"labels": ["com.docker.x=1"]}', "file configuration validation failed: label com.docker.x=1 is not "
                                          "allowed: the namespaces com.docker.*, io.docker.*, and "
                                          "org.dockerproject.* are reserved for internal use"),
        ('{"default-runtime": "crun"}', None),  # a runtime Berth knows without configuration
        ('{"default-shm-size": "64M"}', None),
    ]:
        args = _args(tmp_path, doc)
        if text is None:
            reload_config(args)
            continue
        with pytest.raises(SystemExit) as e:
            reload_config(args)
        assert str(e.value).startswith(text), (doc, str(e.value))
    # a file named by --config-file that is not there is an error; the default one is not
    missing = parse_args(["--config-file", os.path.join(tmp_path, "none.json")])
    with pytest.raises(SystemExit, match="no such file or directory"):
        reload_config(missing)


def test_validate_and_labels() -> None:
    validate(DaemonConfig(), set())
    assert conflict_free_labels(["a=1", "nolabel", "b=x=y", "a=1"]) == ["a=1", "b=x=y"]
    with pytest.raises(ValueError, match="runtime name 'runc' is reserved"):
        validate(DaemonConfig(runtimes={"runc": Runtime(path="/bin/true")}), {"runtimes"})


def test_shutdown_timeout_as_dockerd() -> None:
    def ctr(stop: object) -> Any:
        return SimpleNamespace(Config=SimpleNamespace(StopTimeout=stop))

    d: Any = SimpleNamespace(config=DaemonConfig(), containers={})
    assert Daemon.shutdown_timeout(d) == 15
    d.containers = {"a": ctr(None), "b": ctr(30)}
    assert Daemon.shutdown_timeout(d) == 35  # the longest stop timeout, plus 5 s of grace
    d.containers["c"] = ctr(-1)
    assert Daemon.shutdown_timeout(d) == -1
    d.containers, d.config.shutdown_timeout = {}, -1
    assert Daemon.shutdown_timeout(d) == -1


def test_shutdown_gives_up_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    class Slow:
        def __init__(self, timeout: int, takes: float) -> None:
            self.timeout, self.takes, self.done = timeout, takes, False

        def shutdown_timeout(self) -> int:
            return self.timeout

        async def shutdown_lifecycle(self) -> None:
            await asyncio.sleep(self.takes)
            self.done = True

    async def main() -> tuple[bool, bool]:
        slow, quick = Slow(1, 30), Slow(1, 0.01)
        await _shutdown_containers(slow)
        await _shutdown_containers(quick)
        return slow.done, quick.done

    with caplog.at_level(logging.DEBUG, logger="berthd"):
        assert asyncio.run(main()) == (False, True)
    assert [r.getMessage() for r in caplog.records if r.name == "berthd"] == \
        ["Force shutdown daemon", "Clean shutdown succeeded"]


def test_add_runtime_flag_and_runtimes_in_the_file_conflict(tmp_path: Any) -> None:
    """--add-runtime is a named option: its key in daemon.json is `runtimes`."""
    args = _args(tmp_path, {"runtimes": {"a": {"path": "/bin/a"}}}, "--add-runtime", "b=/bin/b")
    with pytest.raises(SystemExit, match=r"runtimes: \(from flag: \[b\], from file: map\[a:map\[path:/bin/a\]\]\)"):
        load_config(args)
    cfg = load_config(_args(tmp_path, {}, "--add-runtime", "b=/bin/b"))
    assert cfg.runtimes["b"].path == "/bin/b"


def test_file_keys_dockerd_does_not_know_or_berth_does_not_implement(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "daemon.json")
    head = f"unable to configure the Docker daemon with file {path}: "
    for doc, text in [
        ({"foo": 1, "debug": True, "bar": 2},
         "the following directives don't match any configuration option: foo, bar"),  # dockerd's words
        ({"dns": ["1.1.1.1"], "mtu": 1400}, "the following directives are not supported by Berth: dns, mtu"),
    ]:
        for read in (load_config, reload_config):
            with pytest.raises(SystemExit) as e:
                read(_args(tmp_path, doc))
            assert str(e.value) == head + text
    # every key Berth reads is one dockerd knows, or Berth's own
    cfg, keys = reload_config(_args(tmp_path, {"debug": True, "berth-download-stall-timeout": 5}))
    assert cfg.berth_download_stall_timeout == 5 and keys == {"debug", "berth-download-stall-timeout"}
    assert all(k in DOCKERD_KEYS or k.startswith("berth-") for k in config_file_keys())
