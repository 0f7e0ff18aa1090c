"""From conmon's private record file to dockerd's log messages (moby v20.10.24
daemon/logger/copier.go, loggerutils/logfile.go).

conmon writes every container's output, also while berthd is down, as CRI records
(`<time> <stdout|stderr> <P|F> <data>`, berth.runtime.k8sfile) into a private file in the
container's directory. Berth reads that file as dockerd's copier reads the container's pipes
and hands each driver the messages dockerd's copier would: one per line without its newline;
a line of 16 KiB or more cut into 16384-byte partial messages (all stamped with the first
one's time, with a partial id and ordinal), the last piece marked `Last`; output the
container left without a newline, a partial message at the end.

`PrivateReader` remembers how far it got in `<file>.pos` (written after each batch is
delivered), so a restarted berthd carries on where the last one stopped: lines written while
berthd was down are delivered late, not lost, and lines delivered before are not delivered
again. The file is trimmed while the container runs by asking conmon to reopen it once it has
been read past `TRIM_AT` (a hard link `<file>.old` keeps the old inode until it is drained,
also across a restart).
"""
from __future__ import annotations

import json
import os
import secrets
from typing import IO, Any, NamedTuple, Protocol

from .. import errdefs  # noqa: F401 - typed errors for callers
from . import rotate
from .config import FILE_MODE, LogFileConfig
from .jsonlog import _parse_any

BUF_SIZE = 16 * 1024  # copier.go bufSize: dockerd's partial-message size
TRIM_AT = 8 << 20  # ask conmon for a fresh private file once this much has been read
_READ = 1 << 20  # bytes per batch


class Partial(NamedTuple):
    """backend.PartialLogMetaData."""

    id: str
    ordinal: int
    last: bool


class Message(NamedTuple):
    stream: bytes  # b"stdout" / b"stderr"
    ts: bytes  # conmon's time of the line's first record
    line: bytes  # without the newline
    partial: Partial | None = None

    @property
    def complete(self) -> bool:
        """The message ends a line (json-file then stores its newline)."""
        return self.partial is None or self.partial.last


class _Pending:
    __slots__ = ("buf", "emitted", "ordinal", "pid", "start", "ts")

    def __init__(self, ts: bytes, start: int) -> None:
        self.ts = ts
        self.buf = bytearray()
        self.pid = ""
        self.ordinal = 0
        self.start = start  # file offset of the line's first record
        self.emitted = 0  # bytes of the line already handed out as partial messages


