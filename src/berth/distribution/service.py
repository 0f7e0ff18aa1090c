"""What pull and push share: the registry configuration, the daemon-wide transfer
managers, the distribution metadata, and the Go-worded helpers around a repository
(manifest and blob requests)."""
from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from ..image.service import ImageService
from ..layer import LayerStore
from ..registry.config import Endpoint, ServiceConfig
from ..registry.errors import (
    BadResponseBody,
    ErrCode,
    ErrCodes,
    NoBasicAuthCredentials,
    RegistryError,
    TokenError,
    Transport,
    URLError,
    VerificationError,
)
from ..registry.session import Credentials, Session, error_of, transport_text
from ..trace import traced
from . import manifest as mf
from .metadata import ManifestCache, MetadataStore
from .progress import Meter, action
from .xfer import TransferManager

T = TypeVar("T")
RunBlocking = Callable[..., Any]


@dataclass
class Options:
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 5
    retry_unit: float = 5.0  # seconds per retry step ("Retrying in 5×k seconds")
    # Beyond dockerd (moby#22598): a blob download that receives nothing for this long is
    # dropped and retried (resumed with a Range request) instead of hanging.
    stall_timeout: float = 30.0


@dataclass
class Request:
    """What the API hands over with a pull or push."""

    creds: Credentials = field(default_factory=Credentials)
    creds_json: bytes = b""  # for push's HMAC key
    meta_headers: dict[str, str] = field(default_factory=dict)
    upstream_ua: str = ""


class DistributionService:
    def __init__(self, images: ImageService, layers: LayerStore, registry: ServiceConfig, tmp_dir: str,
                 run_blocking: RunBlocking, options: Options | None = None) -> None:
        self.images = images
        self.layers = layers
        self.registry = registry
        self.tmp_dir = tmp_dir
        self.run_blocking = run_blocking
        self.options = options or Options()
        self.downloads = TransferManager(self.options.max_concurrent_downloads)
        self.uploads = TransferManager(self.options.max_concurrent_uploads)
        self.metadata = MetadataStore(os.path.join(images.root, "distribution"))
        self.manifests = ManifestCache(os.path.join(images.root, "distribution", "manifests"))
        self._unpack_pool: Any = None
        self.partial_dir = os.path.join(images.root, "distribution", "partial")
        os.makedirs(self.partial_dir, mode=0o700, exist_ok=True)
        clean_partial(self.partial_dir)


def unpack_pool(svc: DistributionService) -> Any:
    """Worker processes for layer unpacking (started on first use; they die with the daemon).
    None where processes cannot be had: threads then."""
    if svc._unpack_pool is None:
        try:
            # Late: multiprocessing (about 2.5 ms to import) only at the first pull; a host
            # where it cannot be imported unpacks in threads.
            from ..pkg.procpool import new_pool

            svc._unpack_pool = new_pool(max(2, min(4, os.cpu_count() or 2)))
        except (OSError, ValueError, ImportError):
            svc._unpack_pool = False
    return svc._unpack_pool or None


def clean_temp(tmp_dir: str) -> None:
    """Remove the download and upload files of a daemon that stopped mid-transfer."""
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return
    for n in names:
        if n.startswith(("GetImageBlob", "berth-push-")):
            try:
                os.unlink(os.path.join(tmp_dir, n))
            except OSError:
                pass


