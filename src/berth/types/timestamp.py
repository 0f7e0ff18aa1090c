"""`since`/`until` timestamps (moby/api/types/time/timestamp.go, v20.10).

`get_timestamp` turns what a user typed (`10m`, `2024-05-01T10:00:00Z`,
`1700000000.5`) into the `"%d.%09d"` Unix form the API carries;
`parse_timestamps` reads that form back into seconds and nanoseconds.

Both go through Go library functions whose error texts reach clients
(`strconv.ParseInt: parsing "x": invalid syntax`, `parsing time "…" as "…":
cannot parse "…" as "…"`), so the small parts of Go's strconv and time packages
they use are reproduced here: `parse_int` (strconv.ParseInt, base 10),
`parse_duration` (time.ParseDuration) and `_go_time_parse` (time.Parse for the
layouts GetTimestamp picks). All errors raised are `errdefs.Untyped`: dockerd
returns them unclassified, so the API answers 500.
"""
from __future__ import annotations

import datetime as _dt
import math
import unicodedata

from .. import errdefs

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


# --- Go quoting --------------------------------------------------------------------


def _is_print(ch: str) -> bool:
    """Go's unicode.IsPrint, closely enough: letters, marks, numbers, punctuation,
    symbols and the ASCII space."""
    if ch == " ":
        return True
    return unicodedata.category(ch)[0] in "LMNPS"


def strconv_quote(s: str) -> str:
    """Go's strconv.Quote (`%q`): double quotes, Go escapes, printable Unicode kept."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0xDC80 <= o <= 0xDCFF:  # a surrogate-escaped invalid byte
            out.append(f"\\x{o - 0xDC00:02x}")
        elif _is_print(ch):
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _time_quote(s: str) -> str:
    """The time package's own quote(): non-ASCII and control bytes as `\\xNN`."""
    out = ['"']
    for ch in s:
        if ord(ch) < 0x20 or ord(ch) >= 0x80:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape"))
        else:
            if ch in '"\\':
                out.append("\\")
            out.append(ch)
    out.append('"')
    return "".join(out)


# --- strconv.ParseInt ----------------------------------------------------------------


