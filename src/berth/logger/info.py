"""Log attributes for `docker logs --details` (moby v20.10.24 daemon/logger/loginfo.go
Info.ExtraAttributes, daemon/logger/loggerutils/log_tag.go ParseLogTag,
api/server/httputils/write_log_stream.go attrsByteSlice).

json-file stores `attrs` with every line: the labels named by `labels`/`labels-regex`, the
environment variables named by `env`/`env-regex`, and `tag` when the user gave one. Berth's
log lines come from conmon and carry none, so the attributes are worked out from the
container's config when the log is read. They only differ from dockerd's for lines written
before a rename when the tag uses the name.

`tag` is a Go text/template over logger.Info. Berth evaluates the forms tags use: fields
and methods (`{{.Name}}`, `{{.ID}}`, `{{.ImageName}}`, ...) and the functions of moby's
templates package that take a string (lower, upper, title, truncate, pad, json).
"""
from __future__ import annotations

import json
import re
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import errdefs


@dataclass
class Info:
    """logger.Info: what a driver knows about its container."""

    Config: dict[str, str]
    ContainerID: str
    ContainerName: str  # with the leading "/"
    ContainerEntrypoint: str = ""
    ContainerArgs: list[str] = field(default_factory=list)
    ContainerImageID: str = ""  # "sha256:..."
    ContainerImageName: str = ""
    ContainerEnv: list[str] = field(default_factory=list)
    ContainerLabels: dict[str, str] = field(default_factory=dict)
    LogPath: str = ""
    DaemonName: str = "docker"
    ContainerCreated: str = ""  # as Go's JSON writes the time (gelf's _created)


def _go_regexp(expr: str) -> re.Pattern[str]:
    """regexp.Compile; Python's syntax is close enough for label/env names, and the
    common mistake (an unclosed group) gets Go's message."""
    try:
        return re.compile(expr)
    except re.error as e:
        if "missing )" in str(e):
            raise errdefs.Untyped(f"error parsing regexp: missing closing ): `{expr}`") from None
        if "unbalanced parenthesis" in str(e):
            raise errdefs.Untyped(f"error parsing regexp: unexpected ): `{expr}`") from None
        raise errdefs.Untyped(f"error parsing regexp: {e}: `{expr}`") from None


def extra_attributes(info: Info) -> dict[str, str]:
    """Info.ExtraAttributes(nil): labels, labels-regex, then env and env-regex (a later
    one wins for the same key)."""
    extra: dict[str, str] = {}
    cfg = info.Config
    env: dict[str, str] = {}
    for kv in info.ContainerEnv:
        k, sep, v = kv.partition("=")
        if sep:
            env[k] = v
    for source, names_opt, regex_opt in ((info.ContainerLabels, "labels", "labels-regex"), (env, "env", "env-regex")):
        if cfg.get(names_opt):
            for key in cfg[names_opt].split(","):
                if key in source:
                    extra[key] = source[key]
        if cfg.get(regex_opt):
            rx = _go_regexp(cfg[regex_opt])
            for key, value in source.items():
                if rx.search(key):
                    extra[key] = value
    return extra


# -- the tag template ------------------------------------------------------------------

def _fields(info: Info) -> dict[str, Callable[[], str]]:
    return {
        "ID": lambda: info.ContainerID[:12],
        "FullID": lambda: info.ContainerID,
        "Name": lambda: info.ContainerName.lstrip("/"),
        "ImageID": lambda: info.ContainerImageID[:12],
        "ImageFullID": lambda: info.ContainerImageID,
        "ImageName": lambda: info.ContainerImageName,
        "DaemonName": lambda: info.DaemonName,
        "Command": lambda: " ".join([info.ContainerEntrypoint, *info.ContainerArgs]),
        "Hostname": socket.gethostname,
        "ContainerID": lambda: info.ContainerID,
        "ContainerName": lambda: info.ContainerName,
        "ContainerEntrypoint": lambda: info.ContainerEntrypoint,
        "ContainerImageID": lambda: info.ContainerImageID,
        "ContainerImageName": lambda: info.ContainerImageName,
        "LogPath": lambda: info.LogPath,
    }


