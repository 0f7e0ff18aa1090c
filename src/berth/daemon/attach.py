"""Attach and resize (moby daemon/attach.go ContainerAttach, containerAttach;
container/stream/attach.go CopyStreams; daemon/resize.go ContainerResize).

dockerd's containers write into in-memory broadcasters that attach clients subscribe to;
Berth's write into conmon, which also serves `<bundle>/attach` (runtime/conmon.py): each
client is one connection there. A container that is not running yet is attached to by a
pre-start hook (daemon/start.py), so `docker run`/`docker start -a` lose no output: the hook
connects between `runtime create` and `runtime start`. The attach ends when the container's
output ends (it exited), on the detach keys (TTY only), when the client closes stdin (unless
StdinOnce without a TTY, where the container's stdin is closed instead), or when the client
goes away.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import errdefs
from ..pkg import stdcopy, term
from ..runtime.conmon import AttachStream
from ..runtime.oci import OCIRuntimeError
from ..types.backend import ClientStreams, ContainerAttachConfig
from .logs import LogsConfig, container_logs

if TYPE_CHECKING:
    from ..container.container import Container
    from .core import Daemon

log = logging.getLogger("berth.daemon")


EOF_OUTPUT, DETACHED, STDIN_CLOSED, CLIENT_GONE = "eof", "detach", "stdin-closed", "gone"


async def copy_streams(source: AttachStream, client: ClientStreams, *, tty: bool, multiplexed: bool,
                       use_stdin: bool, use_stdout: bool, use_stderr: bool, close_stdin: bool,
                       detach_keys: bytes) -> str:
    """CopyStreams between conmon's attach socket and the client; returns how it ended."""

    async def pump_out() -> str:
        while True:
            item = await source.read()
            if item is None:
                return EOF_OUTPUT
            stream, data = item
            if (stream == stdcopy.STDOUT and use_stdout) or (stream == stdcopy.STDERR and use_stderr):
                try:
                    await client.write(stdcopy.frame(stream, data) if multiplexed else data)
                except (ConnectionError, OSError):
                    return CLIENT_GONE

    async def pump_in() -> str:
        proxy = term.EscapeProxy(detach_keys or term.DEFAULT_ESCAPE_KEYS) if tty else None
        while True:
            data = await client.read()
            if not data:
                if close_stdin and not tty:
                    source.close_stdin()  # the container sees EOF; its output goes on
                    await client.gone.wait()
                    return CLIENT_GONE
                # "No matter what, when stdin is closed, close stdout and stderr."
                return STDIN_CLOSED
            if proxy is not None:
                try:
                    data = proxy.feed(data)
                except term.EscapeError:
                    return DETACHED
            if data:
                try:
                    await source.write(data)
                except (ConnectionError, OSError):
                    await client.gone.wait()  # the container's stdin is gone: output decides
                    return CLIENT_GONE

    async def wait_gone() -> str:
        await client.gone.wait()
        return CLIENT_GONE

    tasks = [asyncio.ensure_future(pump_out()), asyncio.ensure_future(wait_gone())]
    if use_stdin:
        tasks.append(asyncio.ensure_future(pump_in()))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # Output EOF first when several finished together: the container ended.
        for t in tasks:
            if t in done:
                return t.result()
        return CLIENT_GONE
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def attach_socket_path(d: Daemon, ctr: Container) -> str:
    proc = ctr.process
    if proc is not None:
        return proc.state.attach_socket
    return os.path.join(d.lifecycle.bundle_dir(ctr.ID), "attach")


def _on_next_start(d: Daemon, ctr: Container) -> tuple[asyncio.Future[AttachStream], Callable[[], None]]:
    """A future that gets a connection to conmon's attach socket at the container's next
    start, before its process runs; and the function that withdraws it."""
    fut: asyncio.Future[AttachStream] = asyncio.get_running_loop().create_future()

    async def hook(c: Container) -> None:
        if fut.done():
            return
        try:
            s = await AttachStream.connect(os.path.join(d.lifecycle.bundle_dir(c.ID), "attach"))
        except OSError as e:
            if not fut.done():
                fut.set_exception(e)
            return
        if fut.done():  # withdrawn meanwhile
            s.close()
        else:
            fut.set_result(s)

    hooks = ctr.pre_start_hooks
    hooks.append(hook)

    def withdraw() -> None:
        with contextlib.suppress(ValueError):
            hooks.remove(hook)
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            pass  # the caller owns the stream
        elif not fut.done():
            fut.cancel()

    return fut, withdraw


def _nothing() -> None:
    """No subscription to withdraw."""