def parse_int(s: str) -> int:
    """strconv.ParseInt(s, 10, 64): optional sign, ASCII digits only, int64 range."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or not all("0" <= c <= "9" for c in body):
        raise errdefs.Untyped(f"strconv.ParseInt: parsing {strconv_quote(s)}: invalid syntax")
    n = int(s)
    if not _INT64_MIN <= n <= _INT64_MAX:
        raise errdefs.Untyped(f"strconv.ParseInt: parsing {strconv_quote(s)}: value out of range")
    return n


# --- time.ParseDuration --------------------------------------------------------------

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # U+00B5 micro sign
    "\u03bcs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def parse_duration(s: str) -> int:
    """time.ParseDuration: `[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`, in nanoseconds.

    Raises ValueError with Go's message; callers here only need success or not.
    """
    orig = s
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise ValueError("time: invalid duration " + _time_quote(orig))
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise ValueError("time: invalid duration " + _time_quote(orig))
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        pre = i > 0
        v = int(s[:i]) if pre else 0
        if v > 1 << 63:
            raise ValueError("time: invalid duration " + _time_quote(orig))
        s = s[i:]
        f, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            j = 0
            overflow = False
            while j < len(s) and "0" <= s[j] <= "9":
                # leadingFraction stops scaling once the value would overflow.
                if not overflow:
                    if f > ((1 << 63) - 1) // 10:
                        overflow = True
                    else:
                        f = f * 10 + int(s[j])
                        scale *= 10
                j += 1
            post = j > 0
            s = s[j:]
        if not pre and not post:
            raise ValueError("time: invalid duration " + _time_quote(orig))
        k = 0
        while k < len(s) and not (s[k] == "." or "0" <= s[k] <= "9"):
            k += 1
        if k == 0:
            raise ValueError("time: missing unit in duration " + _time_quote(orig))
        unit_name, s = s[:k], s[k:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError("time: unknown unit " + _time_quote(unit_name) + " in duration " + _time_quote(orig))
        if v > (1 << 63) // unit:
            raise ValueError("time: invalid duration " + _time_quote(orig))
        v *= unit
        if f > 0:
            v += int(float(f) * (float(unit) / scale))
            if v > 1 << 63:
                raise ValueError("time: invalid duration " + _time_quote(orig))
        total += v
        if total > 1 << 63:
            raise ValueError("time: invalid duration " + _time_quote(orig))
    if neg:
        return -total
    if total > _INT64_MAX:
        raise ValueError("time: invalid duration " + _time_quote(orig))
    return total


# --- time.Parse, for GetTimestamp's layouts --------------------------------------------

_RFC3339_NANO_LOCAL = "2006-01-02T15:04:05.999999999"
_RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
_RFC3339_LOCAL = "2006-01-02T15:04:05"
_RFC3339 = "2006-01-02T15:04:05Z07:00"
_DATE_WITH_ZONE = "2006-01-02Z07:00"
_DATE_LOCAL = "2006-01-02"

# The layout elements these layouts use (time/format.go nextStdChunk), longest first.
_STD_CHUNKS = ("2006", "Z07:00", ".999999999", "01", "02", "15", "04", "05")


def _next_std_chunk(layout: str) -> tuple[str, str, str]:
    for i in range(len(layout)):
        for chunk in _STD_CHUNKS:
            if layout.startswith(chunk, i):
                return layout[:i], chunk, layout[i + len(chunk):]
    return layout, "", ""


def _is_digit(s: str, i: int) -> bool:
    return i < len(s) and "0" <= s[i] <= "9"


def _getnum(s: str, fixed: bool) -> tuple[int, str]:
    if not _is_digit(s, 0):
        raise ValueError
    if not _is_digit(s, 1):
        if fixed:
            raise ValueError
        return int(s[0]), s[1:]
    return int(s[:2]), s[2:]


class _ParseError(Exception):
    """time.ParseError; `str()` is Go's Error()."""

    def __init__(self, layout: str, value: str, layout_elem: str, value_elem: str, message: str) -> None:
        if message:
            text = "parsing time " + _time_quote(value) + message
        else:
            text = (
                "parsing time " + _time_quote(value) + " as " + _time_quote(layout) + ": cannot parse "
                + _time_quote(value_elem) + " as " + _time_quote(layout_elem)
            )
        super().__init__(text)


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (any year, incl. 0)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _go_time_parse(layout: str, value: str, local_offset: int) -> int:
    """time.Parse / time.ParseInLocation(FixedZone) for `layout`: Unix nanoseconds.

    `local_offset` (seconds east of UTC) applies when the value carries no zone.
    Follows Go 1.19's generic parser: range errors for month/hour/minute/second as
    they are read, the day checked against the month at the end.
    """
    alayout, avalue = layout, value
    year, month, day, hour, minute, sec, nsec = 0, -1, -1, 0, 0, 0, 0
    zone: int | None = None
    while True:
        prefix, std, suffix = _next_std_chunk(layout)
        # skip(value, prefix): the literal text must match exactly.
        if not value.startswith(prefix):
            i = 0
            while i < len(prefix) and i < len(value) and value[i] == prefix[i]:
                i += 1
            raise _ParseError(alayout, avalue, prefix, value[i:], "")
        value = value[len(prefix):]
        if std == "":
            if value:
                raise _ParseError(alayout, avalue, "", value, ": extra text: " + _time_quote(value))
            break
        layout = suffix
        hold = value
        range_err = ""
        try:
            if std == "2006":
                if len(value) < 4 or not _is_digit(value, 0):
                    raise ValueError
                p, value = value[:4], value[4:]
                if not all("0" <= c <= "9" for c in p):
                    raise ValueError
                year = int(p)
            elif std == "01":
                month, value = _getnum(value, True)
                if month <= 0 or month > 12:
                    range_err = "month"
            elif std == "02":
                day, value = _getnum(value, True)
            elif std == "15":
                hour, value = _getnum(value, False)
                if hour >= 24:
                    range_err = "hour"
            elif std == "04":
                minute, value = _getnum(value, True)
                if minute >= 60:
                    range_err = "minute"
            elif std == "05":
                sec, value = _getnum(value, True)
                if sec >= 60:
                    range_err = "second"
                elif len(value) >= 2 and value[0] in ".," and _is_digit(value, 1):
                    _, nxt, _ = _next_std_chunk(layout)
                    if nxt != ".999999999":  # a fraction the layout does not have
                        n = 2
                        while _is_digit(value, n):
                            n += 1
                        nsec = _parse_nanoseconds(value, n)
                        value = value[n:]
            elif std == "Z07:00":
                if value[:1] == "Z":
                    value = value[1:]
                    zone = 0
                else:
                    if len(value) < 6 or value[3] != ":":
                        raise ValueError
                    sign, hh, mm, value = value[0], value[1:3], value[4:6], value[6:]
                    hr, _ = _getnum(hh, True)
                    mi, _ = _getnum(mm, True)
                    off = (hr * 60 + mi) * 60
                    if sign == "-":
                        off = -off
                    elif sign != "+":
                        raise ValueError
                    zone = off
            elif std == ".999999999" and len(value) >= 2 and value[0] in ".," and _is_digit(value, 1):
                i = 0
                while _is_digit(value, i + 1):
                    i += 1
                nsec = _parse_nanoseconds(value, 1 + i)
                value = value[1 + i:]
        except ValueError:
            raise _ParseError(alayout, avalue, std, hold, "") from None
        if range_err:
            raise _ParseError(alayout, avalue, std, value, ": " + range_err + " out of range")
    if month < 0:
        month = 1
    if day < 0:
        day = 1
    if day < 1 or day > _days_in(month, year):
        raise _ParseError(alayout, avalue, "", value, ": day out of range")
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec
    secs -= local_offset if zone is None else zone
    return secs * 1_000_000_000 + nsec


