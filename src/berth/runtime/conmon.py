"""Containers under conmon, so that they outlive the daemon (podman v4.3.1 libpod/oci_conmon_*.go).

conmon runs `runtime create` for us, double-forks into its own session, holds the container's
stdio (log file, attach socket, terminal), waits for the container and writes its exit status
to `<exit_dir>/<id>` before it exits. The daemon can therefore die at any moment: a new daemon
finds the container again from `<persist_dir>/berth-conmon.json` (`reattach`), waits on the
conmon pid with a pidfd and reads the same exit file. The handshake follows podman's
createOCIContainer: two SOCK_SEQPACKET pairs passed as `_OCI_SYNCPIPE`/`_OCI_STARTPIPE`; one
byte on the start pipe lets conmon go on, and the sync pipe brings back `{"data": <pid>}`
(`{"data": -1, "message": ...}` with the runtime's error on failure).

Attach (oci_conmon_attach_common.go): `<bundle>/attach` is a SOCK_SEQPACKET socket; each
message conmon sends starts with one byte naming the stream (2 stdout, 3 stderr); what we
send is written to the container's stdin as is, and shutting down our write side closes it.
Resize goes through the `<bundle>/ctl` fifo as "1 <height> <width>\n".
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import subprocess
from typing import Any

import msgspec

from berth.pkg import atomicfile, spawn
from berth.runtime import specs
from berth.runtime.oci import OCIRuntime, OCIRuntimeError
from berth.trace import PROCESS, traced

STATE_FILE = "berth-conmon.json"
# conmon's attach socket stream bytes (conmon src/conn_sock.h); Docker's stdcopy numbers are
# one less (1 stdout, 2 stderr).
_STDOUT_PIPE, _STDERR_PIPE = 2, 3
_BUF_SIZE = 8192 + 1  # conmon's STDIO_BUF_SIZE plus the stream byte
_CREATE_TIMEOUT = 240.0  # podman's define.ContainerCreateTimeout
# An exit code we report when conmon vanished without writing one (killed with SIGKILL);
# dockerd reports 255 for a task lost while it was down.
EXIT_UNKNOWN = 255


class ConmonState(msgspec.Struct, kw_only=True):
    """What a later daemon needs to find a container's monitor again (persist_dir)."""

    id: str
    bundle: str
    runtime_path: str
    runtime_name: str
    runtime_root: str
    exit_dir: str
    persist_dir: str
    log_path: str
    log_driver: str
    terminal: bool
    stdin: bool
    attach_socket: str
    conmon_pid: int
    conmon_start_time: int  # /proc/<pid>/stat starttime: a reused pid has another
    pid: int


def _proc_start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat, or -1 if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return -1
    return int(data[data.rindex(b")") + 2:].split()[19])


