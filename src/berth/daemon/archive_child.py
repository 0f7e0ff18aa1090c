"""The part of `docker cp`/export that runs inside the container's root (moby
pkg/chrootarchive: dockerd re-executes itself, chroots and untars there, so that symlinks
in the container resolve inside it and never on the host).

Run as `python -I archive_child.py OP ROOT ...` by daemon/archive.py; standard library only,
everything imported before the chroot. OPs:
  stat PATH                       → JSON stat of PATH (container.ResolvePath + StatPath)
  archive PATH                    → tar of PATH on stdout (TarResourceRebase)
  extract PATH NOOVERWRITE UID GID → untar stdin into directory PATH (UID -1: keep the tar's)
  export                          → tar of the whole root on stdout
Exit 2 = not found, 3 = not a directory, 4 = other error (message on stderr).

For a stopped container the parent passes its volumes and bind mounts in the environment
(BERTH_ARCHIVE_MOUNTS, a JSON list of [source, destination, recursive, read_only]): the
child mounts them over the container's root in a mount namespace of its own before the
chroot (dockerd's mountVolumes: bind or rbind, ro or rw, rprivate), so they vanish with it.
"""
import ctypes
import ctypes.util
import importlib.util
import json
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import types
from collections.abc import Callable
from typing import Any

_GO_MODE = ((stat.S_IFDIR, 1 << 31), (stat.S_IFLNK, 1 << 27), (stat.S_IFBLK, 1 << 26),
            (stat.S_IFCHR, (1 << 26) | (1 << 21)), (stat.S_IFIFO, 1 << 25), (stat.S_IFSOCK, 1 << 24))


def go_mode(m: int) -> int:
    """os.FileMode of a stat mode (os/stat_linux.go fillFileStatFromSys)."""
    out = m & 0o777
    for kind, bit in _GO_MODE:
        if stat.S_IFMT(m) == kind:
            out |= bit
    if m & stat.S_ISUID:
        out |= 1 << 23
    if m & stat.S_ISGID:
        out |= 1 << 22
    if m & stat.S_ISVTX:
        out |= 1 << 20
    return out


def preserve_trailing(cleaned: str, original: str) -> str:
    """archive.PreserveTrailingDotOrSeparator."""
    if original.endswith("/.") and not cleaned.endswith("/."):
        return cleaned.rstrip("/") + "/."
    if original.endswith("/") and not cleaned.endswith("/"):
        return cleaned + "/"
    return cleaned


def resolve(path: str) -> tuple[str, str]:
    abs_path = preserve_trailing(posixpath.normpath(posixpath.join("/", path)), path)
    d, base = posixpath.split(abs_path)
    resolved_dir = os.path.realpath(d or "/")
    return (resolved_dir.rstrip("/") + "/" + base), abs_path


def do_stat(path: str) -> dict[str, Any]:
    resolved, abs_path = resolve(path)
    st = os.lstat(resolved)
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = os.path.realpath(abs_path)
    base = posixpath.basename(abs_path.rstrip("/")) if abs_path not in ("/",) else "/"
    if abs_path.endswith("/."):
        base = "."
    return {"name": base, "size": st.st_size, "mode": go_mode(st.st_mode), "mtime_ns": st.st_mtime_ns,
            "linkTarget": link, "dir": stat.S_ISDIR(st.st_mode)}


