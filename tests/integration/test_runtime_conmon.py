"""Integration tests for berth.runtime (conmon + runc/crun) against real processes (root).

Each container gets a `berthtest-` ID, a runtime --root and bundles under a private temp dir,
and a flat cgroup `/berth-test-<id>`, so nothing outside is touched; the fixture checks that
no process, mount or cgroup is left behind.
"""
from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from berth.runtime import conmon, k8sfile, oci, spec, specs

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runc") or not os.path.exists("/usr/bin/conmon")
    or not os.path.exists("/bin/busybox"),
    reason="needs root, runc, conmon and a static /bin/busybox")

APPLETS = ["sh", "echo", "true", "sleep", "cat", "grep", "wc", "printf"]


class Env:
    def __init__(self, base: str) -> None:
        self.base = base
        self.rootfs = os.path.join(base, "rootfs")
        self.exits = os.path.join(base, "exits")
        self.runtime = oci.OCIRuntime(shutil.which("runc") or "runc", "runc",
                                      os.path.join(base, "state"))
        self.conmon = conmon.Conmon()
        self.ids: list[str] = []
        self.pids: list[int] = []
        for d in ("bin", "proc", "sys", "dev", "etc", "tmp"):
            os.makedirs(os.path.join(self.rootfs, d))
        shutil.copy("/bin/busybox", os.path.join(self.rootfs, "bin", "busybox"))
        for a in APPLETS:
            os.symlink("busybox", os.path.join(self.rootfs, "bin", a))

    def bundle(self, args: list[str], *, terminal: bool = False) -> tuple[str, str, specs.Spec]:
        cid = f"berthtest-{os.getpid()}-{len(self.ids)}"
        self.ids.append(cid)
        b = os.path.join(self.base, cid)
        os.makedirs(b)
        s = spec.default_linux_spec()
        assert s.process is not None and s.linux is not None
        s.process.args = args
        s.process.env = ["PATH=/bin", f"HOSTNAME={cid[:12]}"]
        s.process.terminal = terminal
        caps = spec.tweak_capabilities(spec.default_capabilities(), None, None, False)
        s.process.capabilities = spec.capabilities_for_user(caps, 0)
        s.root = specs.Root(path=self.rootfs)
        s.hostname = cid[:12]
        s.mounts = spec.with_mounts(s.mounts, [], shm_size=64 << 20)
        s.linux.cgroups_path = f"/berth-test-{cid}"
        s.linux.sysctl = spec.merge_sysctls(spec.default_sysctls(True))
        s.linux.seccomp = spec.default_seccomp_profile(caps)
        with open(os.path.join(b, "config.json"), "wb") as f:
            f.write(specs.encode(s))
        return cid, b, s

    async def create(self, args: list[str], **kw: object) -> tuple[conmon.ContainerProcess, specs.Spec]:
        cid, b, s = self.bundle(args, terminal=bool(kw.get("terminal", False)))
        c = await self.conmon.create_container(
            cid, b, self.runtime, exit_dir=self.exits, persist_dir=b,
            log_path=os.path.join(b, "ctr.log"), **kw)  # type: ignore[arg-type]
        self.pids += [c.pid, c.conmon_pid]
        return c, s


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ")[1][:1] != b"Z"
    except OSError:
        return False


@pytest.fixture
def env() -> Iterator[Env]:
    base = tempfile.mkdtemp(prefix="berthtest-rt-", dir="/tmp")
    e = Env(base)
    try:
        yield e
    finally:
        async def cleanup() -> None:
            for cid in e.ids:
                await e.runtime.delete(cid, force=True)
        asyncio.run(cleanup())
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in e.pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = [p for p in e.pids if _alive(p)]
        cgroups = [c for cid in e.ids for c in glob.glob(f"/sys/fs/cgroup/*/berth-test-{cid}")]
        with open("/proc/self/mountinfo") as f:
            mounts = [ln for ln in f if base in ln]
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"processes left behind: {left}"
        assert not cgroups, f"cgroups left behind: {cgroups}"
        assert not mounts, f"mounts left behind: {mounts}"


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_echo_hi_output_and_exit_code(env: Env) -> None:
    async def main() -> None:
        c, _ = await env.create(["sh", "-c", "echo hi; echo oops >&2; exit 7"])
        a = await c.attach()
        await c.start()
        chunks = []
        while (r := await a.read()) is not None:
            chunks.append(r)
        a.close()
        assert await c.wait_exit() == 7
        assert c.exit_code() == 7
        assert (1, b"hi\n") in chunks and (2, b"oops\n") in chunks
        await c.delete()
        with open(c.state.log_path, "rb") as f:
            lines = list(k8sfile.read_lines(f))
        assert [(ln.stream, ln.data) for ln in lines] == [("stdout", b"hi\n"), ("stderr", b"oops\n")]
    run(main())


