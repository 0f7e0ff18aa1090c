"""The Dockerfile parser (moby/builder/dockerfile/parser/parser.go, line_parsers.go).

Physical lines become one Node per instruction: the `# escape=` directive, comment
lines, blank lines and escape-token line continuations are handled here, and each
instruction's rest is split the way its line parser does (JSON or shell form, name=value
pairs, whitespace-delimited words). Expansion of variables happens later, at dispatch,
as dockerd does it there.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_DIRECTIVE_ESCAPE = re.compile(r"^#[ \t]*escape[ \t]*=[ \t]*(.).*$")
_FLAG = re.compile(r"^--([a-zA-Z0-9-]+)(?:=(.*))?$")


class ParseError(ValueError):
    """A parser.Parse error; the router prefixes "failed to parse Dockerfile: "."""


@dataclass
class Node:
    value: str  # the instruction, lower-cased
    original: str  # the joined line as written
    args: list[str]
    flags: list[str] = field(default_factory=list)
    json: bool = False  # JSON (exec) form
    start_line: int = 0
    end_line: int = 0
    sub: Node | None = None  # ONBUILD's trigger


@dataclass
class Result:
    children: list[Node]
    escape: str = "\\"
    warnings: list[str] = field(default_factory=list)


def _escaped(rest: str, i: int) -> tuple[str, int]:
    """The escape token at `i` with the character it escapes (both kept in the word), and
    the index after them; an escape token ending the line is dropped."""
    if i + 1 == len(rest):
        return "", i + 1
    return rest[i:i + 2], i + 2


def parse_words(rest: str, escape: str) -> list[str]:
    """parseWords: split on whitespace outside quotes; quotes and escapes are kept."""
    words: list[str] = []
    word = ""
    in_word = False
    quote = ""
    blank_ok = False
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if not in_word and not quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == escape and quote != "'":  # nothing escapes inside '…'
                piece, i = _escaped(rest, i)
                word += piece
                continue
            if ch == quote:
                quote = ""
            word += ch
            i += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok, in_word = "", False, False
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            blank_ok = True
        if ch == escape:  # outside quotes the escaped character is kept, even a quote
            piece, i = _escaped(rest, i)
            word += piece
            continue
        word += ch
        i += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def _name_val(rest: str, key: str, escape: str) -> list[str]:
    """parseNameVal: `KEY name value` (old form) or `KEY a=b c="d e"`; [k, v, k, v…]."""
    words = parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = re.split(r"[\t\v\f\r ]+", rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise ParseError(f"{key} must have two arguments")
        return [parts[0], parts[1]]
    out: list[str] = []
    for w in words:
        if "=" not in w:
            raise ParseError(f'Syntax error - can\'t find = in "{w}". Must be of the form: name=value')
        k, _, v = w.partition("=")
        out += [k, v]
    return out


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    """parseMaybeJSON: a JSON array of strings, else the whole rest as one string."""
    rest = rest.strip()
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return value, True
    return ([rest] if rest else []), False


def _maybe_json_to_list(rest: str) -> tuple[list[str], bool]:
    """parseMaybeJSONToList: a JSON array, else whitespace-separated words."""
    args, is_json = _maybe_json(rest)
    if is_json:
        return args, True
    return rest.split(), False


def _split_flags(rest: str) -> tuple[list[str], str]:
    """extractBuilderFlags: leading `--name=value` words."""
    flags: list[str] = []
    while True:
        stripped = rest.lstrip()
        if not stripped.startswith("--"):
            return flags, stripped
        word, _, tail = stripped.partition(" ")
        if word == "--":
            return flags, tail.lstrip()
        flags.append(word)
        rest = tail


def node_from_line(line: str, escape: str, start: int, end: int) -> Node:
    """newNodeFromLine: the instruction word, its flags and its parsed arguments."""
    parts = line.strip().split(None, 1)
    cmd = parts[0].lower()
    rest = parts[1] if len(parts) > 1 else ""
    flags: list[str] = []
    if cmd in ("from", "copy", "add", "run", "healthcheck"):
        flags, rest = _split_flags(rest)
    node = Node(cmd, line.strip(), [], flags, False, start, end)
    if cmd in ("env", "label"):
        node.args = _name_val(rest, cmd.upper(), escape)
    elif cmd in ("from", "expose", "arg"):
        node.args = parse_words(rest, escape) if cmd == "arg" else rest.split()
    elif cmd in ("run", "cmd", "entrypoint", "shell"):
        node.args, node.json = _maybe_json(rest)
    elif cmd in ("add", "copy", "volume"):
        node.args, node.json = _maybe_json_to_list(rest)
    elif cmd == "healthcheck":
        typ, _, tail = rest.strip().partition(" ")
        node.args = [typ] if typ else []
        if tail.strip():
            more, node.json = _maybe_json(tail)
            node.args += more
    elif cmd == "onbuild":
        sub = rest.strip()
        if not sub:
            raise ParseError("ONBUILD requires at least one argument")
        word = sub.split(None, 1)[0].lower()
        if word == "onbuild":
            raise ParseError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if word in ("maintainer", "from"):
            raise ParseError(f"{word.upper()} isn't allowed as an ONBUILD trigger")
        node.sub = node_from_line(sub, escape, start, end)
        node.args = [sub]
    else:  # workdir, user, stopsignal, maintainer and anything unknown: one string
        node.args = [rest.strip()] if rest.strip() else []
    return node


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """trimContinuationCharacter: (line without the escape, whether the line ends)."""
    m = re.search(re.escape(escape) + r"[ \t]*$", line)
    if m:
        return line[: m.start()], False
    return line, True


def _is_comment(line: str) -> bool:
    return line.lstrip(" \t").startswith("#")


def parse(text: str) -> Result:
    """parser.Parse."""
    escape = "\\"
    escape_seen = False
    directives_done = False
    lines = text.split("\n")
    children: list[Node] = []
    warnings: list[str] = []
    i = 0
    while i < len(lines):
        raw = lines[i].rstrip("\r")
        i += 1
        start = i
        stripped = raw.lstrip(" \t")
        if not directives_done:
            m = _DIRECTIVE_ESCAPE.match(stripped.lower())
            if m:
                if escape_seen:
                    raise ParseError("only one escape parser directive can be used")
                escape_seen = True
                escape = stripped[m.start(1)]
                if escape not in ("`", "\\"):
                    raise ParseError(f"invalid ESCAPE '{escape}'. Must be ` or \\")
                continue
            directives_done = True
        if not stripped or _is_comment(stripped):
            continue
        line, done = _trim_continuation(stripped, escape)
        empty_continuation = False
        while not done and i < len(lines):
            nxt = lines[i].rstrip("\r")
            i += 1
            if _is_comment(nxt):
                continue
            if not nxt.strip():
                empty_continuation = True
                continue
            part, done = _trim_continuation(nxt, escape)
            line += part
        if empty_continuation:
            warnings.append(line)
        if not line.strip():
            continue
        children.append(node_from_line(line, escape, start, i))
    if not children:
        raise ParseError("file with no instructions")
    return Result(children, escape, warnings)
