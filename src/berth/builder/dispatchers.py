"""One function per instruction (moby/builder/dockerfile/dispatchers.go), named after
dockerd's. Each updates the stage's run config and makes the step's image through
the builder (`b.commit`, `b.run`, `b.perform_copy`).
"""
from __future__ import annotations

import copy
import json
import posixpath
import re
from typing import Any, Protocol

from .. import errdefs
from ..pkg.signal import parse_signal
from .instructions import Command
from .shell import ShellError, process_word, process_words
from .state import DispatchState


class Builder(Protocol):
    """The steps a dispatcher asks of the build (builder.Builder satisfies it)."""

    async def probe_cache(self, s: DispatchState, cfg: dict[str, Any]) -> bool: ...
    async def commit(self, s: DispatchState, comment: str, comment_string: bool = False) -> None: ...
    async def run(self, s: DispatchState, run_cfg: dict[str, Any], probe_cfg: dict[str, Any]) -> None: ...
    async def perform_copy(self, s: DispatchState, cmd: Command, args: list[str], kind: str) -> None: ...

DEFAULT_SHELL = ["/bin/sh", "-c"]


def get_shell(cfg: dict[str, Any]) -> list[str]:
    return list(cfg.get("Shell") or DEFAULT_SHELL)


def _expand(s: DispatchState, word: str) -> str:
    try:
        return process_word(word, s.expansion_env(), s.escape)
    except ShellError as e:
        raise errdefs.InvalidParameter(str(e)) from None


def _go_q(items: list[str]) -> str:
    """fmt.Sprintf("%q", []string): `["a" "b"]`."""
    return "[" + " ".join(json.dumps(x) for x in items) + "]"


def resolve_cmd_line(cmd: Command, cfg: dict[str, Any]) -> list[str]:
    """resolveCmdLine: JSON form as is, shell form prefixed with SHELL."""
    if cmd.json:
        return list(cmd.args)
    return get_shell(cfg) + list(cmd.args)


async def dispatch_env(b: Builder, s: DispatchState, cmd: Command) -> None:
    env = list(s.run_config.get("Env") or [])
    msg = "ENV"
    for i in range(0, len(cmd.args), 2):
        key, value = _expand(s, cmd.args[i]), _expand(s, cmd.args[i + 1])
        msg += f" {key}={value}"
        keys = [e.partition("=")[0] for e in env]
        if key in keys:  # replaced where it stands
            env[keys.index(key)] = f"{key}={value}"
        else:
            env.append(f"{key}={value}")
    s.run_config["Env"] = env
    await b.commit(s, msg)


async def dispatch_label(b: Builder, s: DispatchState, cmd: Command) -> None:
    labels = dict(s.run_config.get("Labels") or {})
    msg = "LABEL"
    no_exp = cmd.flags.get("_noexp") == "1"
    for i in range(0, len(cmd.args), 2):
        key, value = cmd.args[i], cmd.args[i + 1]
        if not no_exp:
            key, value = _expand(s, key), _expand(s, value)
        msg += f" {key}={value}"
        labels[key] = value
    s.run_config["Labels"] = labels
    await b.commit(s, msg)


async def dispatch_maintainer(b: Builder, s: DispatchState, cmd: Command) -> None:
    s.maintainer = cmd.args[0]
    await b.commit(s, "MAINTAINER " + s.maintainer)


async def dispatch_workdir(b: Builder, s: DispatchState, cmd: Command) -> None:
    path = _expand(s, cmd.args[0])
    cur = s.run_config.get("WorkingDir") or ""
    # normalizeWorkdir: relative to the current one, cleaned
    new = posixpath.normpath(posixpath.join("/", cur, path)) if not path.startswith("/") else posixpath.normpath(path)
    if new.startswith("//"):
        new = new[1:]
    s.run_config["WorkingDir"] = new
    await b.commit(s, "WORKDIR " + new, comment_string=True)


