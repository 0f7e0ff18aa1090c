"""berth.types.timestamp: GetTimestamp/ParseTimestamps (moby/api/types/time/timestamp.go).

Error texts were checked against the docker CLI (same Go code) and the reference
dockerd 20.10 (`GET /events?since=…`).
"""
from __future__ import annotations

import datetime as dt

import pytest

from berth import errdefs
from berth.types.timestamp import get_timestamp, parse_duration, parse_int, parse_timestamps, strconv_quote

UTC_PLUS_2 = dt.timezone(dt.timedelta(hours=2))
NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC_PLUS_2)  # 1714557600 = 10:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10m", "1714557000"),
        ("1h30m", "1714552200"),
        ("1.5h", "1714552200"),
        ("-1h", "1714561200"),
        ("0", "0"),  # "0" is not a duration: it is a Unix timestamp
        ("1.5", "1.5"),
        ("2006", "2006"),
        ("2024-05-01T10:00:00Z", "1714557600.000000000"),
        ("2024-05-01T10:00:00.5+01:00", "1714554000.500000000"),
        ("2024-05-01T10:00:00.123456789123Z", "1714557600.123456789"),
        # No zone: read in `now`'s offset (+02:00).
        ("2024-05-01", "1714514400.000000000"),
        ("2024-05-01T10", "1714550400.000000000"),
        ("2024-05-01T10:30", "1714552200.000000000"),
        ("2024-05-01T10:00:00", "1714550400.000000000"),
        ("2024-05-01Z", "1714521600.000000000"),
    ],
)
def test_get_timestamp(value: str, expected: str) -> None:
    assert get_timestamp(value, NOW) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", 'failed to parse value as time or duration: "abc"'),
        ("2024-13-01", 'parsing time "2024-13-01": month out of range'),
        ("2024-02-30", 'parsing time "2024-02-30": day out of range'),
        ("2024-05-01T25:00:00", 'parsing time "2024-05-01T25:00:00": hour out of range'),
        ("x-y", 'parsing time "x-y" as "2006-01-02": cannot parse "x-y" as "2006"'),
        ("2024-05-0", 'parsing time "2024-05-0" as "2006-01-02": cannot parse "0" as "02"'),
        (
            "2024-05-01T10:00:00+0100",
            'parsing time "2024-05-01T10:00:00+0100" as "2006-01-02T15:04Z07:00": '
            'cannot parse ":00+0100" as "Z07:00"',
        ),
        ("2024-05-01T10:00:00.5x", 'parsing time "2024-05-01T10:00:00.5x": extra text: "x"'),
        ("é-", 'parsing time "\\xc3\\xa9-" as "2006-01-02": cannot parse "\\xc3\\xa9-" as "2006"'),
    ],
)
def test_get_timestamp_errors(value: str, message: str) -> None:
    with pytest.raises(errdefs.Untyped) as exc:
        get_timestamp(value, NOW)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", (-1, 0)),
        ("1.5", (1, 500000000)),
        ("1700000000.000000001", (1700000000, 1)),
        ("1.0000000001", (1, 0)),  # more than nine digits: scaled through a float64
        ("5.-1", (5, -10000000)),
        ("+5", (5, 0)),
        ("-5", (-5, 0)),
    ],
)
def test_parse_timestamps(value: str, expected: tuple[int, int]) -> None:
    assert parse_timestamps(value, -1) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
        ("1.5x", 'strconv.ParseInt: parsing "5x": invalid syntax'),
        ("1.", 'strconv.ParseInt: parsing "": invalid syntax'),
        (" 1", 'strconv.ParseInt: parsing " 1": invalid syntax'),
        ("1e5", 'strconv.ParseInt: parsing "1e5": invalid syntax'),
        ("1_0", 'strconv.ParseInt: parsing "1_0": invalid syntax'),
        ("99999999999999999999", 'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
    ],
)
def test_parse_timestamps_errors(value: str, message: str) -> None:
    with pytest.raises(errdefs.Untyped) as exc:
        parse_timestamps(value, 0)
    assert str(exc.value) == message


def test_parse_duration() -> None:
    assert parse_duration("1h2m3s") == 3723 * 10**9
    assert parse_duration("1.5s") == 1_500_000_000
    assert parse_duration("300ms") == 300_000_000
    assert parse_duration("2us") == parse_duration("2µs") == 2000
    assert parse_duration("-0") == 0
    for bad, msg in [
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        (".s", 'time: invalid duration ".s"'),
    ]:
        with pytest.raises(ValueError) as exc:
            parse_duration(bad)
        assert str(exc.value) == msg


def test_go_quoting() -> None:
    assert strconv_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert strconv_quote("é\n\x01") == '"é\\n\\x01"'
    assert parse_int("-9223372036854775808") == -(1 << 63)
