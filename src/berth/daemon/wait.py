"""Waiting for state changes (moby container/state.go Wait, daemon/wait.go ContainerWait).

Each container keeps two lists of futures, the `waitStop` and `waitRemove` channels of
dockerd: every stop (or restart) resolves the first, removal resolves the second. A
waiter gets the exit code and error message at the moment it is woken.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NamedTuple

from ..trace import traced

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

NOT_RUNNING, NEXT_EXIT, REMOVED = "not-running", "next-exit", "removed"


class StateStatus(NamedTuple):
    exit_code: int
    error: str


def _waiters(ctr: Container, kind: str) -> list[asyncio.Future[StateStatus]]:
    return ctr.wait_remove if kind == "remove" else ctr.wait_stop


def wait_condition(ctr: Container, condition: str) -> asyncio.Future[StateStatus]:
    """State.Wait: unknown conditions mean not-running, which is answered at once when the
    container is not running (also when it was never started)."""
    fut: asyncio.Future[StateStatus] = asyncio.get_running_loop().create_future()
    # dockerd reads the state under the container lock, which handleContainerExit holds
    # until the network is released and the state written: an exit being handled is not
    # over yet, so its waiter is woken with the others at the end (notify_stop).
    if condition not in (NEXT_EXIT, REMOVED) and not ctr.State.Running and not exit_in_progress(ctr):
        fut.set_result(StateStatus(ctr.State.ExitCode, ctr.State.Error))
        return fut
    _waiters(ctr, "remove" if condition == REMOVED else "stop").append(fut)
    return fut


def exit_in_progress(ctr: Container) -> bool:
    return ctr.exiting


def begin_exit(ctr: Container) -> None:
    """handleContainerExit has begun: not-running waiters wait for its end (notify_stop)."""
    ctr.exiting = True


def _notify(ctr: Container, kind: str, error: str | None = None) -> None:
    lst = _waiters(ctr, kind)
    status = StateStatus(ctr.State.ExitCode, ctr.State.Error if error is None else error)
    for fut in lst:
        if not fut.done():
            fut.set_result(status)
    lst.clear()


def notify_stop(ctr: Container) -> None:
    """SetStopped / SetRestarting closing waitStop, seen by the waiters once the exit
    handling is over (the container lock released)."""
    ctr.exiting = False
    _notify(ctr, "stop")


def notify_removed(ctr: Container) -> None:
    """SetRemoved = SetRemovalError(nil), which clears State.Error first: waiters woken by a
    removal get `"Error":null` (the CLI's `run --rm` of a missing command relies on it).
    Removal also wakes whoever still waits for a stop (a created container never stops)."""
    ctr.State.Error = ""
    _notify(ctr, "remove")
    _notify(ctr, "stop")


@traced("ContainerWait")
async def container_wait(d: Daemon, name: str, condition: str) -> asyncio.Future[StateStatus]:
    """ContainerWait: look the container up now (404 before any header is sent), wait later."""
    ctr = d.get_container(name)
    return wait_condition(ctr, condition)
