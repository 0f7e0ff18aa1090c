"""The OCI runtime CLI (runc or crun), driven with asyncio subprocesses.

What containerd's runc shim does for dockerd (containerd/go-runc), and podman's
libpod/oci_conmon_common.go does with exec.Command: `state`, `start`, `kill`, `delete`,
`pause`, `resume`, `update`, `ps`, each a child process we own and wait for. The runtime's
stderr goes into the error message, because dockerd's start errors quote the runtime's text
("OCI runtime create failed: ..."). `create` itself goes through conmon (runtime/conmon.py) so
that the container's monitor outlives the daemon.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import select
import shutil
import signal as _signal
import tempfile
import threading
from typing import Any

import msgspec

from berth import errdefs
from berth.pkg import atomicfile, spawn
from berth.runtime import spec as _spec
from berth.runtime import specs
from berth.trace import PROCESS, traced

log = logging.getLogger("berth.runtime")

# runc logs errors as logfmt: time="..." level=error msg="container does not exist"
_LOGFMT_MSG = re.compile(r'level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"')


class OCIRuntimeError(errdefs.System):
    """The runtime exited non-zero; the message is its error text (500 unless translated)."""

    def __init__(self, message: str, *, stderr: str = "", returncode: int = 0) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode


class ContainerNotExist(OCIRuntimeError):
    """The runtime has no container by that ID (its state dir is gone)."""


def runtime_error_message(stderr: str) -> str:
    """The human part of a runtime's stderr: runc's logfmt `msg`, or crun's plain lines."""
    msgs = [bytes(m, "utf-8").decode("unicode_escape") for m in _LOGFMT_MSG.findall(stderr)]
    if msgs:
        return msgs[-1]
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def classify_start_error(message: str) -> tuple[int, str]:
    """moby's translateContainerdStartErr reading of a runtime's start error (case-insensitive:
    crun says "No such file or directory"): the exit code it implies (127 not found, 126
    not permitted, 0 neither) and the message, with the hint for a mount of the wrong type."""
    status = 0
    lower = message.lower()
    if any(s in lower for s in ("executable file not found", "no such file or directory",
                                "system cannot find the file specified",
                                "failed to run runc create/exec call")):
        status = 127
    if "permission denied" in lower:
        status = 126
    if "not a directory" in lower:
        status = 127
        message += (": Are you trying to mount a directory onto a file (or vice-versa)? "
                    "Check if the specified host path exists and is the expected type")
    return status, message


def _is_not_exist(msg: str) -> bool:
    return "does not exist" in msg or "container not found" in msg or "No such file" in msg


