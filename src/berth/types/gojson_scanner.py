"""Go's JSON scanner state machine, for exact syntax-error messages.

Follows go1.19 src/encoding/json/scanner.go (the state functions, `quoteChar`, the
`maxNestingDepth` of 10000) and `Decoder.readValue` in src/encoding/json/stream.go, which
decides where the first value of a request body ends and turns a premature end into
`EOF` or `unexpected EOF`.

This runs only when the fast decoder (the C `json` module) rejects a body, so it favours
being a literal port over speed; runs of ordinary string bytes and white space are skipped
in bulk, which is where nearly all bytes of a real body are.
"""
from __future__ import annotations

import json.decoder
import re
from collections.abc import Callable
from typing import Any

__all__ = ["parse_nested", "quote_char", "read_value"]

_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]  # the C scanner; not in json's stubs
_NONE = object()

# Stops of the bulk skip inside a string: the closing quote, an escape, a control byte.
_STRING_RUN = re.compile(rb'[^"\\\x00-\x1f]+')
_SPACE_RUN = re.compile(rb"[ \t\r\n]+")

_MAX_NESTING_DEPTH = 10000

# parseState values (scanner.go).
_OBJ_KEY, _OBJ_VALUE, _ARR_VALUE = 0, 1, 2

# The scanner's opcodes that matter to read_value (scanner.go).
_CONTINUE, _END_OBJECT, _END_ARRAY, _END, _ERROR = 0, 5, 8, 10, 11

_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_SPACE = frozenset(b" \t\r\n")

# (state name, expected byte, next state) for the letters of true/false/null.
_LITERALS = {
    "t": (ord("r"), "tr", "in literal true (expecting 'r')"),
    "tr": (ord("u"), "tru", "in literal true (expecting 'u')"),
    "tru": (ord("e"), None, "in literal true (expecting 'e')"),
    "f": (ord("a"), "fa", "in literal false (expecting 'a')"),
    "fa": (ord("l"), "fal", "in literal false (expecting 'l')"),
    "fal": (ord("s"), "fals", "in literal false (expecting 's')"),
    "fals": (ord("e"), None, "in literal false (expecting 'e')"),
    "n": (ord("u"), "nu", "in literal null (expecting 'u')"),
    "nu": (ord("l"), "nul", "in literal null (expecting 'l')"),
    "nul": (ord("l"), None, "in literal null (expecting 'l')"),
}

_GO_QUOTE_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 92: "\\\\"}


def quote_char(c: int) -> str:
    """Format byte `c` as scanner.go `quoteChar` does.

    Go converts the byte to the rune U+00XX and quotes it with strconv.Quote, so 0xEF
    (the first byte of a UTF-8 BOM) comes out as 'ï' and 0x80 as '\\u0080'.
    """
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c in _GO_QUOTE_ESCAPES:
        return "'" + _GO_QUOTE_ESCAPES[c] + "'"
    ch = chr(c)
    if ch.isprintable():  # same set as Go's strconv.IsPrint within U+0000..U+00FF
        return "'" + ch + "'"
    if c < 0x80:
        return f"'\\x{c:02x}'"
    return f"'\\u{c:04x}'"


class _SyntaxError(Exception):
    pass