class Splitter:
    """Records → messages, per stream, as copier.go cuts them."""

    def __init__(self) -> None:
        self.pending: dict[bytes, _Pending] = {}
        # On a resume: records before `replay_end` were delivered already, except the
        # ones of a line still pending then (stream → (its first offset, bytes to skip)).
        self.replay_end = 0
        self.replay: dict[bytes, tuple[int, int, str, int]] = {}

    def _cut(self, stream: bytes, p: _Pending, out: list[Message]) -> None:
        while len(p.buf) >= BUF_SIZE:
            chunk = bytes(p.buf[:BUF_SIZE])
            del p.buf[:BUF_SIZE]
            if not p.pid:
                p.pid = secrets.token_hex(32)
            p.ordinal += 1
            p.emitted += BUF_SIZE
            out.append(Message(stream, p.ts, chunk, Partial(p.pid, p.ordinal, False)))

    def feed(self, records: list[tuple[int, bytes]], out: list[Message]) -> None:
        pending = self.pending
        for off, raw in records:
            parts = raw[:-1].split(b" ", 3)
            if len(parts) < 3:
                continue
            ts, stream, flag = parts[0], parts[1], parts[2]
            if stream not in (b"stdout", b"stderr") or flag not in (b"P", b"F"):
                continue
            data = parts[3] if len(parts) == 4 else b""
            p = pending.get(stream)
            if off < self.replay_end:
                rp = self.replay.get(stream)
                if rp is None or off < rp[0]:
                    continue  # delivered before the restart
                start, skip, pid, ordinal = rp
                if p is None:
                    p = pending[stream] = _Pending(ts, start)
                    p.pid, p.ordinal, p.emitted = pid, ordinal, skip
                cut = min(skip, len(data))
                self.replay[stream] = (start, skip - cut, pid, ordinal)
                data = data[cut:]
            elif p is None:
                if flag == b"F" and len(data) < BUF_SIZE:
                    out.append(Message(stream, ts, data))  # the common case: a short line
                    continue
                p = pending[stream] = _Pending(ts, off)
            p.buf += data
            self._cut(stream, p, out)
            if flag == b"P":
                continue
            del pending[stream]
            meta = Partial(p.pid, p.ordinal + 1, True) if p.pid else None
            out.append(Message(stream, p.ts, bytes(p.buf), meta))

    def flush(self, out: list[Message]) -> None:
        """The container is gone: what it left without a newline, as a partial message."""
        for stream, p in self.pending.items():
            if p.buf:
                out.append(Message(stream, p.ts, bytes(p.buf),
                                   Partial(p.pid or secrets.token_hex(32), p.ordinal + 1, False)))
        self.pending.clear()

    def state(self, end: int) -> dict[str, Any]:
        """What a resume needs: where to re-read from, up to where lines were delivered,
        and the lines still pending."""
        pend = {s.decode(): [p.start, p.emitted, p.pid, p.ordinal] for s, p in self.pending.items()}
        resume = min([end] + [p.start for p in self.pending.values()])
        return {"resume": resume, "end": end, "pending": pend}

    def restore(self, st: dict[str, Any]) -> int:
        self.replay_end = int(st.get("end", 0))
        pend = st.get("pending") or {}
        self.replay = {k.encode(): (int(v[0]), int(v[1]), str(v[2]), int(v[3])) for k, v in pend.items()}
        return int(st.get("resume", 0))