async def dispatch_run(b: Builder, s: DispatchState, cmd: Command) -> None:
    if cmd.flags:
        raise errdefs.InvalidParameter("the --mount option requires BuildKit")
    cmd_line = resolve_cmd_line(cmd, s.run_config)
    build_env = s.build_args.filter_allowed(s.run_config.get("Env") or [])
    save_cmd = cmd_line
    if build_env:
        save_cmd = s.build_args.prepend_env_on_cmd(build_env, cmd_line)
    probe = copy.deepcopy(s.run_config)
    probe["Cmd"] = save_cmd
    if save_cmd:  # withEntrypointOverride(saveCmd, nil)
        probe["Entrypoint"] = None
    if await b.probe_cache(s, probe):
        return
    run_cfg = copy.deepcopy(s.run_config)
    run_cfg["Cmd"] = cmd_line
    run_cfg["Env"] = list(s.run_config.get("Env") or []) + build_env
    run_cfg["Entrypoint"] = [""]  # withEntrypointOverride: the image's must not run
    run_cfg.pop("Healthcheck", None)
    await b.run(s, run_cfg, probe)


async def dispatch_cmd(b: Builder, s: DispatchState, cmd: Command) -> None:
    line = resolve_cmd_line(cmd, s.run_config)
    s.run_config["Cmd"] = line
    s.cmd_set = True
    await b.commit(s, "CMD " + _go_q(line))


async def dispatch_entrypoint(b: Builder, s: DispatchState, cmd: Command) -> None:
    if cmd.json:
        s.run_config["Entrypoint"] = list(cmd.args)
    elif cmd.args and cmd.args[0]:
        s.run_config["Entrypoint"] = get_shell(s.run_config) + list(cmd.args)
    else:
        s.run_config["Entrypoint"] = None
    if not s.cmd_set:
        s.run_config["Cmd"] = None
    await b.commit(s, "ENTRYPOINT " + _go_q(s.run_config["Entrypoint"] or []))


async def dispatch_expose(b: Builder, s: DispatchState, cmd: Command) -> None:
    ports: list[str] = []
    for p in cmd.args:
        try:
            ports += process_words(p, s.expansion_env(), s.escape)
        except ShellError as e:
            raise errdefs.InvalidParameter(str(e)) from None
    exposed = dict(s.run_config.get("ExposedPorts") or {})
    for p in ports:
        port, _, proto = p.partition("/")
        if not re.fullmatch(r"\d+(-\d+)?", port):
            raise errdefs.InvalidParameter(f"Invalid containerPort: {port}")
        exposed[f"{port}/{(proto or 'tcp').lower()}"] = {}
    s.run_config["ExposedPorts"] = exposed
    await b.commit(s, "EXPOSE " + " ".join(ports))


async def dispatch_user(b: Builder, s: DispatchState, cmd: Command) -> None:
    s.run_config["User"] = _expand(s, cmd.args[0])
    await b.commit(s, "USER " + s.run_config["User"])


async def dispatch_volume(b: Builder, s: DispatchState, cmd: Command) -> None:
    vols = dict(s.run_config.get("Volumes") or {})
    names = [_expand(s, v) for v in cmd.args]
    for v in names:
        if not v.strip():
            raise errdefs.InvalidParameter("VOLUME specified can not be an empty string")
        vols[v] = {}
    s.run_config["Volumes"] = vols
    await b.commit(s, "VOLUME [" + " ".join(names) + "]")


async def dispatch_stopsignal(b: Builder, s: DispatchState, cmd: Command) -> None:
    sig = _expand(s, cmd.args[0])
    try:
        parse_signal(sig)
    except ValueError as e:
        raise errdefs.InvalidParameter(str(e)) from None
    s.run_config["StopSignal"] = sig
    await b.commit(s, "STOPSIGNAL " + sig)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def _duration(name: str, raw: str) -> int:
    """time.ParseDuration, then parseOptInterval's minimum of 1ms."""
    if not raw:
        return 0
    if raw == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(raw):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(raw) or pos == 0:
        raise errdefs.InvalidParameter(f'time: invalid duration "{raw}"')
    if 0 < total < 10**6:
        raise errdefs.InvalidParameter(f"Interval {name} cannot be less than 1ms")
    return int(total)