class _Scanner:
    """One scanner.go `scanner`; `step` returns the opcode for byte `c`."""

    __slots__ = ("state", "stack", "end_top", "err")

    def __init__(self) -> None:
        self.state = "begin_value"
        self.stack: list[int] = []
        self.end_top = False
        self.err: str | None = None

    def error(self, c: int, context: str) -> int:
        self.state = "error"
        self.err = "invalid character " + quote_char(c) + " " + context
        return _ERROR

    def push(self, c: int, ps: int, op: int) -> int:
        self.stack.append(ps)
        if len(self.stack) <= _MAX_NESTING_DEPTH:
            return op
        return self.error(c, "exceeded max depth")

    def pop(self) -> None:
        self.stack.pop()
        if not self.stack:
            self.state = "end_top"
            self.end_top = True
        else:
            self.state = "end_value"

    def step(self, c: int) -> int:  # one branch per scanner.go state
        st = self.state
        if st == "in_string":
            if c == 0x22:
                self.state = "end_value"
            elif c == 0x5C:
                self.state = "esc"
            elif c < 0x20:
                return self.error(c, "in string literal")
            return _CONTINUE
        if st == "begin_value":
            return self._begin_value(c)
        if st == "end_value":
            return self._end_value(c)
        if st == "begin_value_or_empty":
            if c in _SPACE:
                return _CONTINUE
            if c == 0x5D:
                return self._end_value(c)
            return self._begin_value(c)
        if st in ("begin_string_or_empty", "begin_string"):
            if c in _SPACE:
                return _CONTINUE
            if c == 0x7D and st == "begin_string_or_empty":
                self.stack[-1] = _OBJ_VALUE
                return self._end_value(c)
            if c == 0x22:
                self.state = "in_string"
                return _CONTINUE
            return self.error(c, "looking for beginning of object key string")
        if st == "esc":
            if c in b'bfnrt\\/"':
                self.state = "in_string"
                return _CONTINUE
            if c == 0x75:
                self.state = "esc_u0"
                return _CONTINUE
            return self.error(c, "in string escape code")
        if st.startswith("esc_u"):
            if c in _HEX:
                n = int(st[5]) + 1
                self.state = "in_string" if n == 4 else f"esc_u{n}"
                return _CONTINUE
            return self.error(c, "in \\u hexadecimal character escape")
        if st == "neg":
            if c == 0x30:
                self.state = "0"
                return _CONTINUE
            if 0x31 <= c <= 0x39:
                self.state = "1"
                return _CONTINUE
            return self.error(c, "in numeric literal")
        if st == "1" or st == "0":
            if st == "1" and c in _DIGITS:
                return _CONTINUE
            if c == 0x2E:
                self.state = "dot"
                return _CONTINUE
            if c in (0x65, 0x45):
                self.state = "e"
                return _CONTINUE
            return self._end_value(c)
        if st == "dot":
            if c in _DIGITS:
                self.state = "dot0"
                return _CONTINUE
            return self.error(c, "after decimal point in numeric literal")
        if st == "dot0":
            if c in _DIGITS:
                return _CONTINUE
            if c in (0x65, 0x45):
                self.state = "e"
                return _CONTINUE
            return self._end_value(c)
        if st == "e" or st == "esign":
            if st == "e" and c in (0x2B, 0x2D):
                self.state = "esign"
                return _CONTINUE
            if c in _DIGITS:
                self.state = "e0"
                return _CONTINUE
            return self.error(c, "in exponent of numeric literal")
        if st == "e0":
            if c in _DIGITS:
                return _CONTINUE
            return self._end_value(c)
        if st == "end_top":
            if c not in _SPACE:
                # Complain about the non-space byte on the next call, as Go does.
                self.error(c, "after top-level value")
            return _END
        if st == "error":
            return _ERROR
        want, nxt, context = _LITERALS[st]
        if c != want:
            return self.error(c, context)
        self.state = nxt or "end_value"
        return _CONTINUE

    def _begin_value(self, c: int) -> int:
        if c in _SPACE:
            return _CONTINUE
        if c == 0x7B:
            self.state = "begin_string_or_empty"
            return self.push(c, _OBJ_KEY, _CONTINUE)
        if c == 0x5B:
            self.state = "begin_value_or_empty"
            return self.push(c, _ARR_VALUE, _CONTINUE)
        if c == 0x22:
            self.state = "in_string"
        elif c == 0x2D:
            self.state = "neg"
        elif c == 0x30:
            self.state = "0"
        elif 0x31 <= c <= 0x39:
            self.state = "1"
        elif c in (0x74, 0x66, 0x6E):
            self.state = chr(c)
        else:
            return self.error(c, "looking for beginning of value")
        return _CONTINUE

    def _end_value(self, c: int) -> int:
        if not self.stack:
            self.state = "end_top"
            self.end_top = True
            return self.step(c)
        if c in _SPACE:
            self.state = "end_value"
            return _CONTINUE
        ps = self.stack[-1]
        if ps == _OBJ_KEY:
            if c == 0x3A:
                self.stack[-1] = _OBJ_VALUE
                self.state = "begin_value"
                return _CONTINUE
            return self.error(c, "after object key")
        if ps == _OBJ_VALUE:
            if c == 0x2C:
                self.stack[-1] = _OBJ_KEY
                self.state = "begin_string"
                return _CONTINUE
            if c == 0x7D:
                self.pop()
                return _END_OBJECT
            return self.error(c, "after object key:value pair")
        if c == 0x2C:
            self.state = "begin_value"
            return _CONTINUE
        if c == 0x5D:
            self.pop()
            return _END_ARRAY
        return self.error(c, "after array element")