def _pad(s: str, left: int, right: int) -> str:
    return " " * left + s + " " * right


_FUNCS: dict[str, Callable[..., str]] = {
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "title": lambda s: s.title(),
    "truncate": lambda s, n: s[: int(n)],
    "pad": lambda s, a, b: _pad(s, int(a), int(b)),
    "json": lambda s: json.dumps(s),
}
_TOKEN = re.compile(r'\s*(\.[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*"|-?[0-9]+|[A-Za-z_][A-Za-z0-9_]*)')


def _tokens(text: str) -> list[tuple[str, int]] | None:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            return None
        out.append((m.group(1), m.start(1)))
        pos = m.end()
    return out


def _eval(tokens: list[tuple[str, int]], base: int, fields: dict[str, Callable[[], str]]) -> str:
    def value(tok: str, at: int) -> str:
        if tok.startswith("."):
            name = tok[1:]
            if name not in fields:
                raise errdefs.Untyped(f'template: log-tag:1:{base + at}: executing "log-tag" at <{tok}>: '
                                      f"can't evaluate field {name} in type *logger.Info")
            return fields[name]()
        if tok.startswith('"'):
            return json.loads(tok)
        return tok

    head, at = tokens[0]
    if head in _FUNCS:
        args = [value(t, a) for t, a in tokens[1:]]
        try:
            return _FUNCS[head](*args)
        except (TypeError, ValueError):
            raise errdefs.Untyped(f'template: log-tag:1:{base + at}: executing "log-tag" at <{head}>: '
                                  f"wrong number of args for {head}") from None
    if not head.startswith((".", '"')) and not head.lstrip("-").isdigit():
        raise errdefs.Untyped(f'template: log-tag:1: function "{head}" not defined')
    if len(tokens) > 1:
        raise errdefs.Untyped(f'template: log-tag:1:{base + at}: executing "log-tag" at <{head}>: '
                              f"can't give argument to non-function {head}")
    return value(head, at)


def parse_log_tag(info: Info, default_template: str = "") -> str:
    """ParseLogTag: `tag` (or the default) executed against Info."""
    template = info.Config.get("tag", "") or default_template
    fields = _fields(info)
    out: list[str] = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            out.append(template[pos:])
            break
        out.append(template[pos:start])
        end = template.find("}}", start + 2)
        if end < 0:
            line = template.count("\n", 0, start) + 1
            raise errdefs.Untyped(f"template: log-tag:{line}: unclosed action")
        body = template[start + 2:end]
        inner = body
        if inner.startswith("- "):
            inner = inner[1:]
            out[-1] = out[-1].rstrip()
        trim_right = inner.endswith(" -")
        if trim_right:
            inner = inner[:-1]
        if not inner.strip().startswith("/*"):
            toks = _tokens(inner)
            if not toks:
                raise errdefs.Untyped("template: log-tag:1: missing value for command" if toks == []
                                      else f"template: log-tag:1: unexpected {inner.strip()!r} in command")
            out.append(_eval(toks, start + 2 + (len(body) - len(inner) if body.startswith("- ") else 0), fields))
        pos = end + 2
        if trim_right:
            while pos < len(template) and template[pos].isspace():
                pos += 1
    return "".join(out)


def json_file_attrs(info: Info) -> dict[str, str]:
    """What jsonfilelog.New stores with every line: the extra attributes and `tag` if the
    user set one (json-file has no default tag)."""
    attrs = extra_attributes(info)
    tag = parse_log_tag(info, "")
    if tag:
        attrs["tag"] = tag
    return attrs


def details_prefix(attrs: dict[str, str]) -> bytes:
    """attrsByteSlice: `k=v` pairs sorted by key, query-escaped, comma-separated."""
    q = urllib.parse.quote_plus
    return ",".join(f"{q(k)}={q(v)}" for k, v in sorted(attrs.items())).encode()


__all__ = ["Info", "details_prefix", "extra_attributes", "json_file_attrs", "parse_log_tag"]