def _read_int(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def _seqpacket_pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


async def _recv_json(sock: socket.socket, timeout: float) -> dict[str, object]:
    """One sync-pipe message: a JSON object with `data` and maybe `message`."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    data = await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout)
    if not data:
        raise EOFError("conmon closed the sync pipe")
    return msgspec.json.decode(data.strip().split(b"\n")[0], type=dict[str, object])


async def _wait_pid_gone(pid: int, start_time: int) -> None:
    """Wait, without polling, until `pid` (not our child) has exited: a pidfd becomes
    readable when its process ends."""
    if start_time >= 0 and _proc_start_time(pid) != start_time:
        return
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, ready)
    try:
        # The pid may have been reused between the start-time check and pidfd_open.
        if start_time >= 0 and _proc_start_time(pid) != start_time:
            return
        await fut
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _connect_path(path: str) -> tuple[str, int | None]:
    """A connectable name for a socket whose path may exceed sun_path (108 bytes)."""
    if len(path.encode()) < 108:
        return path, None
    dfd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{dfd}/{os.path.basename(path)}", dfd


class AttachStream:
    """A connection to conmon's attach socket (one per attached client)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    async def connect(cls, path: str) -> AttachStream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        name, dfd = _connect_path(path)
        try:
            await asyncio.get_running_loop().sock_connect(sock, name)
        except BaseException:
            sock.close()
            raise
        finally:
            if dfd is not None:
                os.close(dfd)
        return cls(sock)

    async def read(self) -> tuple[int, bytes] | None:
        """The next chunk as (stream, data), stream 1 = stdout, 2 = stderr; None at EOF
        (the container's stdio closed, or conmon exited)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                msg = await loop.sock_recv(self._sock, _BUF_SIZE)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not msg:
                return None
            if msg[0] in (_STDOUT_PIPE, _STDERR_PIPE) and len(msg) > 1:
                return msg[0] - 1, msg[1:]

    async def write(self, data: bytes) -> None:
        """Send to the container's stdin (conmon was started with stdin open)."""
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:  # SEQPACKET keeps boundaries; stay under conmon's read size
            await loop.sock_sendall(self._sock, view[: _BUF_SIZE - 1])
            view = view[_BUF_SIZE - 1:]

    def close_stdin(self) -> None:
        """EOF on the container's stdin (unless conmon has --leave-stdin-open)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._sock.close()


class ContainerProcess:
    """A container (or exec session) under a conmon we started or found again."""

    def __init__(self, state: ConmonState, runtime: OCIRuntime) -> None:
        self.state = state
        self.runtime = runtime

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def pid(self) -> int:
        return self.state.pid

    @property
    def conmon_pid(self) -> int:
        return self.state.conmon_pid

    @property
    def exit_file(self) -> str:
        return os.path.join(self.state.exit_dir, self.state.id)

    async def start(self) -> None:
        """`runtime start`: run the user process of a created container."""
        await self.runtime.start(self.state.id)

    def conmon_alive(self) -> bool:
        return _proc_start_time(self.state.conmon_pid) == self.state.conmon_start_time

    def exit_code(self) -> int | None:
        """The exit status conmon recorded (128+signal when killed), or None if it is still
        running. EXIT_UNKNOWN when conmon is gone without writing one."""
        code = _read_int(self.exit_file)
        if code is not None:
            return code
        return None if self.conmon_alive() else EXIT_UNKNOWN

    async def wait_exit(self) -> int:
        """Wait for the container to exit and return its exit status."""
        await _wait_pid_gone(self.state.conmon_pid, self.state.conmon_start_time)
        code = _read_int(self.exit_file)
        if code is None and self.pid > 0 and os.path.exists(f"/proc/{self.pid}"):
            # conmon was killed under a running container: the exit handling's forced
            # `runtime delete` kills it, as containerd's cleanup of a dead shim does, and
            # dockerd then reports 137 (128 + SIGKILL)
            return 128 + 9
        return EXIT_UNKNOWN if code is None else code

    async def attach(self) -> AttachStream:
        return await AttachStream.connect(self.state.attach_socket)

    def resize(self, height: int, width: int) -> None:
        """Resize the container's terminal through conmon's control fifo."""
        self._ctl(f"1 {height} {width}\n")

    def reopen_log(self) -> None:
        """Ask conmon to reopen its log file (ctl message 2, REOPEN_LOGS_EVENT in conmon
        src/ctrl.c): it closes the file and renames a new empty one over the same path
        (ctr_logging.c reopen_k8s_file). Used by berth.logger.rotate."""
        self._ctl("2 0 0\n")

    def _ctl(self, message: str) -> None:
        path = os.path.join(self.state.bundle, "ctl")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):  # no reader: conmon is gone
                raise OCIRuntimeError(f"container {self.state.id} is not running") from e
            raise
        try:
            os.write(fd, message.encode())
        finally:
            os.close(fd)

    async def delete(self, force: bool = False) -> None:
        await self.runtime.delete(self.state.id, force=force)


async def _kill_launcher(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await spawn.wait(proc)


class PendingContainer:
    """A conmon launcher waiting on its start pipe (Conmon.launch_container): `create()`
    lets it run `runtime create`; `abort()` kills it before it has done anything. One of
    the two must be awaited."""

    def __init__(self, conmon: Conmon, proc: subprocess.Popen[bytes], sync: socket.socket,
                 start: socket.socket, stderr_path: str, conmon_pidfile: str, state: ConmonState,
                 runtime: OCIRuntime) -> None:
        self._conmon = conmon
        self._proc = proc
        self._sync = sync
        self._start = start
        self._stderr_path = stderr_path
        self._conmon_pidfile = conmon_pidfile
        self._state = state
        self._runtime = runtime
        self._used = False

    @property
    def log_path(self) -> str:
        return self._state.log_path

    def _take(self) -> None:
        if self._used:
            raise RuntimeError("conmon launch already used")
        self._used = True

    @traced(lambda self: f"conmon ({self._runtime.name} create)", kind=PROCESS, leaf=True)
    async def create(self) -> ContainerProcess:
        """Let conmon run `runtime create`; returns once the container is created. Raises
        OCIRuntimeError with the runtime's message if create fails; the caller then
        deletes the container from the runtime."""
        self._take()
        persist_dir = self._state.persist_dir
        try:
            try:
                await self._conmon._go(self._proc, self._start, self._stderr_path)
            finally:
                self._start.close()
            try:
                msg = await _recv_json(self._sync, _CREATE_TIMEOUT)
            except (EOFError, msgspec.DecodeError) as e:
                raise OCIRuntimeError(
                    f"container create failed (no logs from conmon): {e}: "
                    f"{_tail(self._stderr_path)}") from e
        finally:
            self._sync.close()
            self._start.close()
        pid = msg.get("data")
        if not isinstance(pid, int) or pid <= 0:
            message = msg.get("message")
            raise OCIRuntimeError(str(message) if message else "container create failed")
        conmon_pid = _read_int(self._conmon_pidfile) or 0
        state = msgspec.structs.replace(self._state, conmon_pid=conmon_pid,
                                        conmon_start_time=_proc_start_time(conmon_pid), pid=pid)
        # Written before we answer: a restarted daemon must find this container. Run state
        # (the persist dir is under the exec-root): renamed into place, not synced, as
        # nothing it names survives a crash of the machine.
        await asyncio.shield(asyncio.to_thread(
            atomicfile.write_file, os.path.join(persist_dir, STATE_FILE),
            msgspec.json.encode(state), 0o600, durable=False))
        return ContainerProcess(state, self._runtime)

    async def abort(self) -> None:
        """End the launcher, which has not started anything yet (no-op after create()),
        and remove the log file it opened at its start (empty: nothing ran), so that
        nothing takes it for output of the container."""
        if self._used:
            return
        self._used = True
        self._sync.close()
        self._start.close()
        await _kill_launcher(self._proc)
        path = self._state.log_path
        with contextlib.suppress(OSError):
            if path and os.path.getsize(path) == 0:
                os.unlink(path)


class Conmon:
    """Starts conmon processes (podman ConmonOCIRuntime, createOCIContainer, startExec)."""

    def __init__(self, path: str = "/usr/bin/conmon", log_level: str = "error") -> None:
        self.path = path
        self.log_level = log_level
        self._no_sync_log: bool | None = None  # whether this conmon has --no-sync-log (2.1+)

    async def _can_skip_log_sync(self) -> bool:
        """conmon 2.1 and later take `--no-sync-log`; an older one would refuse the option.
        Asked once, off the loop, the first time a container's conmon is started."""
        if self._no_sync_log is None:
            def probe() -> bool:
                try:
                    r = subprocess.run([self.path, "--help"], capture_output=True, timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    return False
                return b"--no-sync-log" in r.stdout + r.stderr
            self._no_sync_log = await asyncio.to_thread(probe)
        return self._no_sync_log

    def _shared_args(self, cid: str, cuuid: str, bundle: str, pidfile: str, exit_dir: str,
                     log_arg: str, runtime: OCIRuntime, persist_dir: str,
                     socket_dir: str | None) -> list[str]:
        args = ["--api-version", "1", "-c", cid, "-u", cuuid, "-r", runtime.path, "-b", bundle,
                "-p", pidfile, "-n", cid, "--exit-dir", exit_dir, "-l", log_arg,
                "--log-level", self.log_level, "--persist-dir", persist_dir]
        if socket_dir is None:
            args.append("--full-attach")  # the socket is <bundle>/attach
        else:
            args += ["--socket-dir-path", socket_dir]  # <socket_dir>/<cuuid>/attach, a symlink
        for a in runtime.global_args():
            args.append(f"--runtime-arg={a}")
        return args

    async def _launch(self, args: list[str], cwd: str, stderr_path: str,
                      extra: dict[str, socket.socket]) -> subprocess.Popen[bytes]:
        """Start the conmon launcher with the given pipes. It waits on its start pipe
        before doing anything (conmon.c reads it first thing, before forking): `_go` lets
        it on, `_kill_launcher` ends it."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NOTIFY_SOCKET", "_OCI_", "LISTEN_"))}
        # conmon stamps log records in its local time: UTC makes them the `+00:00` records
        # the json-file pump converts without a date computation (berth.logger.jsonlog).
        env["TZ"] = "UTC"
        for name, s in extra.items():
            env[name] = str(s.fileno())
        # stderr is a file, not a pipe: the forked monitor keeps it open for its whole life.
        with open(stderr_path, "ab") as errf:
            # vfork on a thread, not uvloop's fork of the whole daemon (pkg/spawn.py)
            proc = await spawn.popen(
                [self.path, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True,
                pass_fds=[s.fileno() for s in extra.values()])
        for s in extra.values():
            s.close()
        return proc

    @staticmethod
    async def _go(proc: subprocess.Popen[bytes], start: socket.socket, stderr_path: str) -> None:
        """One byte on the start pipe lets the launcher go on; reap it: it exits as soon as
        it has forked the real monitor into its own session."""
        try:
            with contextlib.suppress(BrokenPipeError):
                start.send(b"\0")  # podman sends this once conmon is in its cgroup
        except BaseException:
            await _kill_launcher(proc)
            raise
        rc = await spawn.wait(proc)
        if rc != 0:
            raise OCIRuntimeError(f"conmon failed: exit status {rc}: {_tail(stderr_path)}")

    async def _spawn(self, args: list[str], cwd: str, stderr_path: str,
                     extra: dict[str, socket.socket], start: socket.socket) -> None:
        """_launch and _go at once."""
        proc = await self._launch(args, cwd, stderr_path, extra)
        await self._go(proc, start, stderr_path)

    async def launch_container(
        self,
        id: str,
        bundle_dir: str,
        runtime: OCIRuntime,
        *,
        exit_dir: str,
        persist_dir: str,
        log_path: str,
        log_driver: str = "k8s-file",
        terminal: bool = False,
        stdin: bool = False,
        attach_socket_dir: str | None = None,
        log_size_max: int | None = None,
    ) -> PendingContainer:
        """The first half of create_container: a conmon for `id`, started and waiting.
        Nothing is read from the bundle yet (only the directory must exist, conmon's
        working directory), so this can run while the bundle is being written; then
        `PendingContainer.create()` or `abort()`.

        log_driver "k8s-file" makes conmon write `log_path` in the CRI format (read it back
        with berth.runtime.k8sfile); "none" writes nothing (output only reaches attach
        clients).
        """
        if log_driver not in ("k8s-file", "none"):
            raise ValueError(f"unsupported conmon log driver {log_driver!r}")
        os.makedirs(exit_dir, exist_ok=True)
        os.makedirs(persist_dir, exist_ok=True)
        pidfile = os.path.join(persist_dir, "pidfile")
        conmon_pidfile = os.path.join(persist_dir, "conmon.pid")
        log_arg = f"k8s-file:{log_path}" if log_driver == "k8s-file" else "none"
        args = self._shared_args(id, id, bundle_dir, pidfile, exit_dir, log_arg, runtime,
                                 persist_dir, attach_socket_dir)
        args += ["-P", conmon_pidfile]
        if log_driver == "k8s-file" and await self._can_skip_log_sync():
            # The file is Berth's: the json-file pump reads it and the `local` driver keeps
            # it, and dockerd's loggers sync neither at an exit. conmon's fsync of it there
            # (~1 ms) would only hold back the exit file everything waits for.
            args.append("--no-sync-log")
        if terminal:
            args.append("-t")
        elif stdin:
            args.append("-i")
        if log_size_max:
            args += ["--log-size-max", str(log_size_max)]
        attach = (os.path.join(bundle_dir, "attach") if attach_socket_dir is None
                  else os.path.join(attach_socket_dir, id, "attach"))
        state = ConmonState(
            id=id, bundle=bundle_dir, runtime_path=runtime.path, runtime_name=runtime.name,
            runtime_root=runtime.root, exit_dir=exit_dir, persist_dir=persist_dir,
            log_path=log_path if log_driver == "k8s-file" else "", log_driver=log_driver,
            terminal=terminal, stdin=stdin, attach_socket=attach, conmon_pid=0,
            conmon_start_time=-1, pid=0)
        parent_sync, child_sync = _seqpacket_pair()
        child_start, parent_start = _seqpacket_pair()
        stderr_path = os.path.join(persist_dir, "conmon.stderr")
        try:
            try:
                proc = await self._launch(args, bundle_dir, stderr_path,
                                          {"_OCI_SYNCPIPE": child_sync, "_OCI_STARTPIPE": child_start})
            finally:
                child_sync.close()
                child_start.close()
        except BaseException:
            parent_sync.close()
            parent_start.close()
            raise
        return PendingContainer(self, proc, parent_sync, parent_start, stderr_path, conmon_pidfile, state, runtime)

    async def create_container(self, id: str, bundle_dir: str, runtime: OCIRuntime, **kw: Any) -> ContainerProcess:
        """`runtime create` under a new conmon; returns once the container is created
        (launch_container's arguments). Raises OCIRuntimeError with the runtime's message
        if create fails; the caller then deletes the container from the runtime."""
        pending = await self.launch_container(id, bundle_dir, runtime, **kw)
        return await pending.create()

    def reattach(self, persist_dir: str, runtime: OCIRuntime | None = None) -> ContainerProcess:
        """Find a container again after a daemon restart, from what create_container
        persisted. Does not assume it is still running: see exit_code()/conmon_alive().
        Raises FileNotFoundError if nothing was persisted there."""
        with open(os.path.join(persist_dir, STATE_FILE), "rb") as f:
            state = msgspec.json.decode(f.read(), type=ConmonState)
        rt = runtime or OCIRuntime(state.runtime_path, state.runtime_name, state.runtime_root)
        return ContainerProcess(state, rt)

    @traced(lambda self, container, *a, **kw: f"conmon ({container.runtime.name} exec)", kind=PROCESS, leaf=True)
    async def exec(
        self,
        container: ContainerProcess,
        exec_id: str,
        process: specs.Process,
        exec_dir: str,
        *,
        attach: bool = True,
        stdin: bool = False,
    ) -> tuple[ContainerProcess, AttachStream | None]:
        """Run `process` in a running container under its own conmon (`conmon --exec`).

        With `attach`, the returned stream is connected before the process starts, so no
        output is lost (podman's attach pipe handshake). The session's exit status is
        written to `<exec_dir>/<container id>`.
        """
        os.makedirs(exec_dir, exist_ok=True)
        spec_path = os.path.join(exec_dir, "process.json")
        with open(spec_path, "wb") as f:
            f.write(msgspec.json.encode(process))
        pidfile = os.path.join(exec_dir, "pidfile")
        conmon_pidfile = os.path.join(exec_dir, "conmon.pid")
        args = self._shared_args(container.id, exec_id, exec_dir, pidfile, exec_dir, "none",
                                 container.runtime, exec_dir, None)
        args += ["-P", conmon_pidfile]
        if process.terminal:
            args.append("-t")
        if stdin:
            args.append("-i")
        args += ["-e", "--exec-process-spec", spec_path]
        if attach:
            args.append("--exec-attach")

        parent_sync, child_sync = _seqpacket_pair()
        child_start, parent_start = _seqpacket_pair()
        parent_attach, child_attach = _seqpacket_pair()
        pipes = {"_OCI_SYNCPIPE": child_sync, "_OCI_STARTPIPE": child_start}
        if attach:
            pipes["_OCI_ATTACHPIPE"] = child_attach
        stream: AttachStream | None = None
        try:
            try:
                await self._spawn(args, exec_dir, os.path.join(exec_dir, "conmon.stderr"), pipes,
                                  parent_start)
            finally:
                for s in (child_sync, child_start, child_attach):
                    s.close()
            if attach:
                await _recv_json(parent_attach, _CREATE_TIMEOUT)  # socket is listening
                stream = await AttachStream.connect(os.path.join(exec_dir, "attach"))
                with contextlib.suppress(BrokenPipeError):
                    parent_start.send(b"\0")  # now let the process run
            msg = await _recv_json(parent_sync, _CREATE_TIMEOUT)
        except BaseException:
            if stream is not None:
                stream.close()
            raise
        finally:
            for s in (parent_sync, parent_start, parent_attach):
                s.close()
        pid = msg.get("data")
        if not isinstance(pid, int) or pid <= 0:
            if stream is not None:
                stream.close()
            message = msg.get("message")
            raise OCIRuntimeError(str(message) if message else "exec failed")
        conmon_pid = _read_int(conmon_pidfile) or 0
        st = ConmonState(
            id=container.id, bundle=exec_dir, runtime_path=container.runtime.path,
            runtime_name=container.runtime.name, runtime_root=container.runtime.root,
            exit_dir=exec_dir, persist_dir=exec_dir, log_path="", log_driver="none",
            terminal=process.terminal, stdin=stdin,
            attach_socket=os.path.join(exec_dir, "attach"), conmon_pid=conmon_pid,
            conmon_start_time=_proc_start_time(conmon_pid), pid=pid)
        return ContainerProcess(st, container.runtime), stream


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""