async def run_process(*argv: str, stdin: bytes | None = None, cwd: str | None = None,
                      env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run a helper to completion and return (returncode, stdout, stderr).

    The child is ours: if we are cancelled it gets SIGKILL and is reaped before the
    CancelledError goes on (trio/_subprocess.py's rule), so no zombie or orphan is left.
    """
    # vfork on a thread, not uvloop's fork of the whole daemon (pkg/spawn.py says why)
    return await spawn.run(list(argv), stdin=stdin, cwd=cwd, env=env)


def start_by_exec_fifo(state_dir: str) -> bool:
    """What `runc start` does (runc 1.1 libcontainer/container_linux.go exec,
    handleFifoResult): read the exec fifo to its end (the init writes a byte, then execs the
    process, which closes its end), then remove it. False, having read nothing, when there
    is no fifo or the init is gone without writing (blocking)."""
    path = os.path.join(state_dir, "exec.fifo")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        got = b""
        while True:
            if not p.poll(100):
                # runc's check every 100 ms: an init that died will never write
                if not got and not _alive(state_dir):
                    return False
                continue
            data = os.read(fd, 64)
            if not data:
                break  # the writer closed its end: the process was exec'd (or the init died)
            got += data
        if not got:
            return False
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def delete_stopped_in_place(state_dir: str) -> bool:
    """What `runc delete` does for a container whose init has exited (runc 1.1
    libcontainer/container_linux.go destroy with cgroups/fs RemovePaths): remove its
    cgroups, then its state directory. True when done (or nothing was there); False when
    it is not that simple and `runc delete --force` must do it: the init is still alive,
    the container shares a PID namespace (runc kills what is left in its cgroups), it has
    poststop hooks or an Intel RDT group, a cgroup is busy or has children (runc retries
    and walks those), or the state file is not what runc 1.1 writes (blocking)."""
    try:
        with open(os.path.join(state_dir, "state.json"), "rb") as f:
            st = msgspec.json.decode(f.read())  # ~25 kB (the seccomp profile): msgspec, not json
    except FileNotFoundError:
        return not os.path.exists(state_dir)
    except (OSError, msgspec.DecodeError):
        return False
    try:
        pid, start = int(st["init_process_pid"]), int(st["init_process_start"])
        paths = list(st["cgroup_paths"].values())
        cfg = st["config"]
        own_pidns = any(ns.get("type") == "NEWPID" and not ns.get("path") for ns in cfg["namespaces"])
        hooks = cfg.get("hooks") or {}
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    if not own_pidns or hooks.get("poststop") or st.get("intel_rdt_path"):
        return False
    if not all(isinstance(p, str) and p.startswith("/sys/fs/cgroup/") for p in paths):
        return False
    try:  # runType: alive is the same start time and neither zombie nor dead
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] not in ("Z", "X") and int(fields[19]) == start:
            return False
    except (OSError, ValueError, IndexError):
        pass  # gone
    for path in paths:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:  # busy (its last processes still exiting) or with children
            return False
    shutil.rmtree(state_dir, ignore_errors=True)
    return True


def _alive(state_dir: str) -> bool:
    """The init of runc's state.json is there and not a zombie."""
    try:
        with open(os.path.join(state_dir, "state.json"), "rb") as f:
            pid = int(json.loads(f.read())["init_process_pid"])
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


class OCIRuntime:
    """One runtime binary with its own state directory (`--root`)."""

    def __init__(self, path: str, name: str, root: str, systemd_cgroup: bool = False) -> None:
        self.path = path
        self.name = name
        self.root = root
        self.systemd_cgroup = systemd_cgroup

    def __repr__(self) -> str:
        return f"OCIRuntime({self.path!r}, {self.name!r}, {self.root!r})"

    def global_args(self) -> list[str]:
        """Flags that go before the subcommand (also passed to conmon as --runtime-arg);
        `--systemd-cgroup`: cgroupsPath is `slice:prefix:name` and systemd makes the scope."""
        return ["--root", self.root, "--systemd-cgroup"] if self.systemd_cgroup else ["--root", self.root]

    @traced(lambda self, *args, **kw: f"{self.name} {args[0]}", kind=PROCESS, leaf=True)
    async def _run(self, *args: str, stdin: bytes | None = None) -> bytes:
        rc, out, err = await run_process(self.path, *self.global_args(), *args, stdin=stdin)
        if rc != 0:
            text = err.decode("utf-8", "replace")
            msg = runtime_error_message(text) or f"{self.name} {args[0]} exited with status {rc}"
            cls = ContainerNotExist if _is_not_exist(msg) else OCIRuntimeError
            raise cls(msg, stderr=text, returncode=rc)
        return out

    async def state(self, id: str) -> specs.State:
        """`runtime state`: status is created, running, paused or stopped."""
        return msgspec.json.decode(await self._run("state", id), type=specs.State)

    @traced(lambda self, id: f"{self.name} start", kind=PROCESS, leaf=True)
    async def start(self, id: str) -> None:
        """`runtime start`. runc's start only reads the container's exec fifo (runc init
        waits to exec the process until a reader opens it): Berth reads it itself, which
        saves a runc process (~6 ms here) on every start; `runc start` itself when the
        fifo is not there or the init died before writing to it (its error then)."""
        if os.path.basename(self.path) == "runc":
            state_dir = os.path.join(self.root, id)
            if await asyncio.to_thread(start_by_exec_fifo, state_dir):
                return
        await self._run("start", id)

    async def kill(self, id: str, signal: int = _signal.SIGTERM, all: bool = False) -> None:
        """Signal the container's init (or, with `all`, every process in its cgroup)."""
        args = ["kill", "--all", id, str(int(signal))] if all else ["kill", id, str(int(signal))]
        await self._run(*args)

    async def delete(self, id: str, force: bool = False) -> None:
        """Remove the runtime's state and cgroup; a container already gone is not an error."""
        try:
            await self._run("delete", "--force", id) if force else await self._run("delete", id)
        except ContainerNotExist:
            pass

    async def delete_stopped(self, id: str) -> None:
        """delete(force=True) of a container whose process has exited (its monitor is
        gone): for runc done in-process when that is all runc would do
        (delete_stopped_in_place), which saves a runc process (~5 ms of CPU) on every
        exit; `runc delete --force` otherwise."""
        in_place = os.path.basename(self.path) == "runc"
        if in_place and await asyncio.to_thread(delete_stopped_in_place, os.path.join(self.root, id)):
            return
        await self.delete(id, force=True)

    async def pause(self, id: str) -> None:
        await self._run("pause", id)

    async def resume(self, id: str) -> None:
        await self._run("resume", id)

    async def update(self, id: str, resources: specs.LinuxResources) -> None:
        """Change cgroup limits of a live container (`update --resources FILE`).

        A file, not `-`: crun opens /dev/stdin by name, which fails on a pipe where
        /proc/self/fd/0 cannot be reopened (a socket, or a daemon run by systemd)."""
        os.makedirs(self.root, 0o700, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f"update-{id[:12]}-", suffix=".json", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(msgspec.json.encode(resources))
            await self._run("update", "--resources", path, id)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def ps(self, id: str) -> list[int]:
        """Host pids of every process in the container."""
        out = await self._run("ps", "--format", "json", id)
        return msgspec.json.decode(out or b"[]", type=list[int] | None) or []

    async def list(self) -> list[specs.State]:
        out = await self._run("list", "--format", "json")
        return msgspec.json.decode(out or b"[]", type=list[specs.State] | None) or []

    async def run(self, id: str, bundle: str) -> int:
        """`runtime run` in the foreground with no stdio; returns the container's exit status.

        Only for probing: real containers are created through conmon.
        """
        rc, _, err = await run_process(
            self.path, *self.global_args(), "run", "--bundle", bundle, id, cwd=bundle)
        if rc != 0 and err:
            text = err.decode("utf-8", "replace")
            raise OCIRuntimeError(runtime_error_message(text), stderr=text, returncode=rc)
        return rc


_probe_lock = threading.Lock()
_probe_cache: dict[tuple[str, ...], str] = {}


def _probe_spec(rootfs: str, cgroup: str) -> specs.Spec:
    """A bundle that exercises what ours do (namespaces, cgroups, seccomp) and runs /bin/true
    from the host's own /usr, bind-mounted read-only (so we need no image)."""
    s = _spec.default_linux_spec()
    assert s.process is not None and s.linux is not None
    s.process.args = ["/bin/true"]
    s.process.env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    s.root = specs.Root(path=rootfs, readonly=True)
    s.linux.namespaces = [n for n in s.linux.namespaces if n.type != "network"]
    s.linux.cgroups_path = cgroup
    s.linux.seccomp = _spec.default_seccomp_profile(_spec.default_capabilities())
    binds = []
    for d in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.exists(d):
            binds.append(specs.Mount(destination=d, type="bind", source=os.path.realpath(d),
                                     options=["rbind", "ro", "rprivate"]))
    s.mounts = _spec.with_mounts(s.mounts, binds, shm_size=1 << 20)
    return s


async def probe_runtime(path: str, name: str, workdir: str) -> str | None:
    """Run a trivial container with `path`; None if it works, else the runtime's error."""
    base = tempfile.mkdtemp(prefix=f"probe-{name}-", dir=workdir)
    cid = "berth-probe-" + os.path.basename(base).rsplit("-", 1)[-1]
    rt = OCIRuntime(path, name, os.path.join(base, "state"))
    try:
        rootfs = os.path.join(base, "rootfs")
        os.mkdir(rootfs)
        with open(os.path.join(base, "config.json"), "wb") as f:
            f.write(specs.encode(_probe_spec(rootfs, "/" + cid)))
        try:
            rc = await rt.run(cid, base)
        except OCIRuntimeError as e:
            return str(e) or f"{name} failed"
        except OSError as e:
            return str(e)
        return None if rc == 0 else f"{name}: probe container exited with status {rc}"
    finally:
        with contextlib.suppress(OCIRuntimeError, OSError):
            await rt.delete(cid, force=True)
        shutil.rmtree(base, ignore_errors=True)


async def probe_default_runtime(candidates: tuple[str, ...] = ("crun", "runc"),
                                workdir: str | None = None) -> str:
    """Choose the default runtime at daemon start: the first candidate that can really run
    a container with cgroups here. crun 1.8 refuses hybrid cgroup v1/v2 hosts ("cgroups in
    hybrid mode not supported") though `crun --version` works, hence a real run. Returns
    the runtime's path; the answer is cached for the process. Raises errdefs.System with
    every candidate's error when none works.
    """
    key = tuple(candidates)
    with _probe_lock:
        if key in _probe_cache:
            return _probe_cache[key]
    paths = {cand: cand if os.path.isabs(cand) else shutil.which(cand) for cand in candidates}
    remembered = _remembered_probe(workdir, paths)
    if remembered is not None:
        with _probe_lock:
            _probe_cache[key] = remembered
        return remembered
    errors = []
    for cand in candidates:
        path = paths[cand]
        if path is None:
            errors.append(f"{cand}: not found")
            continue
        err = await probe_runtime(path, os.path.basename(cand), workdir or tempfile.gettempdir())
        if err is None:
            with _probe_lock:
                _probe_cache[key] = path
            _remember_probe(workdir, paths, path)
            return path
        errors.append(f"{cand}: {err}")
    raise errdefs.System("no usable OCI runtime: " + "; ".join(errors))


# The probe runs one or two containers (tens of ms); a daemon restarted after a crash asks
# the same question of the same binaries on the same boot. The answer is kept in the exec
# root (a tmpfs, emptied at boot), tied to the boot and to each candidate binary's identity:
# an upgraded or removed runtime, or a reboot (a new cgroup setup), probes again.
_PROBE_FILE = "default-runtime.json"


def _probe_identity(paths: dict[str, str | None]) -> list[Any]:
    ident: list[Any] = []
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            ident.append(f.read().strip())
    except OSError:
        ident.append("")
    for cand, path in sorted(paths.items()):
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        ident.append([cand, path, [st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size] if st else None])
    return ident


def _remembered_probe(workdir: str | None, paths: dict[str, str | None]) -> str | None:
    if not workdir:
        return None
    try:
        with open(os.path.join(workdir, _PROBE_FILE), "rb") as f:
            saved = json.loads(f.read())
        if saved["identity"] == _probe_identity(paths) and saved["path"] in paths.values():
            return str(saved["path"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _remember_probe(workdir: str | None, paths: dict[str, str | None], chosen: str) -> None:
    if not workdir:
        return
    data = json.dumps({"identity": _probe_identity(paths), "path": chosen}).encode()
    try:
        atomicfile.write_file(os.path.join(workdir, _PROBE_FILE), data, 0o600)
    except OSError as e:
        log.warning("remembering the default runtime: %s", e)