def _go_header(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    """pkg/archive FileInfoHeader truncates mtime to the second, so a plain ustar header
    carries it and no PAX record is written for it (Python's tarfile writes one for a
    fractional mtime, which readers would show as a `././@PaxHeader` entry)."""
    ti.mtime = int(ti.mtime)
    return ti


def _named(arc: str) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
    """A header filter that keeps `arc` as the member name as it is: tarfile strips a
    leading `/`, which dockerd's archive of the container's root keeps (TarWithOptions
    rebases the root's own name to "", so its members are `/bin`, `/etc`...)."""
    def f(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.name = arc
        if ti.islnk() and not ti.linkname.startswith("/"):
            ti.linkname = "/" + ti.linkname  # the first member of the link, named as above
        return _go_header(ti)
    return f


def _add_tree(tf: tarfile.TarFile, src: str, arc: str) -> None:
    tf.add(src, arcname=arc, recursive=False, filter=_named(arc) if arc.startswith("/") else _go_header)
    if os.path.isdir(src) and not os.path.islink(src):
        for name in sorted(os.listdir(src)):
            _add_tree(tf, os.path.join(src, name), arc + "/" + name if arc else name)


def _tar_out() -> tarfile.TarFile:
    return tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)


def do_archive(path: str) -> None:
    info = do_stat(path)
    _, abs_path = resolve(path)
    rebase = posixpath.basename(abs_path.rstrip("/")) or "/"
    if abs_path.endswith("/."):
        rebase = "."
    with _tar_out() as tf:
        if info["dir"]:
            src = abs_path
            tf.add(src, arcname=rebase, recursive=False, filter=_go_header)
            for name in sorted(os.listdir(src)):
                _add_tree(tf, os.path.join(src, name), ("" if rebase == "/" else rebase) + "/" + name)
        else:
            tf.add(abs_path, arcname=rebase, recursive=False, filter=_go_header)


def do_export() -> None:
    with _tar_out() as tf:
        for name in sorted(os.listdir("/")):
            _add_tree(tf, "/" + name, name)


def do_extract(path: str, no_overwrite: bool, uid: int, gid: int) -> None:
    dest = os.path.realpath(posixpath.join("/", path))
    st = os.lstat(dest)  # FileNotFoundError → 2
    if not stat.S_ISDIR(st.st_mode):
        sys.exit(3)
    try:
        _untar(dest, no_overwrite, uid, gid)
    except (tarfile.ReadError, EOFError) as e:
        # chrootarchive.Untar's words: its child's exit status, then Go's archive/tar error
        # (a stream cut short is io.ErrUnexpectedEOF, anything else an invalid header).
        text = str(e)
        if text == "empty file":
            return  # no header at all: Go's reader sees io.EOF, an empty archive
        short = text in ("truncated header", "unexpected end of data") or isinstance(e, EOFError)
        raise RuntimeError("Error processing tar file(exit status 1): "
                           + ("unexpected EOF" if short else "archive/tar: invalid tar header")) from None


def _untar(dest: str, no_overwrite: bool, uid: int, gid: int) -> None:
    dir_times: list[tuple[str, float]] = []  # Untar sets directories' times last, once their content is in
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|*") as tf:
        for m in tf:
            name = posixpath.normpath("/" + m.name).lstrip("/")
            if not name or name == ".":
                continue
            target = posixpath.join(dest, name)
            parent = os.path.realpath(posixpath.dirname(target))
            target = posixpath.join(parent, posixpath.basename(target))
            if os.path.lexists(target):
                is_dir = os.path.isdir(target) and not os.path.islink(target)
                if no_overwrite and is_dir and not m.isdir():
                    raise RuntimeError(f'cannot overwrite directory "{target}" with non-directory "{dest}"')
                if no_overwrite and not is_dir and m.isdir():
                    raise RuntimeError(f'cannot overwrite non-directory "{target}" with directory "{dest}"')
                if not (is_dir and m.isdir()):
                    if is_dir:
                        shutil.rmtree(target)
                    else:
                        os.unlink(target)
            m.name = posixpath.relpath(target, "/")
            if m.islnk():
                m.linkname = posixpath.relpath(posixpath.join(dest, posixpath.normpath("/" + m.linkname).lstrip("/")), "/")
            if uid >= 0:
                m.uid, m.gid = uid, gid
            tf.extract(m, "/", set_attrs=True, numeric_owner=True, filter="fully_trusted")
            if m.isdir():
                dir_times.append(("/" + m.name, m.mtime))
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)


_CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _load_symlink_module() -> types.ModuleType:
    """berth/pkg/symlink.py, by path: this script runs with `python -I`, without the
    package on sys.path, and that module needs only `os`."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "pkg", "symlink.py")
    spec = importlib.util.spec_from_file_location("berth_pkg_symlink", path)
    assert spec is not None and spec.loader is not None  # a path that exists always has both
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_symlink = _load_symlink_module()


def in_scope(root: str, path: str) -> str:
    """symlink.FollowSymlinkInScope of the container path `path` under `root`."""
    clean = posixpath.normpath("/" + path).lstrip("/")  # `..` stops at the root, as in scope
    return _symlink.follow_symlink_in_scope(os.path.join(root, clean), root)


def _create_if_not_exists(path: str, is_dir: bool) -> None:
    """fileutils.CreateIfNotExists: the mount point, a directory or an empty file."""
    if os.path.lexists(path):
        return
    if is_dir:
        os.makedirs(path, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        open(path, "a").close()


def mount_volumes(root: str, mounts: list[list[Any]]) -> None:
    """mountVolumes, in a private mount namespace of this process."""
    libc = _libc()
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    _check(libc.unshare(_CLONE_NEWNS), "unshare")
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / rprivate")
    for source, dest, recursive, read_only in mounts:
        target = in_scope(root, dest)
        _create_if_not_exists(target, os.path.isdir(source))
        flags = MS_BIND | (MS_REC if recursive else 0)
        _check(libc.mount(source.encode(), target.encode(), None, flags, None), f"mount {source} on {target}")
        if read_only:
            _check(libc.mount(None, target.encode(), None, flags | MS_REMOUNT | MS_RDONLY, None),
                   f"remount {target} read-only")


def main() -> None:
    op, root = sys.argv[1], sys.argv[2]
    mounts = json.loads(os.environ.get("BERTH_ARCHIVE_MOUNTS") or "[]")
    if mounts:
        try:
            mount_volumes(root, mounts)
        except OSError as e:
            sys.stderr.write(str(e))
            sys.exit(4)
    os.chroot(root)
    os.chdir("/")
    try:
        if op == "stat":
            sys.stdout.write(json.dumps(do_stat(sys.argv[3])))
        elif op == "archive":
            do_archive(sys.argv[3])
        elif op == "export":
            do_export()
        elif op == "extract":
            do_extract(sys.argv[3], sys.argv[4] == "1", int(sys.argv[5]), int(sys.argv[6]))
    except FileNotFoundError as e:
        sys.stderr.write(str(e))
        sys.exit(2)
    except NotADirectoryError as e:
        sys.stderr.write(str(e))
        sys.exit(2)
    except Exception as e:  # the parent reports it
        sys.stderr.write(str(e))
        sys.exit(4)


if __name__ == "__main__":
    main()