def _go_duration(ns: int) -> str:
    if ns == 0:
        return "0s"
    s = ns / 10**9
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    out = (f"{int(h)}h" if h else "") + (f"{int(m)}m" if h or m else "")
    return out + f"{sec:g}s"


async def dispatch_healthcheck(b: Builder, s: DispatchState, cmd: Command) -> None:
    typ = cmd.args[0].upper()
    if typ == "NONE":
        hc: dict[str, Any] = {"Test": ["NONE"]}
    else:
        test = ["CMD"] + cmd.args[1:] if cmd.json else ["CMD-SHELL", cmd.args[1]]
        hc = {"Test": test}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod")):
            v = _duration(flag, cmd.flags.get(flag, ""))
            if v:
                hc[key] = v
        if cmd.flags.get("retries"):
            try:
                retries = int(cmd.flags["retries"])
            except ValueError:
                raise errdefs.InvalidParameter(
                    f'strconv.ParseInt: parsing "{cmd.flags["retries"]}": invalid syntax') from None
            if retries < 1:
                raise errdefs.InvalidParameter(f"--retries must be at least 1 (not {retries})")
            hc["Retries"] = retries
    s.run_config["Healthcheck"] = hc
    desc = "&{" + _go_q(hc["Test"]) + " " + " ".join(
        json.dumps(_go_duration(hc.get(k, 0))) for k in ("Interval", "Timeout", "StartPeriod")
    ) + f" '\\x{hc.get('Retries', 0):02x}'" + "}"
    await b.commit(s, "HEALTHCHECK " + desc)


async def dispatch_shell(b: Builder, s: DispatchState, cmd: Command) -> None:
    s.run_config["Shell"] = list(cmd.args)
    await b.commit(s, "SHELL [" + " ".join(cmd.args) + "]")


async def dispatch_onbuild(b: Builder, s: DispatchState, cmd: Command) -> None:
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", cmd.original)
    s.run_config["OnBuild"] = list(s.run_config.get("OnBuild") or []) + [expression]
    await b.commit(s, "ONBUILD " + expression)


async def dispatch_arg(b: Builder, s: DispatchState, cmd: Command) -> None:
    msg = "ARG"
    for word in cmd.args:
        raw_key, sep, raw_value = word.partition("=")
        key = raw_key
        value: str | None = _expand(s, raw_value) if sep else None
        if value is None:
            value = s.build_args.meta_default(key)
        s.build_args.add_arg(key, value)
        msg += f" {key}" + (f"={value}" if sep else "")
    await b.commit(s, msg)


async def dispatch_copy(b: Builder, s: DispatchState, cmd: Command) -> None:
    await b.perform_copy(s, cmd, [_expand(s, a) for a in cmd.args], "copy")


async def dispatch_add(b: Builder, s: DispatchState, cmd: Command) -> None:
    args = [_expand(s, a) for a in cmd.args]
    for src in args[:-1]:
        if re.match(r"^https?://", src):
            raise errdefs.Untyped(f'ADD failed: Get "{src}": downloading remote files is not supported by Berth '
                                  "(no network access)")
    await b.perform_copy(s, cmd, args, "add")


DISPATCHERS = {
    "env": dispatch_env, "label": dispatch_label, "maintainer": dispatch_maintainer,
    "workdir": dispatch_workdir, "run": dispatch_run, "cmd": dispatch_cmd,
    "entrypoint": dispatch_entrypoint, "expose": dispatch_expose, "user": dispatch_user,
    "volume": dispatch_volume, "stopsignal": dispatch_stopsignal, "healthcheck": dispatch_healthcheck,
    "shell": dispatch_shell, "onbuild": dispatch_onbuild, "arg": dispatch_arg,
    "copy": dispatch_copy, "add": dispatch_add,
}
