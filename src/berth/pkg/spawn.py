"""Start helper processes (runc, crun, conmon) cheaply and off the event loop.

uvloop's subprocess support (libuv's uv_spawn) forks the whole daemon and blocks the
event loop until the child has exec'd: with a daemon of 60 MB that is a page-table copy
and copy-on-write faults per spawn, measured at about half of berthd's CPU for a container
start (7 ms of berthd's and 7 ms of its children's CPU a start without it, 14 and 13 with
it) and 15 ms of a stalled loop each under load. CPython's subprocess uses vfork, which
copies nothing; it runs here on a thread of a dedicated pool, so the loop never waits for
a spawn and a parallel start does not queue behind the I/O pool.
"""
from __future__ import annotations

import asyncio
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# runc start/kill/delete and conmon launches of many parallel starts; a thread mostly
# sleeps in waitpid, so many are cheap
_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="berth-spawn")


async def popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen(argv, **kwargs) on the spawn pool."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, lambda: subprocess.Popen(argv, **kwargs))


async def wait(proc: subprocess.Popen[bytes]) -> int:
    """Wait for `proc`; if we are cancelled it gets SIGKILL and is reaped before the
    CancelledError goes on (trio/_subprocess.py's rule), so no zombie is left."""
    fut = asyncio.get_running_loop().run_in_executor(_POOL, proc.wait)
    try:
        return await asyncio.shield(fut)
    except BaseException:
        _kill(proc)
        await asyncio.wait([fut])
        raise


async def run(argv: list[str], stdin: bytes | None = None, cwd: str | None = None,
              env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run to completion: (returncode, stdout, stderr), with the same cancellation rule."""
    holder: list[subprocess.Popen[bytes]] = []

    def work() -> tuple[int, bytes, bytes]:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
        holder.append(p)
        out, err = p.communicate(stdin)
        return p.returncode, out, err

    fut = asyncio.get_running_loop().run_in_executor(_POOL, work)
    try:
        return await asyncio.shield(fut)
    except BaseException:
        if holder:
            _kill(holder[0])
        await asyncio.wait([fut])
        raise


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.kill()
    except ProcessLookupError:
        pass

