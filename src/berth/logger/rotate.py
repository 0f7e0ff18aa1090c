"""Size rotation of the log files conmon writes itself (moby v20.10.24
daemon/logger/loggerutils/logfile.go: checkCapacityAndRotate, rotate, compressFile): the
`local` driver's, and json-file's of a container an older Berth started. (json-file and the
dual-logging cache are written by the pump now, berth.logger.pump, which rotates as it
writes with berth.logger.copier.LogWriter, using `_shift` and `compress_file` from here.)

conmon writes the container's output, also while berthd is down, in the CRI (k8s-file) format
(berth.runtime.k8sfile): one `<time> <stream> <P|F> <data>` line per chunk. The file *names*
are dockerd's (berth.logger.config: `local-logs/container.log`, `.1`, `.2.gz`, ...).

How a rotation happens without stopping the writer:
- Next to the current file Berth keeps a second hard link, `.<name>.live`, to the inode
  conmon writes.
- When the file has reached max-size, Berth writes "2 0 0" (reopen the log) to conmon's
  control FIFO (conmon src/ctrl.c REOPEN_LOGS_EVENT → ctr_logging.c reopen_k8s_file): conmon
  closes the file and renames a new empty one over the current name. conmon also does this by
  itself when its `--log-size-max` is reached, the hard cap that holds while berthd is down.
- Either way, the inode at the current name changes and the old one lives on under the
  `.live` link: Berth moves it into `.1` (shifting `.1` → `.2`, ..., dropping the oldest, and
  gzipping `.1` with compress=true, with dockerd's `{"lastTime": ...}` gzip header), then
  links the new file. Nothing conmon wrote is lost, whoever reopened first.
- dockerd cuts before the first line that finds the file at max-size or more; a watcher
  that polls sees a burst late, so the old inode is cut into max-size pieces on those same
  line boundaries (`_pieces`), and when a container stops, its last file is cut the same way
  with the last piece staying current: the files then are those dockerd would have.
- conmon's own counter is not reset by our reopens, so its cap is set well above max-size
  (`backstop_size`): each time it fires it is just one more rotation.

Readers (daemon/logs.py) take `files_lock(path)` while they open the set of files, as
dockerd's readers hold its rotate lock.
"""
from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from ..runtime import k8sfile
from ..types import gojson
from .config import FILE_MODE, LogFileConfig, file_config, uses_pump

if TYPE_CHECKING:
    from ..container.container import Container
    from ..runtime.conmon import ContainerProcess

_T = TypeVar("_T")


class RotationDaemon(Protocol):
    """What the watcher needs of the daemon (which satisfies it): its containers and its
    I/O pool."""

    containers: dict[str, Container]

    async def run_blocking(self, fn: Callable[..., _T], *args: Any) -> _T: ...


log = logging.getLogger("berth.logger")

POLL_INTERVAL = 0.2  # seconds between size checks of running containers' logs
_REASK_AFTER = 2.0  # conmon did not reopen (busy or gone): ask again after this long
_MIN_BACKSTOP = 1 << 20

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def files_lock(path: str) -> threading.Lock:
    """The lock that orders rotations and readers opening the files of `path`."""
    with _locks_guard:
        lk = _locks.get(path)
        if lk is None:
            lk = _locks[path] = threading.Lock()
        return lk


def live_link(path: str) -> str:
    d, base = os.path.split(path)
    return os.path.join(d, f".{base}.live")


def backstop_size(cfg: LogFileConfig) -> int | None:
    """conmon's --log-size-max: a cap far enough above max-size that it only fires when
    berthd is not there to rotate (conmon counts every byte since it last fired itself)."""
    if cfg.max_size < 0:
        return None
    return max(cfg.max_size * max(cfg.max_files, 1), _MIN_BACKSTOP)


