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
import io
import lzma
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from .. import errdefs
from . import tarsplit
from .scopedpath import open_in_root, open_parent_in_root

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE_DIR = ".wh..wh..opq"

_CHUNK = 1 << 20


@dataclass
class ApplyResult:
    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    size: int  # sum of the entries' sizes (UnpackLayer's count)


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
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]  # a binary file object: read() is all callers use
    if head.startswith(b"BZh"):
        return bz2.BZ2File(buffered, "rb")  # type: ignore[return-value]  # a binary file object: read() is all callers use
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(buffered, "rb")  # type: ignore[return-value]  # a binary file object: read() is all callers use
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered


class _ApplyError(Exception):
    """An unpack failure already worded as Go would word it."""


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


def _remove_all(dir_fd: int, name: str) -> None:
    """os.RemoveAll of one entry of `dir_fd` (never following symlinks)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            _remove_all(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


class _Unpacker:
    def __init__(self, root_fd: int, whiteouts: str) -> None:
        self.root_fd = root_fd
        self.whiteouts = whiteouts
        self.size = 0
        self.dirs: list[tuple[str, float]] = []
        self.unpacked: set[str] = set()

    def entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo, rec: tarsplit.RecordingReader,
              split: tarsplit.Writer, prev_end: int) -> int:
        name = _clean(m.name)
        is_reg = m.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
        data_end = m.offset_data + (m.size if is_reg else 0)
        split.raw(rec.take(prev_end, m.offset_data))
        if is_reg and m.size:
            rec.skip(m.offset_data, data_end)
            split.file(name, m.size)
        self.size += m.size if is_reg else 0
        base = name.rpartition("/")[2]
        if name.startswith(WHITEOUT_META_PREFIX) and name != WHITEOUT_OPAQUE_DIR and self.whiteouts != "keep":
            # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): never unpacked, as UnpackLayer.
            self._drain(tf, m)
            return data_end
        if name and "/" in name:
            _mkdir_all(self.root_fd, name.rpartition("/")[0])
        if base.startswith(WHITEOUT_PREFIX) and self.whiteouts != "keep":
            self._whiteout(name, base, m)
            self._drain(tf, m)
            return data_end
        if not name:
            # The root itself: dockerd's Unpack skips a "." entry when the root exists.
            self._drain(tf, m)
            return data_end
        self._create(tf, m, name)
        self.unpacked.add(name)
        return data_end

    @staticmethod
    def _drain(tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        if m.isreg() and m.size:
            f = tf.extractfile(m)
            assert f is not None
            while f.read(_CHUNK):
                pass

    def _whiteout(self, name: str, base: str, m: tarfile.TarInfo) -> None:
        dirname = name.rpartition("/")[0]
        pfd = open_in_root(self.root_fd, dirname or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            if base == WHITEOUT_OPAQUE_DIR:
                if self.whiteouts == "overlay":
                    try:
                        os.setxattr(pfd, "trusted.overlay.opaque", b"y")
                    except OSError as e:
                        raise _ApplyError(f'setxattr("/{dirname}", trusted.overlay.opaque=y): {go_errno_text(e)}') from None
                    return
                prefix = dirname + "/" if dirname else ""
                for child in os.listdir(pfd):
                    if prefix + child not in self.unpacked:
                        _remove_all(pfd, child)
                return
            original = base[len(WHITEOUT_PREFIX):]
            if self.whiteouts == "overlay":
                _remove_all(pfd, original)
                try:
                    os.mknod(original, stat.S_IFCHR, 0, dir_fd=pfd)
                except OSError as e:
                    orig = (dirname + "/" if dirname else "") + original
                    raise _ApplyError(f'failed to mknod("/{orig}", S_IFCHR, 0): {go_errno_text(e)}') from None
                os.chown(original, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            else:
                _remove_all(pfd, original)
        finally:
            os.close(pfd)

    def _create(self, tf: tarfile.TarFile, m: tarfile.TarInfo, name: str) -> None:
        try:
            pfd, base = open_parent_in_root(self.root_fd, name)
        except OSError as e:
            # Go reports the failure on the call that creates the entry.
            if m.issym():
                raise _ApplyError(f"symlink {m.linkname} /{name}: {go_errno_text(e)}") from None
            if m.islnk():
                raise _ApplyError(f"link /{_clean(m.linkname)} /{name}: {go_errno_text(e)}") from None
            raise _path_error("mkdir" if m.isdir() else "open" if m.isreg() else "mknod", name, e) from None
        try:
            try:
                st: os.stat_result | None = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and not (stat.S_ISDIR(st.st_mode) and m.isdir()):
                _remove_all(pfd, base)
            mode = m.mode & 0o7777
            try:
                if m.isreg():
                    fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                                 dir_fd=pfd)
                    try:
                        f = tf.extractfile(m)
                        assert f is not None
                        while chunk := f.read(_CHUNK):
                            view = memoryview(chunk)
                            while view:
                                view = view[os.write(fd, view):]
                    finally:
                        os.close(fd)
                elif m.isdir():
                    if st is None or not stat.S_ISDIR(st.st_mode):
                        os.mkdir(base, mode, dir_fd=pfd)
                elif m.issym():
                    os.symlink(m.linkname, base, dir_fd=pfd)
                elif m.islnk():
                    self._hardlink(m, pfd, base, name)
                elif m.ischr() or m.isblk() or m.isfifo():
                    kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
                    dev = os.makedev(m.devmajor, m.devminor) if not m.isfifo() else 0
                    os.mknod(base, mode | kind, dev, dir_fd=pfd)
                else:
                    raise _ApplyError(f"unhandled tar header type {m.type[0] if m.type else 0}")
            except _ApplyError:
                raise
            except OSError as e:
                op = "mkdir" if m.isdir() else "symlink" if m.issym() else "mknod" if not m.isreg() else "open"
                if m.issym():
                    raise _ApplyError(f"symlink {m.linkname} /{name}: {go_errno_text(e)}") from None
                raise _path_error(op, name, e) from None
            self._metadata(m, pfd, base, name)
        finally:
            os.close(pfd)

    def _hardlink(self, m: tarfile.TarInfo, pfd: int, base: str, name: str) -> None:
        target = _clean(m.linkname)
        try:
            tfd, tbase = open_parent_in_root(self.root_fd, target) if target else (os.dup(self.root_fd), ".")
        except OSError as e:
            raise _ApplyError(f"link /{target} /{name}: {go_errno_text(e)}") from None
        try:
            os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise _ApplyError(f"link /{target} /{name}: {go_errno_text(e)}") from None
        finally:
            os.close(tfd)

    def _metadata(self, m: tarfile.TarInfo, pfd: int, base: str, name: str) -> None:
        """createTarFile after creation: Lchown, xattrs, chmod (not symlinks), times (dirs later)."""
        try:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise _ApplyError(f"lchown /{name}: {go_errno_text(e)}") from None
        for key, value in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            try:
                os.setxattr(f"/proc/self/fd/{pfd}/{base}", key[len("SCHILY.xattr."):],
                            value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
            except OSError as e:
                # Not every filesystem takes every xattr; dockerd ignores ENOTSUP and EPERM here.
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise _ApplyError(f"lsetxattr /{name}: {go_errno_text(e)}") from None
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
            try:
                pfd, base = open_parent_in_root(self.root_fd, name)
            except OSError:
                continue
            try:
                os.utime(base, (mtime, mtime), dir_fd=pfd, follow_symlinks=False)
            except OSError:
                pass
            finally:
                os.close(pfd)


def apply_layer(stream: BinaryIO, dest: str, whiteouts: str, split_path: str | None) -> ApplyResult:
    """Unpack the (possibly compressed) layer tar `stream` into `dest`, writing its tar-split.

    The whole stream is read (trailing padding included, as dockerd drains it) so
    that the diff ID is the digest of exactly what was sent. Any failure raises
    errdefs.System with dockerd's wording; the caller removes `dest`.
    """
    rec = tarsplit.RecordingReader(decompress_stream(stream))
    split = tarsplit.Writer(split_path or os.devnull)
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    unpacker = _Unpacker(root_fd, whiteouts)
    try:
        try:
            prev_end = 0
            try:
                tf = tarfile.open(fileobj=rec, mode="r|", bufsize=tarfile.RECORDSIZE)  # type: ignore[call-overload]  # noqa: SIM115 - the stream is read entry by entry below
            except tarfile.ReadError as e:
                if rec.pos == 0 or "empty" in str(e):
                    tf = None  # an empty stream is an empty layer, as Go's tar reader sees it
                else:
                    raise
            while tf is not None and (m := tf.next()) is not None:
                prev_end = unpacker.entry(tf, m, rec, split, prev_end)
                tf.members = []  # stream mode: do not keep every TarInfo
            rec.skip(0, 0)
            rec.drain()
            split.raw(rec.take(prev_end, rec.pos))
            unpacker.finish()
        except _ApplyError as e:
            raise errdefs.System(f"Error processing tar file(exit status 1): {e}") from None
        except (tarfile.ReadError, EOFError, gzip.BadGzipFile, lzma.LZMAError) as e:
            text = "unexpected EOF" if ("unexpected end" in str(e) or isinstance(e, EOFError)
                                        or "truncated" in str(e)) else "archive/tar: invalid tar header"
            if isinstance(e, (gzip.BadGzipFile, lzma.LZMAError)):
                text = str(e)
            raise errdefs.System(f"Error processing tar file(exit status 1): {text}") from None
        except OSError as e:  # bz2's "Invalid data stream" has no errno
            raise errdefs.System(f"Error processing tar file(exit status 1): {go_errno_text(e)}") from None
        except Exception as e:
            if type(e).__name__ != "ZstdError":
                raise
            raise errdefs.System(f"Error processing tar file(exit status 1): {e}") from None
    finally:
        split.close()
        os.close(root_fd)
    return ApplyResult("sha256:" + rec.digest.hexdigest(), unpacker.size)


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