def read_value(data: bytes) -> tuple[int, str | None]:
    """Find the first JSON value in `data` as stream.go `Decoder.readValue` does.

    Returns `(end, None)` where `data[:end]` holds the value (leading white space
    included), or `(0, message)` with Go's error text: a syntax error, `EOF` when the
    body is empty or white space, `unexpected EOF` when it ends inside a value.
    """
    s = _Scanner()
    i, n = 0, len(data)
    while i < n:
        st = s.state
        if st == "in_string":
            m = _STRING_RUN.match(data, i)
            if m is not None:
                i = m.end()
                continue
        elif st in ("begin_value", "end_value", "end_top"):
            m = _SPACE_RUN.match(data, i)
            if m is not None:
                i = m.end()
                continue
        op = s.step(data[i])
        if op == _END:
            return i, None
        if op in (_END_OBJECT, _END_ARRAY):
            # scanEnd is delayed one byte; Go invents a space to avoid blocking on it.
            if not s.stack:
                return i + 1, None
        elif op == _ERROR:
            return 0, s.err
        i += 1
    # At EOF: a finished top-level number still needs one more byte to end.
    if s.step(0x20) == _END:
        return n, None
    if data.strip(b" \t\r\n"):
        return 0, "unexpected EOF"
    return 0, "EOF"


_TOKEN = re.compile(r'[ \t\r\n]*(?:([{}\[\],:])|(")|(-?[0-9][0-9.eE+-]*)|(true|false|null))')
_CONSTANTS = {"true": True, "false": False, "null": None}


def parse_nested(
    text: str,
    make_object: Callable[[list[tuple[str, Any]]], Any],
    parse_int: Callable[[str], Any],
    parse_float: Callable[[str], Any],
) -> Any:
    """Parse one JSON value that read_value accepted, without recursion.

    The C `json` module gives up (RecursionError) long before Go's depth limit of 10000;
    this loop is the fallback for such bodies. Objects are built by `make_object` from
    their (key, value) pairs, as with `object_pairs_hook`.
    """
    # Each frame is [container, pending key]; a container is a list (array) or pairs.
    stack: list[list[Any]] = []
    is_obj: list[bool] = []
    pos = 0
    while True:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected text at {pos}")
        pos = m.end()
        punct, quote, number, const = m.groups()
        value: Any = _NONE
        if punct in ("{", "["):
            stack.append([[], None])
            is_obj.append(punct == "{")
            continue
        if punct in ("}", "]"):
            items = stack.pop()[0]
            value = make_object(items) if is_obj.pop() else items
        elif punct == ":" or punct == ",":
            continue
        elif quote:
            value, pos = _scanstring(text, pos)
            if stack and is_obj[-1] and stack[-1][1] is None:
                stack[-1][1] = value  # an object key
                continue
        elif number is not None:
            value = parse_float(number) if any(c in number for c in ".eE") else parse_int(number)
        else:
            value = _CONSTANTS[const]
        if not stack:
            return value
        frame = stack[-1]
        if is_obj[-1]:
            frame[0].append((frame[1], value))
            frame[1] = None
        else:
            frame[0].append(value)