class SharedSession:
    """A Session kept open while any transfer started through it still runs."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._users = 1

    def hold(self) -> None:
        self._users += 1

    async def release(self) -> None:
        self._users -= 1
        if self._users == 0:
            await self.session.__aexit__(None, None, None)


Attempt = Callable[[Endpoint, Session, SharedSession], Awaitable[None]]


async def try_endpoints(endpoints: list[Endpoint], req: Request, scope: str, attempt: Attempt,
                        retryable: tuple[type[BaseException], ...] = (),
                        go_on: Callable[[BaseException, Endpoint], bool] = lambda e, ep: False,
                        ) -> BaseException | None:
    """The endpoint loop of pullRepository and pushRepository: each endpoint in turn (a
    plain-HTTP one skipped once its host answered over TLS), its session pinged (a failed
    ping moves on to the next), then `attempt`; one of `retryable` from it moves on too
    when `go_on` says so. None when an attempt succeeded, else the last error."""
    confirmed_tls: set[str] = set()
    last_err: BaseException | None = None
    for ep in endpoints:
        if not ep.tls and ep.host in confirmed_tls:
            continue
        session = Session(ep, req.creds, [scope], meta_headers=req.meta_headers, upstream_ua=req.upstream_ua)
        await session.__aenter__()
        shared = SharedSession(session)
        try:
            try:
                await session.ping()
            except URLError as e:
                last_err = e
                continue
            if ep.tls:
                confirmed_tls.add(ep.host)
            try:
                await attempt(ep, session, shared)
                return None
            except retryable as e:
                last_err = e
                if not go_on(e, ep):
                    break
        finally:
            await shared.release()
    return last_err


@traced("manifests.Get")
async def get_manifest(s: Session, path: str, ref: str, by_digest: bool,
                       cache: ManifestCache | None = None, source: str = "") -> mf.Manifest:
    """tags.Get + manifests.Get: HEAD the tag for its digest, then GET by digest; by
    digest, GET and verify. With a `cache` (dockerd's manifestStore), a digest already known
    is read from it instead of a GET: by tag once the HEAD named it; by digest if it came
    from this repository (`source`, `<domain>/<path>`) or a HEAD of the digest answers 2xx.
    What is fetched is kept in it."""
    accept = {"Accept": ", ".join(mf.ACCEPT)}
    target = ref
    if not by_digest:
        url = s.url(f"/v2/{path}/manifests/{ref}")
        r = await s.request("HEAD", url, headers=accept)
        r.release()
        dg = r.headers.get("Docker-Content-Digest", "")
        if 200 <= r.status < 400 and dg:
            target = dg
        elif r.status >= 400 and r.status != 404 and r.status != 401:
            pass  # the GET below decodes the error body
    kept = cache.get(target) if cache is not None and (by_digest or target != ref) else None
    if kept is not None and by_digest and source not in kept[2]:
        r = await s.request("HEAD", s.url(f"/v2/{path}/manifests/{target}"), headers=accept)
        r.release()
        if not 200 <= r.status < 300:
            kept = None
    if kept is not None:
        return mf.parse(kept[0], kept[1])
    url = s.url(f"/v2/{path}/manifests/{target}")
    r = await s.request("GET", url, headers=accept)
    try:
        if not 200 <= r.status < 300:
            err = await error_of(r)
            raise URLError("GET", url, err) if r.status == 401 and not isinstance(err, ErrCode) else err
        try:
            raw = await r.read()
        except (aiohttp.ClientError, OSError) as e:
            raise URLError("GET", url, Transport(transport_text(e))) from None
        ctype = r.headers.get("Content-Type", "")
    finally:
        r.release()
    m = mf.parse(ctype, raw)
    if m.signed is not None:
        # schema1: verified by pullSchema1 ("image verification failed"); never kept, as
        # dockerd's content store refuses it (it writes the signed bytes under the payload's
        # digest)
        return m
    if (by_digest or target != ref) and m.digest != target and by_digest:
        raise VerificationError(f"manifest verification failed for digest {target}")
    if cache is not None:
        await asyncio.get_running_loop().run_in_executor(None, cache.put, m.media_type, raw, source)
    return m


@traced("pullSchema2Config")
async def fetch_config(s: Session, path: str, dgst: str) -> bytes:
    """pullSchema2Config: up to 5 attempts, 250 ms doubling; digest verified."""
    delay, last = 0.25, None
    for attempt in range(1, 6):
        url = s.url(f"/v2/{path}/blobs/{dgst}")
        try:
            r = await s.request("GET", url)
            try:
                if r.status != 200:
                    err: RegistryError = await error_of(r)
                    if r.status == 404:
                        err = ErrCode("BLOB_UNKNOWN")
                    raise err
                raw = await r.read()
            finally:
                r.release()
            if "sha256:" + hashlib.sha256(raw).hexdigest() != dgst:
                raise VerificationError(f"image config verification failed for digest {dgst}")
            return raw
        except VerificationError:
            raise
        except (RegistryError, aiohttp.ClientError, OSError) as e:
            last = e
            if not retryable(e):
                raise RegistryError(f"error pulling image configuration: download failed after "
                                    f"attempts={attempt}: {e}") from None
            await asyncio.sleep(delay)
            delay *= 2
    raise RegistryError(f"error pulling image configuration: download failed after attempts=5: {last}")


def transfer_error(e: BaseException) -> BaseException:
    """retryOnError's unwrapping, which is what a transfer reports: the url.Error around a
    request's error is dropped, and of several registry errors only the first is kept."""
    while isinstance(e, URLError):
        e = e.err
    if isinstance(e, ErrCodes) and e.errors:
        return e.errors[0]
    return e


def retryable(e: BaseException) -> bool:
    """retryOnError: what xfer.DoNotRetry leaves out."""
    inner: BaseException = e
    while isinstance(inner, URLError):
        inner = inner.err
    if isinstance(inner, ErrCode):
        return inner.code not in ("UNAUTHORIZED", "UNSUPPORTED", "DENIED", "TOOMANYREQUESTS", "NAME_UNKNOWN",
                                  "BLOB_UNKNOWN")
    if isinstance(inner, ErrCodes):
        return all(retryable(c) for c in inner.errors)
    if isinstance(inner, (NoBasicAuthCredentials, TokenError, BadResponseBody, VerificationError,
                          mf.ManifestError, UnknownBlob)):
        return False
    return "no space left on device" not in str(inner)


class UnknownBlob(RegistryError):
    """distribution.ErrBlobUnknown on a blob GET's 404: never retried."""


PARTIAL_MAX_AGE = 24 * 3600


def clean_partial(partial_dir: str, now: float | None = None) -> None:
    """Partial downloads older than a day are dropped."""
    now = time.time() if now is None else now
    try:
        names = os.listdir(partial_dir)
    except FileNotFoundError:
        return
    for n in names:
        p = os.path.join(partial_dir, n)
        try:
            if now - os.stat(p).st_mtime > PARTIAL_MAX_AGE:
                os.unlink(p)
        except OSError:
            pass


def _content_range_error(header: str | None, offset: int) -> str:
    """What dockerd's httpReadSeeker says of a 206 answering `Range: bytes=<offset>-` ("" if fine)."""
    if not header:
        return "no Content-Range header found in HTTP 206 response"
    m = re.fullmatch(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)", header.strip())
    if m is None:
        return f"could not parse Content-Range header: {header}"
    start, end = int(m.group(1)), int(m.group(2))
    if start != offset:
        return f"received Content-Range starting at offset {start} instead of requested {offset}"
    if m.group(3) != "*" and end + 1 != int(m.group(3)):
        return f"range in Content-Range stops before the end of the content: {header}"
    return ""


class BlobDownload:
    """v2LayerDescriptor.Download: digest verified, resumed with a Range request after a
    dropped connection.

    Beyond dockerd (moby#26146): the bytes go to `<image root>/distribution/partial/<hex>`
    and stay there when the download is interrupted (connection, client gone, daemon
    stopped), so the next pull of that blob resumes from them; the digest is checked over
    the whole file at the end, and partial files are dropped after a day. A blob already
    being fetched by another transfer (the file is locked) goes to a private temp file."""

    def __init__(self, svc: DistributionService, s: Session, path: str, desc: mf.Descriptor,
                 emit: Callable[[bytes], None], id_: str) -> None:
        self.svc, self.s, self.path, self.desc, self.emit, self.id = svc, s, path, desc, emit, id_
        self.offset = 0
        self.hash = hashlib.sha256()
        self._lock_fd: int | None = None
        hexpart = desc.digest.partition(":")[2]
        self.file = os.path.join(svc.partial_dir, hexpart)
        fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._lock_fd = fd
        except BlockingIOError:
            os.close(fd)
            fd, self.file = tempfile.mkstemp(prefix="GetImageBlob", dir=svc.tmp_dir)
            os.close(fd)

    def _hash_existing(self) -> None:
        size = os.path.getsize(self.file)
        if self.desc.size and size > self.desc.size:
            os.truncate(self.file, 0)
            return
        with open(self.file, "rb") as f:
            while chunk := f.read(1 << 20):
                self.hash.update(chunk)
                self.offset += len(chunk)

    async def resume_point(self) -> None:
        """The bytes a previous pull left, hashed (off the loop)."""
        if self._lock_fd is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._hash_existing)

    def discard(self, keep: bool = False) -> None:
        """Remove the file; `keep` leaves a partial download for the next pull."""
        if not (keep and self._lock_fd is not None and self.offset > 0):
            try:
                os.unlink(self.file)
            except FileNotFoundError:
                pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _reset(self) -> None:
        self.offset = 0
        self.hash = hashlib.sha256()
        os.truncate(self.file, 0)

    async def attempt(self) -> None:
        url = self.s.url(f"/v2/{self.path}/blobs/{self.desc.digest}")
        headers = {"Accept-Encoding": "identity"}
        resumed = self.offset > 0
        if resumed:
            headers["Range"] = f"bytes={self.offset}-"
        r = await self.s.request("GET", url, headers=headers, timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=30, sock_read=self.svc.options.stall_timeout))
        if resumed and r.status == 416:  # what we kept is all there is, or too much: start over
            r.release()
            self._reset()
            await self.attempt()
            return
        try:
            if r.status == 404:
                raise UnknownBlob("unknown blob")
            if not 200 <= r.status < 300:
                raise await error_of(r)
            if resumed and r.status != 206:
                # the registry sends it all again: start over with this answer (dockerd fails
                # the attempt with "expected HTTP 206 from byte range request" and retries)
                self._reset()
            elif resumed:
                bad = _content_range_error(r.headers.get("Content-Range"), self.offset)
                if bad:  # dockerd's httpReadSeeker checks: the attempt fails, the next starts over
                    self._reset()
                    raise Transport(bad)
            length = r.content_length
            total = length if length is not None else 0
            meter = Meter(self.emit, "Downloading", self.id, total)
            # hashing and writing go to one writer thread, in order, while the loop keeps reading
            writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="berth-blob")
            loop = asyncio.get_running_loop()
            pending: list[asyncio.Future[None]] = []
            buf = bytearray()
            try:
                with open(self.file, "ab") as f:
                    try:
                        async for chunk in r.content.iter_any():
                            buf += chunk
                            meter.add(len(chunk))
                            if len(buf) >= 1 << 17:  # small enough that a kill loses little
                                pending.append(loop.run_in_executor(writer, self._write, f, bytes(buf)))
                                buf = bytearray()
                                if len(pending) > 64:  # bound what is buffered in memory
                                    await pending.pop(0)
                    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as e:
                        if buf:
                            pending.append(loop.run_in_executor(writer, self._write, f, bytes(buf)))
                        await asyncio.gather(*pending)
                        raise URLError("GET", url, Transport(transport_text(e))) from None
                    if buf:
                        pending.append(loop.run_in_executor(writer, self._write, f, bytes(buf)))
                    await asyncio.gather(*pending)
            finally:
                writer.shutdown(wait=True)
            if length is not None and meter.current < length:
                raise Transport("unexpected EOF")
            meter.done()
        finally:
            r.release()
        self.emit(action("Verifying Checksum", self.id))
        if "sha256:" + self.hash.hexdigest() != self.desc.digest:
            was_resumed = resumed
            self._reset()
            err = VerificationError(f"filesystem layer verification failed for digest {self.desc.digest}")
            if was_resumed:
                raise Transport(str(err))  # retried once more from the start
            raise err
        self.emit(action("Download complete", self.id))

    def _write(self, f: Any, data: bytes) -> None:
        f.write(data)
        self.hash.update(data)
        self.offset += len(data)

    @traced("Download")  # v2LayerDescriptor.Download
    async def run(self) -> str:
        """Attempts with dockerd's countdown between them; the verified file's path."""
        await self.resume_point()
        if self.offset and self.offset == self.desc.size:
            # a previous pull got every byte but stopped before using them
            if "sha256:" + self.hash.hexdigest() == self.desc.digest:
                self.emit(action("Verifying Checksum", self.id))
                self.emit(action("Download complete", self.id))
                return self.file
            self._reset()
        attempts = self.svc.options.max_download_attempts + 1
        for k in range(1, attempts + 1):
            try:
                await self.attempt()
                return self.file
            except (RegistryError, aiohttp.ClientError, OSError) as e:
                if k == attempts or not retryable(e):
                    raise transfer_error(e) from None
                delay = int(self.svc.options.retry_unit * k)
                for n in range(delay, 0, -1):
                    self.emit(action(f"Retrying in {n} second{'s' if n != 1 else ''}", self.id))
                    await asyncio.sleep(min(1, self.svc.options.retry_unit))
        raise AssertionError("unreachable")
