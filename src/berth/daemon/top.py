"""docker top (moby daemon/top_unix.go ContainerTop, validatePSArgs, parsePSOutput)."""
from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import msgspec

from .. import errdefs
from .stats import container_pids

if TYPE_CHECKING:
    from .core import Daemon

_PS_ARG = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


class ContainerTopOKBody(msgspec.Struct):
    Processes: list[list[str]] | None
    Titles: list[str] | None


def validate_ps_args(ps_args: str) -> None:
    for k, v in _PS_ARG.findall(ps_args):
        if k != "pid":
            raise errdefs.Untyped(f'specifying "{k}={v}" is not allowed')


def parse_ps_output(output: str, pids: list[int]) -> ContainerTopOKBody:
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise errdefs.Untyped("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    procs: list[list[str]] = []
    pre_contained = False

    def append(fields: list[str]) -> None:
        procs.append(fields[: len(titles) - 1] + [" ".join(fields[len(titles) - 1:])])

    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        if fields[pid_index] == "-":
            if pre_contained:
                append(fields)
            continue
        try:
            p = int(fields[pid_index])
        except ValueError:
            raise errdefs.Untyped(f"Unexpected pid '{fields[pid_index]}': strconv.Atoi: parsing "
                                  f"\"{fields[pid_index]}\": invalid syntax") from None
        if p in pids:
            pre_contained = True
            append(fields)
            continue
        pre_contained = False
    return ContainerTopOKBody(Processes=procs or None, Titles=titles)


async def _ps(args: list[str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec("ps", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


async def container_top(d: Daemon, name: str, ps_args: str) -> ContainerTopOKBody:
    if not ps_args:
        ps_args = "-ef"
    validate_ps_args(ps_args)
    ctr = d.get_container(name)
    if not ctr.State.Running:
        raise errdefs.Conflict(f"Container {ctr.ID} is not running")
    if ctr.State.Restarting:
        raise errdefs.Conflict(f"Container {ctr.ID} is restarting, wait until the container is running")
    pids = await d.run_blocking(container_pids, ctr.State.Pid)
    args = ps_args.split(" ")
    rc, out, err = await _ps(args + ["-q" + ",".join(str(p) for p in pids)])
    if rc != 0:
        # "some ps options (such as f) can't be used together with q, so retry without it"
        rc, out, err = await _ps(args)
        if rc != 0:
            first = err.split(b"\n", 1)[0].decode(errors="replace")
            raise errdefs.System(f"ps: {first or f'exit status {rc}'}")
    body = parse_ps_output(out.decode(errors="replace"), pids)
    d.log_container_event(ctr, "top")
    return body