def _ino(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


class Piece(NamedTuple):
    start: int
    end: int
    last_time_ns: int


def _pieces(f: IO[bytes], cap: int) -> list[Piece]:
    """Cut the records of `f` where dockerd would have rotated: before a record that finds
    the file at `cap` bytes or more."""
    out: list[Piece] = []
    start = pos = acc = 0
    last = b""
    f.seek(0)
    for line in f:
        if acc >= cap and acc > 0:
            out.append(Piece(start, pos, _record_ns(last)))
            start, acc = pos, 0
        pos += len(line)
        acc += len(line)
        last = line
    if pos > start:
        out.append(Piece(start, pos, _record_ns(last)))
    return out


def _record_ns(raw: bytes) -> int:
    try:
        return k8sfile.parse_time(k8sfile.record_time(raw))
    except ValueError:
        return 0


def _copy_range(src: IO[bytes], start: int, end: int, dst: str) -> None:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        off = start
        while off < end:
            n = os.copy_file_range(src.fileno(), fd, end - off, off)
            if n <= 0:
                break
            off += n
    finally:
        os.close(fd)


def _shift(path: str, max_files: int, compress: bool) -> None:
    """rotate(): drop the oldest, then .N-1 → .N, ..., .1 → .2."""
    if max_files < 2:
        return
    ext = ".gz" if compress else ""
    try:
        os.unlink(f"{path}.{max_files - 1}{ext}")
    except FileNotFoundError:
        pass
    for i in range(max_files - 1, 1, -1):
        try:
            os.rename(f"{path}.{i - 1}{ext}", f"{path}.{i}{ext}")
        except FileNotFoundError:
            pass


def compress_file(src: str, last_time_ns: int) -> None:
    """compressFile: `src.gz` with Go's gzip header (no mtime, OS 255, the JSON
    `{"lastTime": ...}` as the extra field), then `src` goes."""
    extra = json.dumps({"lastTime": gojson.format_go_time(last_time_ns)}, separators=(",", ":")).encode()
    header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + len(extra).to_bytes(2, "little") + extra
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    crc = size = 0
    with open(src, "rb") as fin:
        fd = os.open(src + ".gz", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
        with os.fdopen(fd, "wb") as fout:
            fout.write(header)
            while chunk := fin.read(1 << 20):
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                fout.write(co.compress(chunk))
            fout.write(co.flush())
            fout.write(crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little"))
    os.unlink(src)


def gz_last_time(f: IO[bytes]) -> int | None:
    """The lastTime of a compressed rotated file's header (ns), None if it has none."""
    head = f.read(12)
    f.seek(0)
    if len(head) < 12 or head[:2] != b"\x1f\x8b" or not head[3] & 0x04:
        return None
    xlen = int.from_bytes(head[10:12], "little")
    f.seek(12)
    extra = f.read(xlen)
    f.seek(0)
    try:
        value = json.loads(extra).get("lastTime")
        return gojson.parse_go_time(value) if isinstance(value, str) else None
    except (ValueError, AttributeError):
        return None


def _push(cfg: LogFileConfig, src: str, last_time_ns: int) -> None:
    """One rotation of dockerd: shift, `src` becomes `.1` (even with max-file 1, where
    dockerd never reads it back), compressed when asked."""
    _shift(cfg.path, cfg.max_files, cfg.compress)
    first = f"{cfg.path}.1"
    os.replace(src, first)
    if cfg.compress and cfg.max_files > 1:
        compress_file(first, last_time_ns)


def _rotate_out(cfg: LogFileConfig, src: str) -> None:
    """All of `src` (a file nobody writes any more) into the rotated files."""
    with open(src, "rb") as f:
        pieces = _pieces(f, cfg.max_size)
        if len(pieces) > 1 and pieces[-1].end - pieces[-1].start < cfg.max_size:
            # The lines conmon wrote after the file reached max-size and before we asked
            # it to reopen: dockerd would have them at the start of the current file, which
            # conmon already writes again; rather than a short rotated file, they stay
            # with the piece before.
            prev, last = pieces[-2], pieces.pop()
            pieces[-1] = Piece(prev.start, last.end, last.last_time_ns)
        if not pieces:
            os.unlink(src)
            return
        if len(pieces) == 1:
            _push(cfg, src, pieces[0].last_time_ns)
            return
        tmp = f"{cfg.path}.rotating"
        for p in pieces[-max(1, cfg.max_files - 1):]:
            _copy_range(f, p.start, p.end, tmp)
            _push(cfg, tmp, p.last_time_ns)
    os.unlink(src)


def _take_live(cfg: LogFileConfig, cur: os.stat_result | None) -> bool:
    """If conmon has moved on to a new file, rotate the old one out. True if it did."""
    live = live_link(cfg.path)
    old = _ino(live)
    if old is None:
        return False
    if cur is not None and cur.st_ino == old.st_ino and cur.st_dev == old.st_dev:
        return False
    _rotate_out(cfg, live)
    return True


def _link_live(cfg: LogFileConfig) -> None:
    live = live_link(cfg.path)
    try:
        os.chmod(cfg.path, FILE_MODE)  # conmon makes its new files 0600; dockerd's are 0640
    except FileNotFoundError:
        return
    try:
        os.link(cfg.path, live)
    except FileExistsError:
        tmp = live + ".tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.link(cfg.path, tmp)
        os.replace(tmp, live)
    except FileNotFoundError:
        pass


def settle(cfg: LogFileConfig) -> None:
    """For a container nobody writes the log of (stopped, or about to start): finish a
    rotation conmon began, then cut the current file as dockerd's writes would have."""
    if cfg.max_size < 0:
        return
    with files_lock(cfg.path):
        cur = _ino(cfg.path)
        if not _take_live(cfg, cur):
            try:
                os.unlink(live_link(cfg.path))
            except FileNotFoundError:
                pass
        if cur is None or cur.st_size < max(cfg.max_size, 1):
            return
        with open(cfg.path, "rb") as f:
            pieces = _pieces(f, cfg.max_size)
            if len(pieces) <= 1:
                return
            tmp = f"{cfg.path}.rotating"
            for p in pieces[:-1][-max(1, cfg.max_files - 1):]:
                _copy_range(f, p.start, p.end, tmp)
                _push(cfg, tmp, p.last_time_ns)
            # The last piece stays current, in the same inode: a follower still holding it
            # (its offset is past the new end) must not take it for a new file to re-read.
            last = pieces[-1]
            f.seek(last.start)
            data = f.read(last.end - last.start)
        fd = os.open(cfg.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


def prepare(cfg: LogFileConfig, direct: bool = True) -> None:
    """Before conmon opens the file: the directory (local-logs is 0700 as dockerd's), the
    file with dockerd's mode, and any rotation left over from the last run (`direct`: conmon
    writes this file itself; a file the pump writes is always rotated already)."""
    d = os.path.dirname(cfg.path)
    os.makedirs(d, 0o700, exist_ok=True)
    if direct:
        settle(cfg)
    fd = os.open(cfg.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
    os.close(fd)


def started(cfg: LogFileConfig) -> None:
    """Once conmon has the file open: the `.live` link that keeps its inode for us."""
    if cfg.max_size < 0:
        return
    with files_lock(cfg.path):
        _link_live(cfg)


class _Asked(NamedTuple):
    ino: int
    at: float


def check_running(cfg: LogFileConfig, reopen: Callable[[], object], asked: dict[str, _Asked], key: str) -> None:
    """One look at a running container's log: finish a reopen conmon did, or ask for one
    when the file has reached max-size."""
    with files_lock(cfg.path):
        cur = _ino(cfg.path)
        if cur is None:
            return  # conmon is between close and rename; next time
        if _take_live(cfg, cur):
            asked.pop(key, None)
            _link_live(cfg)
            return
        if _ino(live_link(cfg.path)) is None:
            _link_live(cfg)
        if cur.st_size < max(cfg.max_size, 1):
            return
        prev = asked.get(key)
        now = time.monotonic()
        if prev is not None and prev.ino == cur.st_ino and now - prev.at < _REASK_AFTER:
            return
        asked[key] = _Asked(cur.st_ino, now)
    reopen()


def settle_container(ctr: Container) -> None:
    """After a container's exit (monitor.cleanup_and_checkpoint, container lock held, conmon gone): its
    log files as dockerd's writes would have left them."""
    lc = ctr.host_config.LogConfig
    if uses_pump(lc.Type):
        return  # the pump rotates as it writes (and may still be writing: never cut under it)
    try:
        cfg = file_config(ctr.root, ctr.ID, lc.Type, lc.Config)
    except Exception:  # it never started with these options
        return
    if cfg is not None and cfg.max_size >= 0:
        settle(cfg)


class RotationWatcher:
    """The daemon's one task that keeps every running container's log within max-size
    and settles the log of a container that stopped."""

    def __init__(self, d: RotationDaemon) -> None:
        self.d = d
        self._task: asyncio.Task[None] | None = None
        self._asked: dict[str, _Asked] = {}
        self._configs: dict[str, tuple[object, LogFileConfig | None]] = {}
        # IDs of containers whose process is monitored (monitor.watch): the only ones
        # looked at, so a tick costs nothing for the stopped containers of a big store.
        self._watched: set[str] = set()

    def watch(self, cid: str) -> None:
        self._watched.add(cid)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="log-rotation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def _config(self, ctr: Container) -> LogFileConfig | None:
        lc = ctr.host_config.LogConfig
        key = (lc.Type, tuple(sorted((lc.Config or {}).items())))
        hit = self._configs.get(ctr.ID)
        if hit is not None and hit[0] == key:
            return hit[1]
        try:
            cfg = file_config(ctr.root, ctr.ID, lc.Type, lc.Config)
        except Exception:  # a start would fail on it; nothing to rotate
            cfg = None
        if cfg is not None and cfg.max_size < 0:
            cfg = None
        self._configs[ctr.ID] = (key, cfg)
        return cfg

    def _snapshot(self) -> list[tuple[str, LogFileConfig, ContainerProcess]]:
        """The running containers whose log rotates (a stopped one is settled by
        `settle_container` from the exit cleanup, under the container lock)."""
        out = []
        for cid in list(self._watched):
            ctr = self.d.containers.get(cid)
            if ctr is None or ctr.process is None:  # removed, or its exit was handled
                self._watched.discard(cid)
                self._configs.pop(cid, None)
                self._asked.pop(cid, None)
                continue
            if not ctr.State.Running:
                continue
            cfg = self._config(ctr)
            if cfg is None:
                continue
            proc = ctr.process
            # (a process of an older Berth may write elsewhere: leave that one alone)
            if proc is not None and proc.state.log_path == cfg.path:
                out.append((ctr.ID, cfg, proc))
        return out

    def _tick(self, items: list[tuple[str, LogFileConfig, ContainerProcess]]) -> None:
        for cid, cfg, proc in items:
            try:
                check_running(cfg, proc.reopen_log, self._asked, cid)
            except Exception as e:  # one container must not stop the others
                log.warning("log rotation of %s: %s", cid, e)

    async def _loop(self) -> None:
        while True:
            items = self._snapshot()
            if items:
                try:
                    await self.d.run_blocking(self._tick, items)
                except Exception:  # keep watching
                    log.exception("log rotation")
            await asyncio.sleep(POLL_INTERVAL)


def open_gz(f: IO[bytes]) -> IO[bytes]:
    return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]  # a binary file object: read() is all callers use


__all__ = [
    "POLL_INTERVAL",
    "RotationWatcher",
    "backstop_size",
    "check_running",
    "compress_file",
    "files_lock",
    "gz_last_time",
    "live_link",
    "open_gz",
    "prepare",
    "settle",
    "settle_container",
    "started",
]
