"""The OTLP exporter runs in a child process of its own (berth.trace.exporter.main).

Turning spans into OTLP protobuf and POSTing them costs tens of microseconds per span
of Python. Done in a thread of the daemon, that work holds the GIL the event loop needs
(and a waiting thread gets it back only after the 5 ms switch interval), so every request
would pay for the export of the ones before. Here the daemon only packs each finished
operation (msgpack, a microsecond) into a non-blocking pipe, in the recorder's batches
(berth.trace.core.flush);
the child does the SDK part (berth.trace.otlp_sink) with every OTEL_* variable. If the child
falls behind and the pipe and a bounded buffer are full, operations are dropped
(counted, warned about once) rather than slowing the daemon. At EOF the child flushes
and exits, so a daemon that dies leaves no exporter behind.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import struct
import subprocess
import sys
from typing import Any

import msgspec

from .core import Operation

log = logging.getLogger("berth.trace")

MAX_BUFFER = 8 << 20  # bytes waiting for the child before operations are dropped
_HEAD = struct.Struct("!I")


def pack(op: Operation) -> list[Any]:
    columns = op.columns  # first: frozen now if not yet, with its wall clock
    return [op.wall, op.mono, op.status, op.remote_parent, op.containers, columns]


def unpack(raw: list[Any]) -> Operation:
    op = Operation.__new__(Operation)
    op.wall, op.mono, op.status, op.remote_parent, op.containers, columns = raw
    op.id, op.live, op.n = 0, [], 0
    names, parents, starts, ends, kinds, attrs, errors, indices = (tuple(c) for c in columns)
    op.columns = (names, parents, starts, ends, kinds, attrs, errors, indices)
    return op


class ExporterPipe:
    """The daemon's trace sink: operations to the exporter process."""

    def __init__(self) -> None:
        env = dict(os.environ)
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # `-c`, not `-m`: berth.trace imports this module, and runpy warns when the module
        # it is to run as __main__ was already imported by its package.
        self.proc = subprocess.Popen([sys.executable, "-c", "from berth.trace.exporter import main; main()"],
                                     stdin=subprocess.PIPE,
                                     env=env, close_fds=True)
        assert self.proc.stdin is not None
        self.fd = self.proc.stdin.fileno()
        os.set_blocking(self.fd, False)
        self.buf = bytearray()
        self.dropped = 0
        self.dead = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer = False
        self._enc = msgspec.msgpack.Encoder()

    def __call__(self, ops: list[Operation]) -> None:
        """A batch of finished operations: one encode, one write, one wake-up of the child
        (in the loop's thread: the recorder flushes there)."""
        if self.dead:
            return
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: written at once, or at shutdown
                pass
        if len(self.buf) > MAX_BUFFER:
            if not self.dropped:
                log.warning("the OTLP exporter falls behind: operations are dropped")
            self.dropped += len(ops)
        else:
            data = self._enc.encode([pack(op) for op in ops])
            self.buf += _HEAD.pack(len(data)) + data
        self._write()

    def _write(self) -> None:
        try:
            while self.buf:
                n = os.write(self.fd, self.buf)
                del self.buf[:n]
        except BlockingIOError:
            pass
        except OSError as e:
            log.warning("OTLP exporter process gone (%s): spans are no longer exported", e)
            self.buf.clear()
            self.dead = True
            self.proc.poll()  # reaped, not a zombie
            if self._writer and self._loop is not None:
                self._loop.remove_writer(self.fd)
                self._writer = False
            return
        loop = self._loop
        if loop is None:
            return
        if self.buf and not self._writer:
            loop.add_writer(self.fd, self._write)
            self._writer = True
        elif not self.buf and self._writer:
            loop.remove_writer(self.fd)
            self._writer = False

    def shutdown(self, timeout: float = 10) -> None:
        """Hand over what is left, close the pipe; the child flushes to the collector."""
        if self._writer and self._loop is not None:
            self._loop.remove_writer(self.fd)
            self._writer = False
        try:
            os.set_blocking(self.fd, True)
            if self.buf:
                os.write(self.fd, bytes(self.buf))
        except OSError:
            pass
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _read_exact(f: Any, n: int) -> bytes | None:
    out = b""
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def main() -> None:
    """The child: frames from stdin to the SDK's batch processor, until EOF."""
    # Late: the OpenTelemetry SDK and exporter (about 0.1 s to import) load in this child only.
    from .otlp_sink import OTLPSink

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon's ^C is for the daemon; we go at EOF
    # Telemetry runs on CPU nobody else wants: the daemon and the containers come first.
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sink = OTLPSink()
    dec = msgspec.msgpack.Decoder()
    stdin = sys.stdin.buffer
    try:
        while True:
            head = _read_exact(stdin, _HEAD.size)
            if head is None:
                break
            data = _read_exact(stdin, _HEAD.unpack(head)[0])
            if data is None:
                break
            for raw in dec.decode(data):
                try:
                    sink(unpack(raw))
                except Exception:  # one bad operation must not stop the export
                    log.exception("exporting an operation")
    finally:
        sink.shutdown()


if __name__ == "__main__":
    main()