async def container_attach(d: Daemon, name: str, c: ContainerAttachConfig) -> None:
    """ContainerAttach: checks (errors before the response head), streams, logs, copy."""
    keys = b""
    if c.detach_keys:
        try:
            keys = term.to_bytes(c.detach_keys)
        except ValueError:
            raise errdefs.InvalidParameter(f"Invalid detach keys ({c.detach_keys}) provided") from None
    ctr = d.get_container(name)
    if ctr.State.Paused:
        raise errdefs.Conflict(f"container {name} is paused, unpause the container before attach")
    if ctr.State.Restarting:
        raise errdefs.Conflict(f"container {name} is restarting, wait until the container is running")
    tty = bool(ctr.Config.Tty)
    use_stdin = c.use_stdin and bool(ctr.Config.OpenStdin)
    # Subscribe before the head goes out: a client starts the container once it has it.
    pending: asyncio.Future[AttachStream] | None = None
    withdraw: Callable[[], None] = _nothing
    if c.stream and not (ctr.State.Running and ctr.process is not None):
        pending, withdraw = _on_next_start(d, ctr)
    try:
        multiplexed = not tty and c.mux_streams
        client = await c.get_streams(multiplexed)
        if c.logs:
            await _replay_logs(d, ctr, client, c, multiplexed)
        d.log_container_event(ctr, "attach")
        if not c.stream:
            return
        source = await _connect(d, ctr, pending, client)
        if source is None:
            return
    finally:
        withdraw()
    stopped = None
    if ctr.Config.StdinOnce and not tty:
        stopped = d.wait_condition(ctr, "not-running")
    try:
        how = await copy_streams(source, client, tty=tty, multiplexed=multiplexed, use_stdin=use_stdin,
                                 use_stdout=c.use_stdout, use_stderr=c.use_stderr,
                                 close_stdin=bool(ctr.Config.StdinOnce), detach_keys=keys)
    finally:
        source.close()
    if how == DETACHED:  # a client that just leaves is not a detach in dockerd's log
        d.log_container_event(ctr, "detach")
    if stopped is not None:
        # "Wait for the container to stop before returning" (StdinOnce without a TTY).
        if how == EOF_OUTPUT:
            await _until(stopped, client.gone)
        elif not stopped.done():
            stopped.cancel()


async def _until(fut: asyncio.Future[Any], gone: asyncio.Event) -> None:
    g = asyncio.ensure_future(gone.wait())
    try:
        await asyncio.wait([fut, g], return_when=asyncio.FIRST_COMPLETED)
    finally:
        g.cancel()
        if not fut.done():
            fut.cancel()


async def _connect(d: Daemon, ctr: Container, pending: asyncio.Future[AttachStream] | None,
                   client: ClientStreams) -> AttachStream | None:
    """The container's output: now if it runs, else at its next start (None if the client
    left first)."""
    if pending is None:
        try:
            return await AttachStream.connect(attach_socket_path(d, ctr))
        except OSError as e:  # it exited just now: nothing more to copy
            log.debug("attach to %s: %s", ctr.ID, e)
            return None
    gone = asyncio.ensure_future(client.gone.wait())
    try:
        waiting: list[asyncio.Future[Any]] = [pending, gone]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not pending.done():
        return None
    if pending.cancelled() or pending.exception() is not None:
        return None
    return pending.result()


async def _replay_logs(d: Daemon, ctr: Container, client: ClientStreams, c: ContainerAttachConfig,
                       multiplexed: bool) -> None:
    """containerAttach's `logs`: everything logged so far, then the live stream."""
    msgs, _ = await container_logs(d, ctr.ID, LogsConfig(stdout=c.use_stdout, stderr=c.use_stderr, since="",
                                                          until="", timestamps=False, follow=False, tail="",
                                                          details=False))
    try:
        async for m in msgs:
            try:
                await client.write(stdcopy.frame(m.stream, m.line) if multiplexed else m.line)
            except (ConnectionError, OSError):
                return
    finally:
        await msgs.aclose()


async def container_resize(d: Daemon, name: str, height: int, width: int) -> None:
    """ContainerResize: 409 unless running; a `resize` event when the terminal took it."""
    ctr = d.get_container(name)
    proc = ctr.process
    if not ctr.State.Running or proc is None:
        raise errdefs.Conflict(f"Container {ctr.ID} is not running")
    try:
        proc.resize(height, width)
    except OCIRuntimeError as e:
        raise errdefs.System(str(e)) from None
    d.log_container_event(ctr, "resize", {"height": str(height), "width": str(width)})
