"""Unpack a layer tar into a directory, safely (moby/pkg/archive/archive.go Unpack,
createTarFile; moby/pkg/archive/diff.go UnpackLayer; moby/pkg/archive/archive_linux.go
overlayWhiteoutConverter; moby/pkg/chrootarchive).

dockerd unpacks inside a chroot of the target directory, so every name and every
symlink is resolved as if the layer were `/`: `../x` and `/x` both land in `<dir>/x`,
and a symlink to `/etc` followed by `link/passwd` writes `<dir>/etc/passwd` (or fails
with ENOENT) but never touches the host. Berth reproduces that with RESOLVE_IN_ROOT
(see scopedpath.py) and reports failures with the same text as dockerd's
re-exec'd unpacker: `Error processing tar file(exit status 1): open /lnk/x: no such
file or directory`.

Whiteouts: with `whiteouts="overlay"` (overlay2) `.wh.NAME` becomes a 0/0 character
device and `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory; with
`whiteouts="apply"` (vfs, where each layer is a full copy of its parent) they are
carried out as deletions, as UnpackLayer does; `whiteouts="keep"` writes them as
plain files (chrootarchive.Untar of an image archive).
"""
from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

try:  # ISA-L's inflate: 2-3x zlib's speed on layer blobs, same streams and errors
    from isal import igzip as _igzip
    from isal import isal_zlib as _isal_zlib

    _GzipFile: Any = _igzip.IGzipFile
    _INFLATE_ERRORS: tuple[Any, ...] = (zlib.error, _isal_zlib.error)
except ImportError:  # pragma: no cover - isal is a dependency; a bare checkout still unpacks
    _GzipFile = gzip.GzipFile
    _INFLATE_ERRORS = (zlib.error,)

import zstandard

from .. import errdefs
from . import tarsplit
from .scopedpath import open_in_root

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE_DIR = ".wh..wh..opq"

_CHUNK = 1 << 20


@dataclass
class ApplyResult:
    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    size: int  # sum of the entries' sizes (UnpackLayer's count)
    disk_size: int | None = None  # directory_size(dest) when dest started empty and nothing was removed


def go_errno_text(err: OSError) -> str:
    """Go's syscall.Errno text: the C strerror with a lowercase first letter."""
    text = os.strerror(err.errno) if err.errno else str(err)
    return text[:1].lower() + text[1:]