def test_log_not_synced_at_exit_where_conmon_can_skip_it(env: Env) -> None:
    """conmon 2.1+ is told not to fsync the log at the exit (the file is Berth's own;
    dockerd's loggers sync nothing there); the output is all in it all the same."""
    helps = subprocess.run(["/usr/bin/conmon", "--help"], capture_output=True).stdout
    async def main() -> None:
        c, _ = await env.create(["sh", "-c", "echo last"])
        with open(f"/proc/{c.conmon_pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        assert (b"--no-sync-log" in args) == (b"--no-sync-log" in helps)
        await c.start()
        assert await c.wait_exit() == 0
        await c.delete()
        with open(c.state.log_path, "rb") as f:
            assert [ln.data for ln in k8sfile.read_lines(f)] == [b"last\n"]
    run(main())


def test_sleep_and_kill(env: Env) -> None:
    async def main() -> None:
        c, _ = await env.create(["sleep", "100"])
        await c.start()
        st = await env.runtime.state(c.id)
        assert (st.status, st.pid) == ("running", c.pid)
        assert await env.runtime.ps(c.id) == [c.pid]
        await env.runtime.pause(c.id)
        assert (await env.runtime.state(c.id)).status == "paused"
        await env.runtime.resume(c.id)
        await env.runtime.update(c.id, specs.LinuxResources(pids=specs.LinuxPids(limit=50)))
        assert c.exit_code() is None
        await env.runtime.kill(c.id, signal.SIGKILL)
        assert await asyncio.wait_for(c.wait_exit(), 10) == 137
        assert (await env.runtime.state(c.id)).status == "stopped"
        await c.delete()
        with pytest.raises(oci.ContainerNotExist, match="does not exist"):
            await env.runtime.state(c.id)
    run(main())


def test_reattach_after_daemon_restart(env: Env) -> None:
    async def first() -> str:
        c, _ = await env.create(["sh", "-c", "read x; echo got $x; exit 5"], stdin=True)
        await c.start()
        return c.state.persist_dir

    persist = run(first())  # the "daemon" (its event loop and objects) is gone now
    assert isinstance(persist, str)

    async def second() -> None:
        c = conmon.Conmon().reattach(persist)
        assert c.conmon_alive() and c.exit_code() is None
        assert (await c.runtime.state(c.id)).status == "running"
        a = await c.attach()
        await a.write(b"later\n")
        assert await a.read() == (1, b"got later\n")
        a.close()
        assert await asyncio.wait_for(c.wait_exit(), 10) == 5
        await c.delete()
    run(second())


def test_exec_and_default_security(env: Env) -> None:
    async def main() -> None:
        c, s = await env.create(["sleep", "100"])
        await c.start()
        assert s.process is not None
        proc = specs.Process(
            user=s.process.user, cwd="/", env=s.process.env, capabilities=s.process.capabilities,
            args=["sh", "-c", "grep -E 'Cap(Eff|Bnd)' /proc/self/status; "
                  "for p in /proc/kcore /proc/keys /proc/timer_list; do "
                  "[ -e $p ] && echo $p $(wc -c < $p); done; exit 3"])
        ex, stream = await env.conmon.exec(c, "exec1", proc, os.path.join(c.state.bundle, "exec1"))
        assert stream is not None
        out = b""
        while (r := await stream.read()) is not None:
            out += r[1]
        stream.close()
        assert await asyncio.wait_for(ex.wait_exit(), 10) == 3
        assert b"CapEff:\t00000000a80425fb" in out
        assert b"CapBnd:\t00000000a80425fb" in out
        # Masked paths read as /dev/null. This kernel has no /proc/kcore; check what exists.
        masked = [ln.split() for ln in out.splitlines() if ln.startswith(b"/proc/")]
        expected = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
        assert [m[0].decode() for m in masked] == expected
        assert all(m[1] == b"0" for m in masked)
        await env.runtime.kill(c.id, signal.SIGKILL)
        assert await c.wait_exit() == 137
        await c.delete()
    run(main())


def test_terminal_and_resize(env: Env) -> None:
    async def main() -> None:
        c, _ = await env.create(["sh", "-c", "echo tty"], terminal=True)
        a = await c.attach()
        c.resize(30, 100)
        await c.start()
        out = b""
        while (r := await a.read()) is not None:
            out += r[1]
        a.close()
        assert out == b"tty\r\n"
        assert await c.wait_exit() == 0
        await c.delete()
    run(main())


def test_create_failure_quotes_runtime(env: Env) -> None:
    async def main() -> None:
        with pytest.raises(oci.OCIRuntimeError, match="no-such-binary"):
            await env.create(["/bin/no-such-binary"])
    run(main())


def test_probe_default_runtime() -> None:
    path = run(oci.probe_default_runtime())
    assert isinstance(path, str) and os.path.basename(path) in ("crun", "runc")
    assert run(oci.probe_default_runtime()) == path  # cached
    assert not glob.glob("/sys/fs/cgroup/*/berth-probe-*")


def test_run_to_exit_speed(env: Env) -> None:
    """create + start + wait + delete of `true`; prints the numbers (see the report)."""
    async def once() -> float:
        t0 = time.perf_counter()
        c, _ = await env.create(["true"])
        await c.start()
        assert await c.wait_exit() == 0
        await c.delete()
        return (time.perf_counter() - t0) * 1000

    async def main() -> list[float]:
        return [await once() for _ in range(5)]
    times = run(main())
    assert isinstance(times, list)
    print(f"run-to-exit ms: {[round(t, 1) for t in times]}")
    assert min(times) < 500
