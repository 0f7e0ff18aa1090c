"""Nodes to build stages (moby/builder/dockerfile/instructions/parse.go).

Each node is checked as ParseInstruction checks it (argument counts, known flags, the
stage name) and errors carry dockerd's "dockerfile parse error line N: " prefix. The
commands stay close to the nodes; their arguments are expanded at dispatch time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .parser import Node

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_\.]*$")
_ALLOWED_FLAGS = {
    "from": {"platform"},
    "copy": {"from", "chown"},
    "add": {"chown"},
    "run": set(),
    "healthcheck": {"interval", "timeout", "start-period", "retries"},
}
_EXACTLY_ONE = ("workdir", "user", "stopsignal", "maintainer")
KNOWN = {"from", "run", "cmd", "entrypoint", "env", "label", "expose", "add", "copy", "workdir", "user",
         "volume", "stopsignal", "healthcheck", "shell", "onbuild", "maintainer", "arg"}


class InstructionError(ValueError):
    """A parse error of one instruction; the message already has its line."""


@dataclass
class Command:
    name: str  # lower case
    original: str
    args: list[str]
    flags: dict[str, str]
    json: bool
    line: int
    sub: Node | None = None


@dataclass
class Stage:
    base: str
    name: str
    original: str
    platform: str = ""
    commands: list[Command] = field(default_factory=list)


def _err(node: Node, msg: str) -> InstructionError:
    return InstructionError(f"dockerfile parse error line {node.start_line}: {msg}")


def _flags(node: Node) -> dict[str, str]:
    allowed = _ALLOWED_FLAGS.get(node.value, set())
    out: dict[str, str] = {}
    for raw in node.flags:
        name, sep, value = raw[2:].partition("=")
        if name not in allowed:
            raise _err(node, f"Unknown flag: {name}")
        if not sep and name not in ("platform",):
            raise _err(node, f"Missing a value on flag: {name}")
        if name in out:
            raise _err(node, f"Duplicate flag specified: {name}")
        out[name] = value
    return out


def parse_command(node: Node) -> Command:
    """ParseCommand: validate one node."""
    name = node.value
    if name not in KNOWN:
        raise _err(node, f"unknown instruction: {name.upper()}")
    flags = _flags(node)
    args = node.args
    upper = name.upper()
    if name in ("env", "label") and not args:
        raise _err(node, f"{upper} requires at least one argument")
    if name in ("arg", "expose", "volume", "stopsignal") and not args:
        raise _err(node, f"{upper} requires at least one argument" if name != "arg"
                   else "ARG requires exactly one argument")
    if name in _EXACTLY_ONE and len(args) != 1:
        raise _err(node, f"{upper} requires exactly one argument")
    if name in ("copy", "add") and len(args) < 2:
        raise _err(node, f"{upper} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined.")
    if name == "shell":
        if not node.json:
            raise _err(node, "SHELL requires the arguments to be in JSON form")
        if not args:
            raise _err(node, "SHELL requires at least one argument")
    if name == "volume" and any(not v.strip() for v in args):
        raise _err(node, "VOLUME specified can not be an empty string")
    if name == "healthcheck":
        if not args:
            raise _err(node, "HEALTHCHECK requires an argument")
        typ = args[0].upper()
        if typ == "NONE" and len(args) > 1:
            raise _err(node, "HEALTHCHECK NONE takes no arguments")
        if typ not in ("NONE", "CMD"):
            raise _err(node, f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
        if typ == "CMD" and len(args) < 2:
            raise _err(node, "Missing command after HEALTHCHECK CMD")
    if name == "onbuild" and node.sub is not None:
        parse_command(node.sub)  # a trigger must itself be valid
    return Command(name, node.original, list(args), flags, node.json, node.start_line, node.sub)


def _stage(node: Node) -> Stage:
    args = node.args
    if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
        raise _err(node, "FROM requires either one or three arguments")
    name = ""
    if len(args) == 3:
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise _err(node, f'invalid name for build stage: "{args[2]}", name can\'t start with a number '
                             "or contain symbols")
    flags = _flags(node)
    return Stage(args[0], name, node.original, flags.get("platform", ""))


def parse(children: list[Node]) -> tuple[list[Stage], list[Command]]:
    """instructions.Parse: the stages and the ARGs declared before the first FROM."""
    stages: list[Stage] = []
    meta_args: list[Command] = []
    for node in children:
        if node.value == "from":
            stages.append(_stage(node))
            continue
        cmd = parse_command(node)
        if not stages:
            if cmd.name != "arg":
                raise InstructionError("no build stage in current context")
            meta_args.append(cmd)
            continue
        stages[-1].commands.append(cmd)
    return stages, meta_args


def has_stage(stages: list[Stage], name: str) -> int:
    """HasStage: the index of the stage named `name` (case-insensitive), or -1."""
    for i, s in enumerate(stages):
        if s.name == name.lower():
            return i
    return -1