def _parse_nanoseconds(value: str, nbytes: int) -> int:
    if nbytes > 10:
        value, nbytes = value[:10], 10
    ns = int(value[1:nbytes])
    return ns * 10 ** (10 - nbytes)


# --- GetTimestamp / ParseTimestamps --------------------------------------------------


def get_timestamp(value: str, now: _dt.datetime | None = None) -> str:
    """GetTimestamp: a duration (relative to `now`), an RFC 3339-like time or a Unix
    timestamp, returned as a Unix timestamp string.

    Durations give whole seconds (`reference.Add(-d).Unix()`); times give
    `"%d.%09d"`; a value that already is a Unix timestamp comes back unchanged.
    Values without a zone are read in `now`'s UTC offset (Go: FixedZone of
    reference.Zone()). Errors: Go's time.Parse error when the value has a `-`,
    else `failed to parse value as time or duration: "…"`.
    """
    if now is None:
        now = _dt.datetime.now().astimezone()
    if now.tzinfo is None:
        now = now.astimezone()
    now_ns = _unix_nanos(now)
    if value != "0":
        try:
            d = parse_duration(value)
        except ValueError:
            pass
        else:
            return str((now_ns - d) // 1_000_000_000)

    parse_in_location = not any(c in value for c in "zZ+") and value.count("-") != 3
    if "." in value:
        layout = _RFC3339_NANO_LOCAL if parse_in_location else _RFC3339_NANO
    elif "T" in value:
        tcolons = value.count(":")
        # A +hh:mm / -hh:mm zone adds a colon that is not part of the time.
        if not parse_in_location and not any(c in value for c in "zZ") and tcolons > 0:
            tcolons -= 1
        if parse_in_location:
            layout = ("2006-01-02T15", "2006-01-02T15:04")[tcolons] if tcolons < 2 else _RFC3339_LOCAL
        else:
            layout = ("2006-01-02T15Z07:00", "2006-01-02T15:04Z07:00")[tcolons] if tcolons < 2 else _RFC3339
    elif parse_in_location:
        layout = _DATE_LOCAL
    else:
        layout = _DATE_WITH_ZONE

    utc_offset = now.utcoffset()
    offset = int(utc_offset.total_seconds()) if utc_offset is not None else 0
    try:
        t = _go_time_parse(layout, value, offset if parse_in_location else 0)
    except _ParseError as err:
        if "-" in value:  # an RFC 3339-like value the parser refused: its error stands
            raise errdefs.Untyped(str(err)) from None
        try:
            _parse_timestamp(value)
        except errdefs.DockerError:
            raise errdefs.Untyped(f"failed to parse value as time or duration: {strconv_quote(value)}") from None
        return value  # already a Unix timestamp
    sec, nsec = divmod(t, 1_000_000_000)
    return f"{sec}.{nsec:09d}"


def _unix_nanos(t: _dt.datetime) -> int:
    delta = t - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def parse_timestamps(value: str, default_seconds: int) -> tuple[int, int]:
    """ParseTimestamps: `(seconds, nanoseconds)` of `"%d.%09d"`; `(default, 0)` for "".

    A fraction longer than nine digits is scaled down through a float64, as Go does
    (`1.0000000001` gives 0 ns). Errors are strconv.ParseInt's, naming the part that
    failed (`parsing "5x"` for `1.5x`).
    """
    if value == "":
        return default_seconds, 0
    return _parse_timestamp(value)


def _parse_timestamp(value: str) -> tuple[int, int]:
    s, dot, n = value.partition(".")
    sec = parse_int(s)
    if not dot:
        return sec, 0
    nsec = parse_int(n)
    nsec = int(float(nsec) * math.pow(10.0, float(9 - len(n))))
    return sec, nsec


def format_timestamp(ns: int) -> str:
    """jsonmessage.RFC3339NanoFixed in UTC: always nine fractional digits and `Z`."""
    sec, frac = divmod(ns, 1_000_000_000)
    return _dt.datetime.fromtimestamp(sec, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"
