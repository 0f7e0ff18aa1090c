"""Go's path.Match, used by the `reference` image filter (reference.FamiliarMatch).

`*` matches any run of non-`/` characters, `?` one non-`/` character, `[...]` a class
(`^` negates, `a-z` ranges, `\\` escapes). A malformed pattern raises ReferenceError
with Go's `syntax error in pattern` (path.ErrBadPattern).
"""
from __future__ import annotations

import re
from functools import lru_cache

from .referror import ReferenceError

ERR_BAD_PATTERN = "syntax error in pattern"


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise ReferenceError(ERR_BAD_PATTERN)
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            parts = []
            first = True
            while True:
                if i >= n:
                    raise ReferenceError(ERR_BAD_PATTERN)
                if pattern[i] == "]" and not first:
                    break
                first = False
                lo, i = _class_char(pattern, i)
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                    if hi < lo:
                        raise ReferenceError(ERR_BAD_PATTERN)
                    parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
                else:
                    parts.append(re.escape(lo))
            if not parts:
                raise ReferenceError(ERR_BAD_PATTERN)
            out.append("[" + ("^/" if negate else "") + "".join(parts) + "]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise ReferenceError(ERR_BAD_PATTERN)
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise ReferenceError(ERR_BAD_PATTERN)
    return pattern[i], i + 1


def match(pattern: str, name: str) -> bool:
    return _compile(pattern).fullmatch(name) is not None