def decompress_stream(raw: BinaryIO) -> BinaryIO:
    """moby/pkg/archive DecompressStream: gzip, bzip2 and xz by magic, else the stream as is.

    zstd is recognised as dockerd 23+ does (moby PR #41759; 20.10 took it for a tar and
    failed): a deliberate difference, so registries serving zstd layers can be pulled.
    """
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, 32768)  # type: ignore[type-var]  # any readable binary stream serves
    head = buffered.peek(6)[:6]
    if head.startswith(b"\x1f\x8b\x08"):
        return _GzipFile(fileobj=buffered, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(buffered, "rb")  # type: ignore[return-value]  # a binary file object: read() is all callers use
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(buffered, "rb")  # type: ignore[return-value]  # a binary file object: read() is all callers use
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered


class _ApplyError(Exception):
    """An unpack failure already worded as Go would word it."""


class _WriteFailed(Exception):
    """A file's content could not be written (a full disk): `write /<name>: ...` once the
    entry's name is known."""

    def __init__(self, err: OSError) -> None:
        super().__init__(str(err))
        self.err = err


def _write(fd: int, data: memoryview) -> int:
    try:
        return os.write(fd, data)
    except OSError as e:
        raise _WriteFailed(e) from None


def _path_error(op: str, name: str, err: OSError) -> _ApplyError:
    return _ApplyError(f"{op} /{name}: {go_errno_text(err)}")


def _clean(name: str) -> str:
    """filepath.Clean(filepath.Join("/", name)) without the leading slash: "" is the root."""
    return posixpath.normpath("/" + name.lstrip("/")).lstrip("/")


def _mkdir_all(root_fd: int, rel: str) -> None:
    """MkdirAll(0755) inside the root, following symlinks in scope as the chroot would."""
    if not rel:
        return
    try:
        os.close(open_in_root(root_fd, rel, os.O_RDONLY | os.O_DIRECTORY))
        return
    except FileNotFoundError:
        pass
    except NotADirectoryError as e:
        raise _path_error("mkdir", rel, e) from None
    parent, _, base = rel.rpartition("/")
    _mkdir_all(root_fd, parent)
    pfd = open_in_root(root_fd, parent or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.mkdir(base, 0o755, dir_fd=pfd)
    except FileExistsError:
        pass
    except OSError as e:
        raise _path_error("mkdir", rel, e) from None
    finally:
        os.close(pfd)


def _remove_all(dir_fd: int, name: str) -> bool:
    """os.RemoveAll of one entry of `dir_fd` (never following symlinks); False if there was none."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return True
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            _remove_all(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
    return True


_ZERO_BLOCK = bytes(512)
_HEADER_ONLY = frozenset(b"123456")  # link, symlink, chr, blk, dir, fifo: no payload (Go's isHeaderOnlyType)
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_EXTENSIONS = frozenset(b"xgLK")  # PAX local/global headers, GNU long name/link
_MAX_SPECIAL = 1 << 20  # Go's maxSpecialFileSize: the most a PAX or GNU long-name block may hold
_MAX_OPEN_DIRS = 256


class _HeaderError(Exception):
    """archive/tar: invalid tar header."""


class _Truncated(Exception):
    """unexpected EOF."""


class _Sparse(Exception):
    """A GNU or PAX sparse entry: Python's tar reader takes over from its first header block."""


def _num(field: bytes) -> int:
    """Go's parseNumeric: base-256 when the top bit is set, else octal with space/NUL padding."""
    if field[:1] and field[0] & 0x80:
        inv = 0xFF if field[0] & 0x40 else 0
        x = 0
        for i, c in enumerate(field):
            c ^= inv
            x = x << 8 | (c & 0x7F if i == 0 else c)
        if x >> 63:
            raise _HeaderError
        return ~x if inv else x
    digits = field.strip(b" \x00")
    cut = digits.find(0)  # parseString: up to the first NUL
    if cut >= 0:
        digits = digits[:cut]
    if not digits:
        return 0
    if digits.strip(b"01234567"):  # strconv.ParseUint(s, 8, 64): octal digits only
        raise _HeaderError
    return int(digits, 8)


def _cstr(b: bytes) -> str:
    i = b.find(0)
    return (b if i < 0 else b[:i]).decode("utf-8", "surrogateescape")


def _check_sum(blk: bytes) -> None:
    """The header checksum, unsigned or signed (Go accepts either)."""
    want = _num(blk[148:156])
    if want == sum(blk) - sum(blk[148:156]) + 256:
        return
    if want != sum(struct.unpack("148b8x356b", blk)) + 256:
        raise _HeaderError


def _parse_pax(data: bytes) -> dict[str, str]:
    """PAX records ("%d %s=%s\\n"); a malformed one is an invalid header, as in Go's parsePAX."""
    out: dict[str, str] = {}
    while data:
        sp = data.find(b" ")
        try:
            n = int(data[:sp]) if sp > 0 else 0
        except ValueError:
            n = 0
        if n <= sp + 1 or n > len(data) or data[n - 1] != 0x0A:
            raise _HeaderError
        key, eq, value = data[sp + 1:n - 1].partition(b"=")
        if not eq:
            raise _HeaderError
        k = key.decode("utf-8", "surrogateescape")
        if k.startswith("GNU.sparse."):
            raise _Sparse
        v = value.decode("utf-8", "surrogateescape")
        if "\x00" in k or (k in ("path", "linkpath", "uname", "gname") and "\x00" in v):
            raise _HeaderError  # Go's validPAXRecord
        out[k] = v
        data = data[n:]
    return out


def _tarinfo(blk: bytes, pax: dict[str, str] | None, long_name: str | None, long_link: str | None) -> tarfile.TarInfo:
    """The entry a header block describes, its PAX and GNU extensions applied (Go's readHeader, Next)."""
    m = tarfile.TarInfo()
    name = _cstr(blk[0:100])
    magic = blk[257:263]
    if magic == b"ustar\x00":  # POSIX ustar/PAX: the name may be split into prefix/name
        prefix = _cstr(blk[345:500])
        if prefix:
            name = prefix + "/" + name
    m.mode = _num(blk[100:108])
    m.uid = _num(blk[108:116])
    m.gid = _num(blk[116:124])
    m.size = _num(blk[124:136])
    m.mtime = _num(blk[136:148])
    m.type = blk[156:157]
    m.linkname = _cstr(blk[157:257])
    if magic[:5] == b"ustar":  # ustar and GNU have device numbers; V7 has padding there
        m.devmajor = _num(blk[329:337])
        m.devminor = _num(blk[337:345])
    if pax:
        m.pax_headers = pax
        try:
            if pax.get("path"):
                name = pax["path"]
            if pax.get("linkpath"):
                m.linkname = pax["linkpath"]
            if pax.get("size"):
                m.size = int(pax["size"])
            if pax.get("uid"):
                m.uid = int(pax["uid"])
            if pax.get("gid"):
                m.gid = int(pax["gid"])
            if pax.get("mtime"):
                m.mtime = float(pax["mtime"])
        except ValueError:
            raise _HeaderError from None
    if long_name is not None:
        name = long_name
    if long_link is not None:
        m.linkname = long_link
    if m.type == tarfile.AREGTYPE and name.endswith("/"):
        m.type = tarfile.DIRTYPE
    m.name = name
    return m


class _Source:
    """The decompressed layer read in large chunks: every byte digested (the diff ID), header
    blocks, extension data and padding kept in `raw` for the tar-split, payloads written
    straight into their files (not kept: the tar-split names the file instead)."""

    def __init__(self, src: BinaryIO) -> None:
        self.src = src
        self.digest = hashlib.sha256()
        self.buf = b""
        self.off = 0
        self.pos = 0  # bytes consumed
        self.raw = bytearray()
        self.entry_start = 0  # where in `raw` the current entry's first header block is

    def _fill(self) -> bool:
        data = self.src.read(_CHUNK)
        if not data:
            return False
        self.digest.update(data)
        self.buf = self.buf[self.off:] + data if self.off < len(self.buf) else data
        self.off = 0
        return True

    def block(self, n: int, eof_ok: bool = False) -> bytes | None:
        """The next n bytes (kept); None when the stream ends cleanly here and `eof_ok`."""
        while len(self.buf) - self.off < n:
            if not self._fill():
                if eof_ok and self.off == len(self.buf):
                    return None
                raise _Truncated
        b = self.buf[self.off:self.off + n]
        self.off += n
        self.pos += n
        self.raw += b
        return b

    def copy(self, fd: int, n: int) -> None:
        """The next n bytes into `fd` (a payload: not kept)."""
        while n:
            if self.off == len(self.buf) and not self._fill():
                raise _Truncated
            k = min(n, len(self.buf) - self.off)
            view = memoryview(self.buf)[self.off:self.off + k]
            while view:
                view = view[_write(fd, view):]
            self.off += k
            self.pos += k
            n -= k

    def skip(self, n: int, keep: bool, split: tarsplit.Writer) -> None:
        while n:
            if self.off == len(self.buf) and not self._fill():
                raise _Truncated
            k = min(n, len(self.buf) - self.off)
            if keep:
                self.raw += self.buf[self.off:self.off + k]
                if len(self.raw) > _CHUNK:
                    self.flush(split)
            self.off += k
            self.pos += k
            n -= k

    def flush(self, split: tarsplit.Writer) -> None:
        split.raw(bytes(self.raw))
        self.raw.clear()

    def rest(self, split: tarsplit.Writer) -> None:
        """Whatever follows the end of the archive: read (the diff ID covers it) and kept."""
        while self.off < len(self.buf) or self._fill():
            self.raw += self.buf[self.off:]
            self.pos += len(self.buf) - self.off
            self.off = len(self.buf)
            self.flush(split)
        self.flush(split)  # the last headers and the end blocks, when nothing follows them

    def unread(self, head: bytes) -> None:
        """Put back bytes already consumed (and digested): the reader that takes over starts there."""
        self.buf = head + self.buf[self.off:]
        self.off = 0

    def read(self, n: int = -1) -> bytes:
        """File-like reading of what is left, for the tar reader that takes over."""
        if self.off == len(self.buf) and not self._fill():
            return b""
        k = len(self.buf) - self.off if n is None or n < 0 else min(n, len(self.buf) - self.off)
        b = self.buf[self.off:self.off + k]
        self.off += k
        return b

    def readable(self) -> bool:
        return True


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777  # unknown: every regular file gets its chmod


class _Unpacker:
    """Creates the entries. Directory fds are kept open by path (layers list a directory's
    entries together), each resolved once inside the root; any removal forgets them all, as
    a removed directory or one replaced by a symlink resolves differently afterwards."""

    def __init__(self, root_fd: int, whiteouts: str, copy: Callable[[int, tarfile.TarInfo], None]) -> None:
        self.root_fd = root_fd
        self.whiteouts = whiteouts
        self.copy = copy
        self.size = 0
        self.tree_size: int | None = 0  # what directory_size would count, while nothing was removed
        self.dirs: list[tuple[str, float]] = []
        self.unpacked: set[str] = set()
        self._fds: dict[str, int] = {}
        self._umask = _umask()
        self._acl = False  # a default ACL was set: created files' modes are not just mode & ~umask

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _dir_fd(self, rel: str) -> int:
        fd = self._fds.get(rel)
        if fd is None:
            if len(self._fds) >= _MAX_OPEN_DIRS:
                self.close()
            fd = open_in_root(self.root_fd, rel or ".", os.O_RDONLY | os.O_DIRECTORY)
            self._fds[rel] = fd
        return fd

    def _removed(self, keep: int) -> None:
        """Something under the directory `keep` was removed: forget every other resolution."""
        self.tree_size = None
        for rel, fd in list(self._fds.items()):
            if fd != keep:
                os.close(fd)
                del self._fds[rel]

    def entry(self, m: tarfile.TarInfo, name: str) -> None:
        is_reg = m.type in _REGULAR
        self.size += m.size if is_reg else 0
        parent, _, base = name.rpartition("/")
        if name.startswith(WHITEOUT_META_PREFIX) and name != WHITEOUT_OPAQUE_DIR and self.whiteouts != "keep":
            return  # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): never unpacked, as UnpackLayer.
        if parent and parent not in self._fds:
            _mkdir_all(self.root_fd, parent)
        if base.startswith(WHITEOUT_PREFIX) and self.whiteouts != "keep":
            self._whiteout(parent, base, m)
            return
        if not name:
            return  # the root itself: dockerd's Unpack skips a "." entry when the root exists
        self._create(m, name, parent, base)
        self.unpacked.add(name)

    def _whiteout(self, dirname: str, base: str, m: tarfile.TarInfo) -> None:
        pfd = self._dir_fd(dirname)
        if base == WHITEOUT_OPAQUE_DIR:
            if self.whiteouts == "overlay":
                try:
                    os.setxattr(pfd, "trusted.overlay.opaque", b"y")
                except OSError as e:
                    raise _ApplyError(f'setxattr("/{dirname}", trusted.overlay.opaque=y): {go_errno_text(e)}') from None
                return
            prefix = dirname + "/" if dirname else ""
            for child in os.listdir(pfd):
                if prefix + child not in self.unpacked and _remove_all(pfd, child):
                    self._removed(pfd)
            return
        original = base[len(WHITEOUT_PREFIX):]
        if _remove_all(pfd, original):
            self._removed(pfd)
        if self.whiteouts == "overlay":
            try:
                os.mknod(original, stat.S_IFCHR, 0, dir_fd=pfd)
            except OSError as e:
                orig = (dirname + "/" if dirname else "") + original
                raise _ApplyError(f'failed to mknod("/{orig}", S_IFCHR, 0): {go_errno_text(e)}') from None
            try:
                os.chown(original, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            except OverflowError:
                raise _ApplyError(f"lchown /{dirname + '/' if dirname else ''}{original}: invalid argument") from None

    def _replace(self, pfd: int, base: str, make: Callable[[], Any]) -> Any:
        """make() the entry; one already there is removed first (Unpack's RemoveAll), a
        directory kept for a directory."""
        try:
            return make()
        except FileExistsError:
            if _remove_all(pfd, base):
                self._removed(pfd)
            return make()

    def _create(self, m: tarfile.TarInfo, name: str, parent: str, base: str) -> None:
        try:
            pfd = self._dir_fd(parent)
        except OSError as e:
            # Go reports the failure on the call that creates the entry.
            if m.issym():
                raise _ApplyError(f"symlink {m.linkname} /{name}: {go_errno_text(e)}") from None
            if m.islnk():
                raise _ApplyError(f"link /{_clean(m.linkname)} /{name}: {go_errno_text(e)}") from None
            raise _path_error("mkdir" if m.isdir() else "open" if m.isreg() else "mknod", name, e) from None
        mode = m.mode & 0o7777
        try:
            if m.isreg():
                fd = self._replace(pfd, base, lambda: os.open(
                    base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=pfd))
                try:
                    self.copy(fd, m)
                    self._file_metadata(m, fd, name, mode)
                except _WriteFailed as e:  # the chroot'd untar's *os.PathError, as dockerd quotes it
                    raise _path_error("write", name, e.err) from None
                finally:
                    os.close(fd)
                if self.tree_size is not None:
                    self.tree_size += m.size
                return
            if m.isdir():
                try:
                    os.mkdir(base, mode, dir_fd=pfd)
                except FileExistsError:
                    if not stat.S_ISDIR(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode):
                        self._replace(pfd, base, lambda: os.mkdir(base, mode, dir_fd=pfd))
            elif m.issym():
                self._replace(pfd, base, lambda: os.symlink(m.linkname, base, dir_fd=pfd))
                if self.tree_size is not None:
                    self.tree_size += len(os.fsencode(m.linkname))
            elif m.islnk():
                self._replace(pfd, base, lambda: self._hardlink(m, pfd, base, name))
            elif m.ischr() or m.isblk() or m.isfifo():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
                dev = os.makedev(m.devmajor, m.devminor) if not m.isfifo() else 0
                self._replace(pfd, base, lambda: os.mknod(base, mode | kind, dev, dir_fd=pfd))
            else:
                raise _ApplyError(f"unhandled tar header type {m.type[0] if m.type else 0}")
        except (_ApplyError, gzip.BadGzipFile):  # a bad stream while copying is the stream's error
            raise
        except OSError as e:
            op = "mkdir" if m.isdir() else "symlink" if m.issym() else "mknod" if not m.isreg() else "open"
            if m.issym():
                raise _ApplyError(f"symlink {m.linkname} /{name}: {go_errno_text(e)}") from None
            raise _path_error(op, name, e) from None
        self._metadata(m, pfd, base, name)

    def _hardlink(self, m: tarfile.TarInfo, pfd: int, base: str, name: str) -> None:
        target = _clean(m.linkname)
        try:
            tparent, _, tbase = target.rpartition("/")
            tfd = self._dir_fd(tparent)
            os.link(tbase or ".", base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError as e:
            raise _ApplyError(f"link /{target} /{name}: {go_errno_text(e)}") from None

    def _xattrs(self, m: tarfile.TarInfo, target: int | str, name: str) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr."):]
            if "posix_acl" in attr:
                self._acl = True
            try:
                os.setxattr(target, attr, value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=isinstance(target, int))  # an fd, or a path not followed
            except OSError as e:
                # Not every filesystem takes every xattr; dockerd ignores ENOTSUP and EPERM here.
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise _ApplyError(f"lsetxattr /{name}: {go_errno_text(e)}") from None

    def _file_metadata(self, m: tarfile.TarInfo, fd: int, name: str, mode: int) -> None:
        """_metadata for a regular file, on its open fd. The chmod is skipped where the create
        already gave the exact mode (no umask bit in it, no set-id or sticky bit, which a chown
        clears or a create may not set, no default ACL in play)."""
        try:
            os.fchown(fd, m.uid, m.gid)
        except OSError as e:
            raise _ApplyError(f"lchown /{name}: {go_errno_text(e)}") from None
        except OverflowError:  # a negative id (base-256 allows them)
            raise _ApplyError(f"lchown /{name}: invalid argument") from None
        if m.pax_headers:
            self._xattrs(m, fd, name)
        if mode & 0o7000 or mode & self._umask or self._acl:
            os.fchmod(fd, mode)
        os.utime(fd, (m.mtime, m.mtime))

    def _metadata(self, m: tarfile.TarInfo, pfd: int, base: str, name: str) -> None:
        """createTarFile after creation: Lchown, xattrs, chmod (not symlinks), times (dirs later)."""
        try:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise _ApplyError(f"lchown /{name}: {go_errno_text(e)}") from None
        except OverflowError:
            raise _ApplyError(f"lchown /{name}: invalid argument") from None
        if m.pax_headers:
            self._xattrs(m, f"/proc/self/fd/{pfd}/{base}", name)
        if m.islnk():
            return  # shares the target's inode; dockerd re-applies the target's own mode only
        if not m.issym():
            os.chmod(base, m.mode & 0o7777, dir_fd=pfd)
        if m.isdir():
            self.dirs.append((name, float(m.mtime)))
            return
        os.utime(base, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory times last: creating their children changed them (Unpack's `dirs` loop)."""
        for name, mtime in self.dirs:
            parent, _, base = name.rpartition("/")
            try:
                os.utime(base, (mtime, mtime), dir_fd=self._dir_fd(parent), follow_symlinks=False)
            except OSError:
                pass


def _read_fast(src: _Source, split: tarsplit.Writer, unpacker: _Unpacker) -> None:
    """The tar stream, parsed as Go's archive/tar reads it; a sparse entry hands over to
    Python's tar reader from its first header block."""
    while True:
        src.entry_start = len(src.raw)
        pax: dict[str, str] | None = None
        long_name = long_link = None
        while True:
            blk = src.block(512, eof_ok=pax is None and long_name is None and long_link is None)
            if blk is None:
                return
            if blk == _ZERO_BLOCK:
                blk = src.block(512, eof_ok=True)
                if blk is None or blk == _ZERO_BLOCK:
                    return
                raise _HeaderError  # a zero block and then a header
            _check_sum(blk)
            typ = blk[156]
            if typ not in _EXTENSIONS:
                break
            n = _num(blk[124:136])
            for a, b in ((100, 108), (108, 116), (116, 124), (136, 148)):  # Go parses them in every header
                _num(blk[a:b])
            if n > _MAX_SPECIAL:
                raise _ApplyError("archive/tar: header field too long")
            data = src.block(n + (-n % 512))
            assert data is not None
            if typ == 0x78:  # x
                pax = _parse_pax(data[:n])
            elif typ == 0x4C:  # L
                long_name = _cstr(data[:n])
            elif typ == 0x4B:  # K
                long_link = _cstr(data[:n])
            # g: a global header; Go hands it over as an entry and Unpack ignores it
        if typ == 0x53:  # S: GNU sparse
            raise _Sparse
        m = _tarinfo(blk, pax, long_name, long_link)
        name = _clean(m.name)
        is_reg = m.type in _REGULAR
        payload = 0 if typ in _HEADER_ONLY else m.size
        if is_reg and m.size:
            src.flush(split)
            split.file(name, m.size)
        start = src.pos
        unpacker.entry(m, name)
        left = payload - (src.pos - start)
        if left:
            src.skip(left, not is_reg, split)
        if payload % 512:
            src.skip(-payload % 512, True, split)


def _read_tarfile(src: _Source, split: tarsplit.Writer, unpacker: _Unpacker) -> None:
    """From a sparse entry on, Python's tar reader (it expands GNU and PAX sparse files)."""
    rec = tarsplit.RecordingReader(src)  # type: ignore[arg-type]  # read() is all it needs
    tf: tarfile.TarFile | None = tarfile.open(fileobj=rec, mode="r|", bufsize=tarfile.RECORDSIZE)  # type: ignore[call-overload]  # noqa: SIM115 - the stream is read entry by entry below

    def copy(fd: int, m: tarfile.TarInfo) -> None:
        assert tf is not None
        f = tf.extractfile(m)
        assert f is not None
        while chunk := f.read(_CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[_write(fd, view):]

    unpacker.copy = copy
    prev_end = 0
    while tf is not None and (m := tf.next()) is not None:
        name = _clean(m.name)
        is_reg = m.type in _REGULAR
        split.raw(rec.take(prev_end, m.offset_data))
        prev_end = m.offset_data + (m.size if is_reg else 0)
        if is_reg and m.size:
            rec.skip(m.offset_data, prev_end)
            split.file(name, m.size)
        unpacker.entry(m, name)
        tf.members = []  # type: ignore[attr-defined]  # stream mode: do not keep every TarInfo
    rec.skip(0, 0)
    rec.drain()
    split.raw(rec.take(prev_end, rec.pos))


def apply_layer(stream: BinaryIO, dest: str, whiteouts: str, split_path: str | None) -> ApplyResult:
    """Unpack the (possibly compressed) layer tar `stream` into `dest`, writing its tar-split.

    The whole stream is read (trailing padding included, as dockerd drains it) so
    that the diff ID is the digest of exactly what was sent. Any failure raises
    errdefs.System with dockerd's wording; the caller removes `dest`.
    """
    split = tarsplit.Writer(split_path or os.devnull)
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    unpacker: _Unpacker | None = None
    try:
        try:
            with os.scandir(root_fd) as it:
                was_empty = next(it, None) is None
            src = _Source(decompress_stream(stream))
            unpacker = _Unpacker(root_fd, whiteouts, lambda fd, m: src.copy(fd, m.size))
            try:
                _read_fast(src, split, unpacker)
                src.rest(split)
            except _Sparse:
                head = bytes(src.raw[src.entry_start:])
                del src.raw[src.entry_start:]
                src.flush(split)
                src.unread(head)
                _read_tarfile(src, split, unpacker)
            unpacker.finish()
        except _ApplyError as e:
            raise errdefs.System(f"Error processing tar file(exit status 1): {e}") from None
        except (_HeaderError, ValueError):  # ValueError: a NUL in a name, tarfile's own parse failures
            raise errdefs.System("Error processing tar file(exit status 1): archive/tar: invalid tar header") from None
        except (_Truncated, EOFError):
            raise errdefs.System("Error processing tar file(exit status 1): unexpected EOF") from None
        except (tarfile.ReadError, gzip.BadGzipFile, lzma.LZMAError, *_INFLATE_ERRORS) as e:
            text = str(e)
            if isinstance(e, gzip.BadGzipFile) and ("CRC check failed" in text or "Incorrect length" in text):
                text = "gzip: invalid checksum"  # Go's gzip.ErrChecksum (CRC or size)
            if isinstance(e, tarfile.ReadError):
                text = "unexpected EOF" if ("unexpected end" in text or "truncated" in text) \
                    else "archive/tar: invalid tar header"
            raise errdefs.System(f"Error processing tar file(exit status 1): {text}") from None
        except OSError as e:  # bz2's "Invalid data stream" has no errno
            raise errdefs.System(f"Error processing tar file(exit status 1): {go_errno_text(e)}") from None
        except Exception as e:
            if type(e).__name__ != "ZstdError":
                raise
            raise errdefs.System(f"Error processing tar file(exit status 1): {e}") from None
    finally:
        if unpacker is not None:
            unpacker.close()
        split.close()
        os.close(root_fd)
    disk = unpacker.tree_size if was_empty else None
    return ApplyResult("sha256:" + src.digest.hexdigest(), unpacker.size, disk)


def directory_size(path: str) -> int:
    """moby/pkg/directory Size: the sizes of everything but directories, hard links counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except FileNotFoundError:
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total