def _ino(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


class FastPath(Protocol):
    def convert(self, chunk: bytes) -> bytes | None: ...

    def encode(self, msgs: list[Message]) -> bytes: ...


_P_AT = 42  # " P " after `<35-char UTC time> stdout` (stdout and stderr are both 6 long)


def _next_partial(data: bytes, pos: int, end: int) -> int:
    """Start of the next P record in data[pos:end], or -1."""
    i = data.find(b" P ", pos, end)
    while i >= 0:
        start = data.rfind(b"\n", 0, i) + 1
        if start >= pos and i - start == _P_AT:
            return start
        i = data.find(b" P ", i + 1, end)
    return -1


class PrivateReader:
    """Reads conmon's private file batch by batch, across trims and daemon restarts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.old = path + ".old"
        self.pos_path = path + ".pos"
        self.splitter = Splitter()
        self.f: IO[bytes] | None = None
        self.ino = 0
        self.off = 0  # offset just past the last complete record read
        self.asked_trim = False
        # the sink's file as the last commit left it, [inode, size] (Pump._open cuts back
        # to it what a daemon killed between a write and its commit wrote past it)
        self.saved_sink: tuple[int, int] | None = None
        self._open_at_resume()

    def _open_at_resume(self) -> None:
        try:
            with open(self.pos_path, "rb") as f:
                st = json.loads(f.read())
        except (FileNotFoundError, ValueError):
            st = None
        sink = st.get("sink") if isinstance(st, dict) else None
        if isinstance(sink, list) and len(sink) == 2 and all(isinstance(v, int) for v in sink):
            self.saved_sink = (sink[0], sink[1])
        old_ino, cur_ino = _ino(self.old), _ino(self.path)
        if st is not None and st.get("ino") in (old_ino, cur_ino):
            which = self.old if st["ino"] == old_ino else self.path
            self._open(which, self.splitter.restore(st))
            return
        # No usable position: everything that is there was never delivered.
        if old_ino is not None and old_ino != cur_ino:
            self._open(self.old, 0)
        else:
            self._open(self.path, 0)

    def _open(self, path: str, off: int) -> None:
        try:
            self.f = open(path, "rb")  # noqa: SIM115 - kept open while the container runs
        except FileNotFoundError:
            self.f, self.ino, self.off = None, 0, 0
            return
        self.ino = os.fstat(self.f.fileno()).st_ino
        self.off = off

    def read(self, final: bool = False,
             fast: FastPath | None = None) -> tuple[list[Message] | bytes, bool]:
        """The next messages (up to ~1 MiB of records) and whether more is waiting.
        `final`: conmon is gone, take everything and flush what has no newline.
        `fast`: the json-file sink's converters; its bytes are returned instead of messages."""
        out: list[Message] = []
        if self.f is None:
            self._open(self.path, 0)
            if self.f is None:
                if final:
                    self.splitter.flush(out)
                return out, False
        self.f.seek(self.off)
        data = self.f.read(_READ)
        end = data.rfind(b"\n") + 1
        more = len(data) == _READ
        if fast is not None and end > 0 and self.off >= self.splitter.replay_end:
            done = self._fast(data, end, fast)
            self.off += end
            if more or self._moved_on():
                return done, True
            if final:  # read to the end of the last file: what has no newline goes too
                rest: list[Message] = []
                self.splitter.flush(rest)
                if rest:
                    done += fast.encode(rest)
            return done, False
        records: list[tuple[int, bytes]] = []
        if end > 0:
            off = self.off
            raws = data[:end].split(b"\n")
            raws.pop()  # after the last newline
            for raw in raws:
                records.append((off, raw + b"\n"))
                off += len(raw) + 1
            self.off += end
        self.splitter.feed(records, out)
        if not more and self._moved_on():
            more = True
        elif not more and final:
            self.splitter.flush(out)
        return out, more

    def _records(self, data: bytes, start: int, end: int) -> list[tuple[int, bytes]]:
        out, off = [], self.off + start
        for raw in data[start:end].split(b"\n")[:-1]:
            out.append((off, raw + b"\n"))
            off += len(raw) + 1
        return out

    def _fast(self, data: bytes, end: int, fast: FastPath) -> bytes:
        """The json-file path: stretches of whole short lines converted in one regex pass,
        the records around a partial (P) one through the splitter, in file order."""
        out: list[bytes] = []
        pos = 0
        while pos < end:
            if self.splitter.pending:
                # feed line by line until the pending lines are complete
                nl = data.index(b"\n", pos) + 1
                msgs: list[Message] = []
                self.splitter.feed(self._records(data, pos, nl), msgs)
                if msgs:
                    out.append(fast.encode(msgs))
                pos = nl
                continue
            p = _next_partial(data, pos, end)
            stop = end if p < 0 else p
            if stop > pos:
                conv = fast.convert(data[pos:stop])
                if conv is None:
                    msgs = []
                    self.splitter.feed(self._records(data, pos, stop), msgs)
                    conv = fast.encode(msgs)
                out.append(conv)
            if p < 0:
                break
            nl = data.index(b"\n", p) + 1
            msgs = []
            self.splitter.feed(self._records(data, p, nl), msgs)
            if msgs:
                out.append(fast.encode(msgs))
            pos = nl
        return b"".join(out)

    def _moved_on(self) -> bool:
        """conmon moved on to a fresh file (a trim; it closed this one first) and this one
        is read to its end: it is complete, go on with the new one. Bytes after its last
        newline are a record conmon could not finish (a full disk): dropped."""
        if self.ino == _ino(self.path):
            return False
        assert self.f is not None
        self.f.close()
        self._open(self.path, 0)
        self.splitter.replay_end = 0
        for p in self.splitter.pending.values():
            # (a line cut by the trim resumes from the new file's start after a crash;
            # its part in the old file is then lost: one line at most, rarely)
            p.start = 0
        self.asked_trim = False
        return True

    def commit(self, sink: tuple[int, int] | None = None) -> None:
        """Record what was delivered (after the sinks have it) and, for a file sink, its
        file's inode and size: temp file and rename, no fsync — a machine crash loses the
        lines not yet on disk anyway."""
        st = self.splitter.state(self.off) | {"ino": self.ino}
        if sink is not None:
            st["sink"] = list(sink)
        tmp = self.pos_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(json.dumps(st).encode())
        os.replace(tmp, self.pos_path)
        if self.ino == _ino(self.path):
            try:
                if _ino(self.old) not in (None, self.ino):
                    os.unlink(self.old)  # drained
            except FileNotFoundError:
                pass

    def want_trim(self) -> bool:
        """Read far enough into the current file: keep its inode under `.old`, then the
        caller asks conmon to reopen."""
        if self.asked_trim or self.off < TRIM_AT or self.f is None or self.ino != _ino(self.path):
            return False
        tmp = self.old + ".tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.link(self.path, tmp)
        os.replace(tmp, self.old)
        self.asked_trim = True
        return True

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None

    def remove(self) -> None:
        """Everything was delivered and conmon is gone."""
        self.close()
        for p in (self.path, self.old, self.pos_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


class LogWriter:
    """loggerutils.LogFile's writing side: append entries, rotate before the entry that
    finds the file at max-size or more (dockerd's names, `.1`, `.2.gz`, ...)."""

    def __init__(self, cfg: LogFileConfig) -> None:
        self.cfg = cfg
        os.makedirs(os.path.dirname(cfg.path), 0o700, exist_ok=True)
        self.fd = os.open(cfg.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        self.size = os.fstat(self.fd).st_size
        self.last_ts = b""

    def mark(self) -> tuple[int, int]:
        """The current file's inode and size, for the pump's commit."""
        return os.fstat(self.fd).st_ino, self.size

    def cut_back(self, mark: tuple[int, int]) -> None:
        """Back to `mark` (a commit's): what was written after it was never committed, and
        the pump delivers it again. A file rotated since is left as it is."""
        ino, size = mark
        if os.fstat(self.fd).st_ino == ino and 0 <= size < self.size:
            os.ftruncate(self.fd, size)
            self.size = size

    def _append(self, data: bytes) -> None:
        """All of `data` or nothing: on an error (a full disk) the file is cut back to
        where it was, so that the pump's retry of the batch leaves no torn line."""
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                done += os.write(self.fd, view[done:])
        except OSError:
            if done:
                os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)

    def write(self, entries: list[bytes], times: list[bytes]) -> None:
        cap = self.cfg.max_size
        if cap < 0:
            if entries:
                self._append(b"".join(entries))
            return
        buf: list[bytes] = []
        pending = 0
        for data, ts in zip(entries, times, strict=True):
            if self.size + pending >= cap:
                if buf:
                    self._append(b"".join(buf))
                    buf, pending = [], 0
                self._rotate()
            buf.append(data)
            pending += len(data)
            self.last_ts = ts
        if buf:
            self._append(b"".join(buf))

    def write_raw(self, data: bytes) -> None:
        """Whole JSON lines from jsonlog.fast_lines (their times are in them)."""
        cap = self.cfg.max_size
        if cap < 0 or self.size + len(data) < cap:
            self._append(data)
            i = data.rfind(b'"time":"')
            if i >= 0:
                self.last_ts = data[i + 8:data.index(b'"', i + 8)]
            return
        # a rotation falls in this chunk: entry by entry, to cut where dockerd cuts
        entries = data.splitlines(keepends=True)
        times = []
        for e in entries:
            i = e.rfind(b'"time":"')
            times.append(e[i + 8:e.index(b'"', i + 8)])
        self.write(entries, times)

    def _rotate(self) -> None:
        last_ns = _parse_any(self.last_ts) if self.last_ts else 0
        with rotate.files_lock(self.cfg.path):
            os.close(self.fd)
            rotate._shift(self.cfg.path, self.cfg.max_files, self.cfg.compress)
            os.replace(self.cfg.path, self.cfg.path + ".1")
            self.fd = os.open(self.cfg.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                              FILE_MODE)
            self.size = 0
        if self.cfg.compress and self.cfg.max_files > 1:
            rotate.compress_file(self.cfg.path + ".1", last_ns)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


__all__ = ["BUF_SIZE", "LogWriter", "Message", "Partial", "PrivateReader", "Splitter"]
