"""containerd platform specifiers and the per-driver log option checks, with the
messages dockerd 20.10 gives (checked against it)."""
from __future__ import annotations

import pytest

from berth import errdefs
from berth.logger.validate import validate_driver_opts
from berth.pkg import platforms
from berth.pkg.platforms import Platform


@pytest.mark.parametrize(
    "spec, want",
    [
        ("linux", Platform("linux", platforms.HOST_ARCH)),
        ("Linux/x86_64", Platform("linux", "amd64")),
        ("linux/aarch64/8", Platform("linux", "arm64", "v8")),
        ("armhf", Platform("linux", "arm", "")),
        ("MacOS/ARM64", Platform("darwin", "arm64")),
    ],
)
def test_parse(spec: str, want: Platform) -> None:
    assert platforms.parse(spec) == want


@pytest.mark.parametrize(
    "spec, message",
    [
        ("foo", '"foo": unknown operating system or architecture: invalid argument'),
        ("linux/amd64/v8/x", '"linux/amd64/v8/x": cannot parse platform specifier: invalid argument'),
        ("linux/*", '"linux/*": wildcards not yet supported: invalid argument'),
        ("linux//amd64", '"" is an invalid component of "linux//amd64": platform specifier component must match '
                         '"^[A-Za-z0-9_-]+$": invalid argument'),
    ],
)
def test_parse_errors(spec: str, message: str) -> None:
    with pytest.raises(errdefs.InvalidParameter) as e:
        platforms.parse(spec)
    assert str(e.value) == message


def test_match_with_fallback() -> None:
    assert platforms.only_with_fallback_match(Platform("linux", "amd64", "v3"), Platform("linux", "amd64"))
    assert platforms.only_with_fallback_match(Platform("linux", "arm", "v7"), Platform("linux", "arm", "v6"))
    assert not platforms.only_with_fallback_match(Platform("linux", "arm64"), Platform("linux", "amd64"))
    assert platforms.format_platform(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"


@pytest.mark.parametrize(
    "driver, opts, message",
    [
        ("bogus", {}, 'error looking up logging plugin bogus: plugin "bogus" not found'),
        ("local", {"tag": "x"}, "unknown log opt 'tag' for log driver local"),
        ("syslog", {"bogus": "1"}, "unknown log opt 'bogus' for syslog log driver"),
        ("gelf", {"bogus": "1"}, "gelf-address is a required parameter"),
        ("gelf", {"gelf-address": "udp://h:1", "bogus": "1"}, 'unknown log opt "bogus" for gelf log driver'),
        ("gcplogs", {"tag": "x"}, '"tag" is not a valid option for the gcplogs driver'),
        ("awslogs", {"awslogs-region": "r"}, "must specify a value for log opt 'awslogs-group'"),
        ("logentries", {}, "Missing logentries token"),
    ],
)
def test_log_driver_errors(driver: str, opts: dict[str, str], message: str) -> None:
    with pytest.raises(errdefs.InvalidParameter) as e:
        validate_driver_opts(driver, opts)
    assert str(e.value) == message


def test_log_driver_accepts() -> None:
    validate_driver_opts("json-file", {"max-size": "abc", "labels": "a"})  # values wait for start
    validate_driver_opts("syslog", {"syslog-address": "tcp://127.0.0.1", "syslog-facility": "23"})
    validate_driver_opts("fluentd", {"fluentd-address": "unix:///x", "fluentd-async": "true"})
    # dockerd's own checks pass, then Berth refuses what it would not ship
    for name, opts in (("splunk", {}), ("logentries", {"logentries-token": "t", "anything": "1"}),
                       ("awslogs", {"awslogs-group": "g"}), ("gcplogs", {})):
        with pytest.raises(errdefs.InvalidParameter, match=f'logging driver "{name}" is not supported by Berth'):
            validate_driver_opts(name, opts)
