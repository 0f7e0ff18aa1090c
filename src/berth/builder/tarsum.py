"""Content hashes of COPY/ADD sources as the classic builder computes them, so that
`docker history` shows dockerd's `file:<hash>`, `dir:<hash>` and `multi:<hash>`
(moby v20.10.24 pkg/tarsum Version1, builder/remotecontext archive.go, lazycontext.go,
filehash.go, builder/dockerfile/copy.go walkSource and hashStringSlice).

A file's hash is sha256 over its tar header fields as `key+value` strings (name, mode,
uid, gid, size, typeflag, linkname, uname, gname, devmajor, devminor, then the xattrs,
sorted; no mtime) followed by its content:

- for the build context (an archive), the headers are the ones the client sent, with
  uname and gname left empty (tarsum's encodeHeader);
- for `COPY --from` (a stage or image root, the lazy source), the headers are made from
  lstat as archive.FileInfoHeader makes them (file type bits in the mode, a directory's
  name with a trailing `/`, the user and group names of the host), with the
  `security.capability` xattr.

A directory's hash is sha256 of the sorted hashes of it and everything below it joined
by `,`; several sources give `multi:` and the same over their `kind:hash` strings.
"""
from __future__ import annotations

import grp
import hashlib
import os
import posixpath
import pwd
import stat
import tarfile
from collections.abc import Callable

_TYPE_BITS = {stat.S_IFREG: 0o100000, stat.S_IFDIR: 0o040000, stat.S_IFLNK: 0o120000, stat.S_IFIFO: 0o010000,
              stat.S_IFCHR: 0o020000, stat.S_IFBLK: 0o060000, stat.S_IFSOCK: 0o140000}


def v1_header(name: str, mode: int, uid: int, gid: int, size: int, typeflag: bytes, linkname: str,
              uname: str, gname: str, devmajor: int, devminor: int, xattrs: dict[str, str]) -> bytes:
    """tarsum v1TarHeaderSelect, written as encodeHeader writes it."""
    fields = [("name", name), ("mode", str(mode)), ("uid", str(uid)), ("gid", str(gid)), ("size", str(size)),
              ("typeflag", typeflag.decode("latin-1")), ("linkname", linkname), ("uname", uname),
              ("gname", gname), ("devmajor", str(devmajor)), ("devminor", str(devminor))]
    fields += sorted(xattrs.items())
    return "".join(k + v for k, v in fields).encode("utf-8", "surrogateescape")


def _clean(name: str) -> str:
    """path.Join(".", path.Join("/", name)): the name a sum is looked up by."""
    return posixpath.normpath("/" + name).lstrip("/") or "."


class ArchiveSums:
    """The per-file sums of the context tar (tarsum.GetSums), computed on demand: the
    headers are kept as read; the content is read back from the extracted file."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._headers: dict[str, tuple[bytes, bool]] = {}
        self._sums: dict[str, str] = {}

    def add(self, m: tarfile.TarInfo) -> None:
        xattrs = {k[len("SCHILY.xattr."):]: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        # tarfile drops a directory's trailing "/"; the client's header had it
        raw_name = m.name + "/" if m.isdir() and not m.name.endswith("/") else m.name
        header = v1_header(raw_name, m.mode, m.uid, m.gid, m.size, m.type, m.linkname, "", "", m.devmajor,
                           m.devminor, xattrs)
        self._headers[_clean(m.name)] = (header, m.isreg() and m.size > 0)
        self._sums.pop(_clean(m.name), None)

    def get(self, rel: str) -> str | None:
        rel = _clean(rel)
        if rel in self._sums:
            return self._sums[rel]
        entry = self._headers.get(rel)
        if entry is None:
            return None
        header, has_content = entry
        h = hashlib.sha256(header)
        if has_content:
            _hash_file(h, os.path.join(self.root, rel))
        self._sums[rel] = h.hexdigest()
        return self._sums[rel]


def _hash_file(h: hashlib._Hash, path: str) -> None:
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        pass


_NAMES: dict[tuple[str, int], str] = {}


def _lookup(kind: str, ident: int) -> str:
    """Go's tar.FileInfoHeader user and group names (host lookups, cached)."""
    key = (kind, ident)
    if key not in _NAMES:
        try:
            _NAMES[key] = pwd.getpwuid(ident).pw_name if kind == "u" else grp.getgrgid(ident).gr_name
        except KeyError:
            _NAMES[key] = ""
    return _NAMES[key]


def lazy_sum(root: str, rel: str) -> str | None:
    """lazySource.prepareHash: the sum of `rel` under `root` from lstat (None if missing)."""
    path = os.path.join(root, rel)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    fmt = stat.S_IFMT(st.st_mode)
    mode = stat.S_IMODE(st.st_mode) | _TYPE_BITS.get(fmt, 0)
    name = rel + "/" if fmt == stat.S_IFDIR and not rel.endswith("/") else rel
    typeflag = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
                stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFCHR: tarfile.CHRTYPE,
                stat.S_IFBLK: tarfile.BLKTYPE}.get(fmt, tarfile.REGTYPE)
    link = os.readlink(path) if fmt == stat.S_IFLNK else ""
    size = st.st_size if fmt == stat.S_IFREG else 0
    major = minor = 0
    if fmt in (stat.S_IFCHR, stat.S_IFBLK):
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    xattrs: dict[str, str] = {}
    try:
        cap = os.getxattr(path, "security.capability", follow_symlinks=False)
        xattrs["security.capability"] = cap.decode("latin-1")
    except OSError:
        pass
    h = hashlib.sha256(v1_header(name, mode, st.st_uid, st.st_gid, size, typeflag, link, _lookup("u", st.st_uid),
                                 _lookup("g", st.st_gid), major, minor, xattrs))
    if fmt == stat.S_IFREG and size > 0:
        _hash_file(h, path)
    return h.hexdigest()


def source_hash(root: str, resolve: Callable[[str], str], file_sum: Callable[[str], str | None],
                infos: list[tuple[str, bool]], archive: bool) -> str:
    """getSourceHashFromInfos for the (rel, is_dir) sources under `root`.

    `resolve(rel)` is the host path of `rel` with symlinks followed in scope (the source's
    Hash follows them: a link hashes as its target); `file_sum(rel)` the sum of a path
    already resolved. A path the archive has no sum for hashes as the path itself
    (archiveContext.Hash); one the lazy source cannot stat is left out of a directory."""
    def hash_of(rel: str) -> str | None:
        target = os.path.relpath(resolve(rel), root)
        got = file_sum("" if target == "." else target)
        return rel if got is None and archive else got

    out: list[str] = []
    for rel, is_dir in infos:
        if not is_dir:
            out.append("file:" + (hash_of(rel) or rel))
            continue
        # walkSource: the directory itself and everything below it, sorted hashes
        base = resolve(rel)
        subs: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for entry in [dirpath, *(os.path.join(dirpath, f) for f in sorted(filenames))]:
                sub = os.path.relpath(entry, root)
                if sub == ".":
                    continue
                s = hash_of(sub)
                if s is not None:
                    subs.append(s)
            # os.walk lists symlinks to directories as dirnames without entering them
            for dn in dirnames:
                full = os.path.join(dirpath, dn)
                if os.path.islink(full):
                    s = hash_of(os.path.relpath(full, root))
                    if s is not None:
                        subs.append(s)
        out.append("dir:" + hashlib.sha256(",".join(sorted(subs)).encode()).hexdigest())
    if len(out) == 1:
        return out[0]
    return "multi:" + hashlib.sha256(",".join(out).encode()).hexdigest()
