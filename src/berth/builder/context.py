"""The build context (moby/builder/remotecontext: archive.go FromArchive, detect.go).

The request body (a tar, plain or gzip/bzip2/xz) is unpacked into a private
directory. Every member name is checked before anything is written: absolute names,
`..` escapes and hard links pointing outside are refused, and tarfile's "tar" filter
refuses writing through a symlink that leads out of the directory. As detect.go does,
the Dockerfile and `.dockerignore` are dropped from the context when `.dockerignore`
excludes them; excluding files is otherwise the client's job (the CLI and docker-py
apply `.dockerignore` when they make the tar).
"""
from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from typing import BinaryIO

from .. import errdefs
from ..image import pathmatch
from ..image.reference import ReferenceError
from ..layer.archive import decompress_stream
from ..pkg.symlink import follow_symlink_in_scope
from .tarsum import ArchiveSums

DEFAULT_DOCKERFILE = "Dockerfile"


class BuildContext:
    """An unpacked context directory; `close` removes it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.sums = ArchiveSums(root)  # tarsum of each member, for COPY/ADD's history text

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def full_path(self, rel: str) -> str:
        """The host path of `rel` inside the context, never outside it (symlinks are
        followed within the root, as remotecontext.FullPath does)."""
        return scoped_path(self.root, rel)


def scoped_path(root: str, rel: str) -> str:
    """`rel` (absolute or relative) resolved under `root` as if `root` were `/`."""
    clean = posixpath.normpath("/" + rel).lstrip("/")
    return follow_symlink_in_scope(os.path.join(root, clean), root)


def member_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tar_filter (no absolute names, no escapes, no writing through outward symlinks)
    plus: hard links must stay inside, device nodes are skipped, and the mode is kept
    as written (dockerd keeps setuid bits of context files)."""
    new = tarfile.tar_filter(member, dest)
    if member.islnk():
        target = posixpath.normpath(member.linkname)
        if target.startswith("/") or target == ".." or target.startswith("../"):
            raise tarfile.LinkOutsideDestinationError(member, target)
    if member.ischr() or member.isblk() or member.isfifo():
        return None
    return new.replace(mode=member.mode, deep=False)


def extract_context(body: BinaryIO, tmp_dir: str) -> BuildContext:
    """FromArchive: unpack the request body into a new directory."""
    root = tempfile.mkdtemp(prefix="berth-build-", dir=tmp_dir)
    ctx = BuildContext(root)
    try:
        stream = decompress_stream(body)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                tf.extractall(root, filter=member_filter)
                for member in tf.members:  # type: ignore[attr-defined]  # tarfile's list, not in its stubs
                    ctx.sums.add(member)
        except tarfile.ReadError as e:
            if "empty file" not in str(e):
                raise errdefs.InvalidParameter(f"failed to read build context: {e}") from None
        except (tarfile.FilterError, tarfile.ExtractError) as e:
            raise errdefs.InvalidParameter(f"invalid build context: {e}") from None
    except BaseException:
        ctx.close()
        raise
    return ctx


def _ignore_patterns(ctx: BuildContext) -> list[str]:
    """dockerignore.ReadAll: one pattern a line, `#` comments, cleaned paths."""
    path = os.path.join(ctx.root, ".dockerignore")
    if not os.path.isfile(path) or os.path.islink(path):
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            p = line.strip()
            if not p or p.startswith("#"):
                continue
            neg = p.startswith("!")
            p = p[1:].strip() if neg else p
            p = posixpath.normpath(p).lstrip("/") if p else p
            out.append(("!" if neg else "") + p)
    return out


def ignored(rel: str, patterns: list[str]) -> bool:
    """fileutils.Matches: the last matching pattern decides; a pattern also matches
    everything under a matching directory."""
    result = False
    parts = rel.split("/")
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        hit = False
        for n in range(len(parts), 0, -1):
            try:
                if pathmatch.match(pat, "/".join(parts[:n])):
                    hit = True
                    break
            except ReferenceError:
                raise errdefs.InvalidParameter(f"Illegal exclusion pattern: \"{pat}\"") from None
        if hit:
            result = not neg
    return result


def read_dockerfile(ctx: BuildContext, name: str) -> bytes:
    """withDockerfileFromContext: read the Dockerfile, then drop it and .dockerignore
    from the context if .dockerignore lists them."""
    name = name or DEFAULT_DOCKERFILE
    rel = posixpath.normpath("/" + name).lstrip("/")
    path = ctx.full_path(rel)
    if not os.path.isfile(path):
        # remotecontext: the lower-case name is tried when the default is missing
        alt = ctx.full_path(rel.lower()) if name == DEFAULT_DOCKERFILE else ""
        if alt and os.path.isfile(alt):
            path = alt
        else:
            raise errdefs.Untyped(f"Cannot locate specified Dockerfile: {name}")
    with open(path, "rb") as f:
        data = f.read()
    patterns = _ignore_patterns(ctx)
    if patterns:
        for victim in (".dockerignore", rel):
            if ignored(victim, patterns):
                try:
                    st = os.lstat(ctx.full_path(victim))
                    if not stat.S_ISDIR(st.st_mode):
                        os.unlink(ctx.full_path(victim))
                except FileNotFoundError:
                    pass
    if not data:
        raise errdefs.InvalidParameter(f"the Dockerfile ({name}) cannot be empty")
    return data
