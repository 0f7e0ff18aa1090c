"""Pull (moby/distribution/pull.go Pull, pull_v2.go pullV2Repository, pullV2Tag,
pullSchema2Layers, pullManifestList; xfer/download.go).

Per endpoint: ping, then the manifest (HEAD the tag, GET by digest). Nothing is written
to the client before the manifest is accepted, so errors up to there are HTTP errors;
"Pulling from" starts the stream. Layers not already present are downloaded
concurrently through the daemon-wide download manager, each verified by digest and
registered on its parent as soon as both are ready (a layer unpacks while later ones
still download). The image is stored only when the registered DiffIDs match the
config's; a failure leaves no image, no tag, and gives back every layer reference.
"""
from __future__ import annotations

import asyncio
import io
import os
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urljoin

import aiohttp

from .. import errdefs
from ..image import reference as refmod
from ..image import v1
from ..image.image import Image
from ..layer import create_chain_id
from ..pkg import platforms
from ..pkg.platforms import Platform
from ..registry.config import Endpoint
from ..registry.errors import ErrCode, RegistryError, Transport, URLError, first_code
from ..registry.session import Session, error_of, transport_text
from ..trace import traced
from . import manifest as mf
from . import schema1
from .metadata import V2Metadata
from .progress import Meter, Output, action, message
from .service import (
    BlobDownload,
    DistributionService,
    Request,
    SharedSession,
    fetch_config,
    get_manifest,
    try_endpoints,
    unpack_pool,
)
from .xfer import Transfer


def short(dgst: str) -> str:
    """stringid.TruncateID of a digest."""
    return dgst.partition(":")[2][:12]


class ImageConfigError(RegistryError):
    pass


def translate_pull_error(err: BaseException, ref: refmod.Reference) -> errdefs.DockerError:
    """TranslatePullError: denied/manifest unknown/name unknown → 404, the rest 500."""
    if isinstance(err, errdefs.DockerError):
        return err
    code = first_code(err)
    if code is not None and not isinstance(err, URLError):
        if code.code == "DENIED":
            return errdefs.NotFound(f"pull access denied for {refmod.familiar_name(ref)}, repository does not "
                                    f"exist or may require 'docker login': {code}")
        if code.code == "MANIFEST_UNKNOWN":
            return errdefs.NotFound(f"manifest for {refmod.familiar_string(ref)} not found: {code}")
        if code.code == "NAME_UNKNOWN":
            return errdefs.NotFound(f"repository {refmod.familiar_name(ref)} not found: {code}")
        return errdefs.Unknown(str(code))
    return errdefs.Unknown(str(err))


def _continue_on_error(err: BaseException, mirror: bool) -> bool:
    code = first_code(err)
    if code is not None and not isinstance(err, URLError):
        return mirror or code.code in ("UNAUTHORIZED", "MANIFEST_UNKNOWN", "NAME_UNKNOWN")
    if isinstance(err, ImageConfigError):
        return mirror
    if isinstance(err, mf.ManifestError):
        return False
    return "no such process" not in str(err)


@traced("Pull", image_action="pull", count_errors=True)  # dockerd times pullImageWithReference
async def pull(svc: DistributionService, ref: refmod.Reference, platform: Platform | None, req: Request,
               out: Output) -> None:
    """Pull: every endpoint in turn until one works; the error of the last one wins."""
    if refmod.familiar_name(ref) == "scratch":
        raise errdefs.Forbidden("'scratch' is a reserved name")

    async def attempt(ep: Endpoint, session: Session, shared: SharedSession) -> None:
        await _Puller(svc, session, shared, ref, platform, out, ep.mirror).pull_repository()

    last_err = await try_endpoints(
        svc.registry.endpoints(ref.domain), req, f"repository:{ref.path}:pull", attempt,
        retryable=(RegistryError, mf.ManifestError, aiohttp.ClientError),
        # even once the stream has started: a mirror failing midway falls back to the next
        # endpoint, which starts again with its own "Pulling from" (distribution/pull.go)
        go_on=lambda e, ep: _continue_on_error(e, ep.mirror))
    if last_err is None:
        return
    raise translate_pull_error(last_err, ref)


class _Puller:
    def __init__(self, svc: DistributionService, s: Session, shared: SharedSession, ref: refmod.Reference,
                 platform: Platform | None, out: Output, mirror: bool) -> None:
        self.svc, self.s, self.shared, self.ref, self.platform, self.out = svc, s, shared, ref, platform, out
        self.path = ref.path
        self.source = f"{ref.domain}/{ref.path}"  # the manifest cache's distribution source
        self.mirror = mirror

    @traced("pullV2Repository")
    async def pull_repository(self) -> None:
        ref = self.ref
        if ref.tag or ref.digest:
            updated = await self.pull_tag(ref)
        else:
            updated = False
            for tag in await self.tags():
                updated = await self.pull_tag(refmod.with_tag(ref, tag)) or updated
        what = refmod.familiar_string(ref)
        self.out.put(message(f"Status: Downloaded newer image for {what}" if updated
                             else f"Status: Image is up to date for {what}"))

    async def tags(self) -> list[str]:
        url: str | None = self.s.url(f"/v2/{self.path}/tags/list")
        found: list[str] = []
        while url:
            r = await self.s.request("GET", url)
            try:
                if r.status != 200:
                    raise await error_of(r)
                doc = await r.json(content_type=None)
                link = r.headers.get("Link", "")
            finally:
                r.release()
            found += [t for t in (doc.get("tags") or []) if isinstance(t, str)]
            url = None
            if link.startswith("<") and ">" in link:
                url = urljoin(self.s.url("/"), link[1:link.index(">")])
        return found

    @traced("pullV2Tag")
    async def pull_tag(self, ref: refmod.Reference) -> bool:
        by_digest = bool(ref.digest)
        m = await get_manifest(self.s, self.path, ref.digest or ref.tag, by_digest, self.svc.manifests, self.source)
        if not m.is_list and m.signed is None:
            mf.check_config_media_type(m)
        self.out.put(message(f"Pulling from {self.path}", ref.tag if not by_digest else str(ref)))
        shown_digest = m.digest
        if m.signed is not None:
            if ref.domain == "docker.io":
                self.out.put(message(schema1.outdated_warning(ref)))
            image_id = await self.pull_schema1(ref, m, self.platform)
        elif m.is_list:
            d = mf.select(m, self.platform)
            m = await get_manifest(self.s, self.path, d.digest, True, self.svc.manifests, self.source)
            if m.is_list:
                raise mf.ManifestError("unsupported manifest format")
            if m.signed is not None:
                self.out.put(message(schema1.deprecation_notice(ref)))
                p = d.platform or {}
                image_id = await self.pull_schema1(
                    refmod.with_digest(refmod.trim_named(ref), d.digest), m,
                    Platform(str(p.get("os") or ""), str(p.get("architecture") or ""), str(p.get("variant") or "")))
            else:
                mf.check_config_media_type(m)
                image_id = await self.pull_schema2(m)
        else:
            image_id = await self.pull_schema2(m)
        self.out.put(message(f"Digest: {shown_digest}"))
        return await asyncio.get_running_loop().run_in_executor(
            None, self.svc.images.record_pull, ref, shown_digest, image_id)

    @traced("pullSchema2Layers")
    async def pull_schema2(self, m: mf.Manifest) -> str:
        layers = m.layers
        for d in layers:
            mf.check_layer_media_type(d.media_type)
            try:
                refmod.parse_digest(d.digest)
            except refmod.ReferenceError as e:
                raise mf.ManifestError(f'could not validate layer digest "{d.digest}": {e}') from None
        mf.check_layer_media_type(m.config.media_type)
        cfg_digest = m.config.digest
        if self.svc.images.image_by_id(cfg_digest) is not None:
            return cfg_digest  # the image is here: no layer lines, no config fetch
        svc = self.svc
        config_task = asyncio.create_task(fetch_config(self.s, self.path, cfg_digest))

        async def finish(top: str | None) -> str:
            raw = config_task.result()
            try:
                img = Image(raw)
            except errdefs.DockerError:
                raise ImageConfigError("invalid rootfs in image configuration") from None
            if img.os == "windows":
                raise ImageConfigError('image operating system "windows" cannot be used on this platform')
            got = svc.layers.lookup(top).diff_ids() if top else []  # type: ignore[union-attr]  # the chain just registered is in the store
            if got != img.diff_ids:
                raise ImageConfigError("layers from manifest don't match image configuration")
            await asyncio.get_running_loop().run_in_executor(None, svc.images.create_image, raw)
            return img.id

        try:
            return await self._pull_layers(layers, [config_task], finish)
        finally:
            if not config_task.done():
                config_task.cancel()

    @traced("pullSchema1")
    async def pull_schema1(self, ref: refmod.Reference, m: mf.Manifest, platform: Platform | None) -> str:
        """pullSchema1: the v1 entries checked and deduplicated, the layers of the entries
        that are not `throwaway` pulled bottom first, and the config made of the top entry
        with the pulled layers' DiffIDs and every entry's history."""
        s1 = m.signed
        assert s1 is not None
        schema1.verify(s1, ref, m.digest)
        schema1.fix_layers(s1)
        history: list[v1.History] = []
        layers: list[mf.Descriptor] = []
        for i in range(len(s1.fs_layers) - 1, -1, -1):
            blob = s1.fs_layers[i]
            try:
                refmod.parse_digest(blob)
            except refmod.ReferenceError as e:
                raise mf.ManifestError(f'could not validate layer digest "{blob}": {e}') from None
            entry = s1.history[i].encode()
            try:
                throwaway = v1.throwaway(entry)
                history.append(v1.history_from_config(entry, throwaway))
            except v1.V1Error as e:
                raise mf.ManifestError(str(e)) from None
            if not throwaway:
                layers.append(mf.Descriptor("", blob, 0))
        config_os = platforms.HOST_OS  # the manifest names none (dockerd looks only under LCOW)
        requested = platform.OS if platform is not None else config_os
        if config_os.lower() != requested.lower():
            raise mf.ManifestError(f'cannot download image with operating system "{config_os}" when requesting '
                                   f'"{requested}"')
        svc = self.svc

        async def finish(top: str | None) -> str:
            diff_ids = svc.layers.lookup(top).diff_ids() if top else []  # type: ignore[union-attr]  # the chain just registered is in the store
            try:
                raw = v1.make_config_from_v1_config(s1.history[0].encode(), diff_ids, history)
            except v1.V1Error as e:
                raise mf.ManifestError(str(e)) from None
            img = await asyncio.get_running_loop().run_in_executor(None, svc.images.create_image, raw)
            return img.id

        return await self._pull_layers(layers, [], finish)

    async def _pull_layers(self, layers: list[mf.Descriptor], others: list[asyncio.Task[Any]],
                           finish: Callable[[str | None], Awaitable[str]]) -> str:
        """The layers not already registered downloaded and registered in order (beside the
        `others`, which must end well too); `finish` then runs on the top chain while it is
        still held, and gives the image ID."""
        svc = self.svc
        # the already-present prefix (digest → DiffID known and the chain registered)
        base: str | None = None
        n_present = 0
        for d in layers:
            diff = svc.metadata.get_diff_id(d.digest)
            if diff is None:
                break
            chain = create_chain_id(base, diff)
            if svc.layers.lookup(chain) is None:
                break
            base, n_present = chain, n_present + 1
        held = None
        if base is not None:
            try:
                held = svc.layers.get(base).chain_id
            except errdefs.NotFound:
                base, n_present = None, 0
        watched: list[Transfer] = []
        try:
            key = ""
            for d in layers[:n_present]:
                key += "v2:" + d.digest
                self.out.put(action("Already exists", short(d.digest)))
            parent: Transfer | None = None
            downloads: dict[str, Transfer] = {}
            for d in layers[n_present:]:
                key += "v2:" + d.digest
                source = downloads.get(d.digest)
                if source is not None and parent is not None:
                    # the same blob lower in this image: not downloaded again, its layer's
                    # tar registered on the new parent, silently (makeDownloadFuncFromDownload)
                    run = self._from_download(d, source, parent)
                else:
                    self.out.put(action("Pulling fs layer", short(d.digest)))
                    run = self._downloader(d, parent, base)
                t, _shared = svc.downloads.watch(key, run, self.out.put)
                t.on_release = _release_layer(svc)
                watched.append(t)
                downloads.setdefault(d.digest, t)
                parent = t
            tasks: list[asyncio.Task[Any]] = others + [t.task for t in watched if t.task is not None]
            pending: set[asyncio.Task[Any]] = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if task.cancelled():
                        raise RegistryError("layer registration cancelled")
                    exc = task.exception()
                    if exc is not None:
                        raise exc
            top = watched[-1].started.result() if watched else base
            return await finish(top)
        finally:
            cancelled = [t.task for t in watched if svc.downloads.unwatch(t, self.out.put) and t.task]
            if cancelled:
                # their temp files and half-made layers are gone before the client hears back
                await asyncio.wait(cancelled)
            if held is not None:
                svc.layers.release(held)

    def _from_download(self, d: mf.Descriptor, source: Transfer, parent: Transfer) -> Callable[[Transfer], Any]:
        svc, repo = self.svc, self.ref.name

        async def run(t: Transfer) -> str:
            parent_chain = await asyncio.shield(parent.started)
            source_chain = await asyncio.shield(source.started)

            def register() -> Any:
                with tempfile.TemporaryFile(dir=svc.tmp_dir) as f:
                    svc.layers.tar_stream(source_chain, f)
                    f.seek(0)
                    try:
                        return svc.layers.register(f, parent_chain)
                    except errdefs.DockerError as e:
                        raise RegistryError(f"failed to register layer: {e}") from None

            layer = await _run_undoable(register, lambda lay: svc.layers.release(lay.chain_id))
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, svc.metadata.add, layer.diff_id, V2Metadata(d.digest, repo))
            except BaseException:
                svc.layers.release(layer.chain_id)
                raise
            return str(layer.chain_id)

        return run

    def _downloader(self, d: mf.Descriptor, parent: Transfer | None, base: str | None) -> Callable[[Transfer], Any]:
        svc, s, shared, path = self.svc, self.s, self.shared, self.path
        repo = self.ref.name
        id_ = short(d.digest)

        async def run(t: Transfer) -> str:
            shared.hold()
            bd = BlobDownload(svc, s, path, d, t.broadcast, id_)
            downloaded = False
            try:
                await svc.downloads.acquire(lambda: t.broadcast(action("Waiting", id_)))
                try:
                    blob = await bd.run()
                    downloaded = True
                finally:
                    svc.downloads.release()
                if svc.layers.can_unpack_detached():
                    # unpack now, beside the other layers; chain it once its parent is in
                    u = await _run_undoable(lambda: _unpack(svc, blob, t, id_), svc.layers.discard_unpacked)
                    try:
                        parent_chain = base if parent is None else await asyncio.shield(parent.started)
                    except BaseException:
                        svc.layers.discard_unpacked(u)
                        raise
                    layer = await _run_undoable(lambda: svc.layers.commit_unpacked(u, parent_chain),
                                                lambda lay: svc.layers.release(lay.chain_id))
                else:
                    parent_chain = base if parent is None else await asyncio.shield(parent.started)
                    layer = await _register(svc, blob, parent_chain, t, id_)
            finally:
                bd.discard(keep=not downloaded)  # an interrupted download is resumed next time
                try:
                    await shared.release()
                except BaseException:
                    if "layer" in locals():
                        svc.layers.release(layer.chain_id)
                    raise
            t.broadcast(action("Pull complete", id_))
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, svc.metadata.add, layer.diff_id, V2Metadata(d.digest, repo))
            except BaseException:
                svc.layers.release(layer.chain_id)  # cancelled at the last step: the layer goes back
                raise
            return layer.chain_id

        return run


def _release_layer(svc: DistributionService) -> Callable[[Transfer], None]:
    def release(t: Transfer) -> None:
        task = t.task
        if task is not None and task.done() and not task.cancelled() and task.exception() is None:
            svc.layers.release(task.result())
    return release


async def _run_undoable(fn: Callable[[], Any], undo: Callable[[Any], Any]) -> Any:
    """fn in a worker thread; if the caller is cancelled meanwhile, wait and undo its result."""
    fut = asyncio.get_running_loop().run_in_executor(None, fn)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        if not fut.cancelled() and fut.exception() is None:
            undo(fut.result())
        raise


class _MeteredReader(io.RawIOBase):
    def __init__(self, f: Any, meter: Any) -> None:
        super().__init__()
        self.f, self.meter = f, meter

    def readinto(self, b: Any) -> int:
        n = self.f.readinto(b)
        self.meter.add(n or 0)
        return n

    def readable(self) -> bool:
        return True


def _unpack(svc: DistributionService, blob: str, t: Transfer, id_: str) -> Any:
    size = os.path.getsize(blob)
    pool = unpack_pool(svc)
    if pool is not None:
        # in a worker process, which tells how far it has read
        meter = Meter(t.emit_threadsafe, "Extracting", id_, size)

        def progress(n: int) -> None:
            if n > meter.current:
                meter.add(n - meter.current)

        try:
            u = svc.layers.unpack_file(blob, pool, progress)
        except errdefs.DockerError as e:
            raise RegistryError(f"failed to register layer: {e}") from None
        meter.current = size
        meter.done()
        return u
    meter = Meter(t.emit_threadsafe, "Extracting", id_, size)
    with open(blob, "rb") as f:
        try:
            u = svc.layers.unpack(_MeteredReader(f, meter))  # type: ignore[arg-type]  # a file-like reader: read() is all it needs
        except errdefs.DockerError as e:
            raise RegistryError(f"failed to register layer: {e}") from None
    meter.done()
    return u


async def _register(svc: DistributionService, blob: str, parent: str | None, t: Transfer, id_: str) -> Any:
    """Unpack the verified blob on its parent in a worker thread ("Extracting" over the
    compressed bytes); a cancellation waits for the thread and gives the layer back."""
    size = os.path.getsize(blob)

    def work() -> Any:
        meter = Meter(t.emit_threadsafe, "Extracting", id_, size)

        class Reader(io.RawIOBase):
            def __init__(self, f: Any) -> None:
                super().__init__()
                self.f = f

            def readinto(self, b: Any) -> int:
                n = self.f.readinto(b)
                meter.add(n or 0)
                return n

            def readable(self) -> bool:
                return True

        with open(blob, "rb") as f:
            try:
                layer = svc.layers.register(Reader(f), parent)  # type: ignore[arg-type]  # a file-like reader: read() is all it needs
            except errdefs.DockerError as e:
                raise RegistryError(f"failed to register layer: {e}") from None
        meter.done()
        return layer

    fut = asyncio.get_running_loop().run_in_executor(None, work)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        if not fut.cancelled() and fut.exception() is None:
            svc.layers.release(fut.result().chain_id)
        raise


__all__ = ["ErrCode", "Transport", "pull", "translate_pull_error", "transport_text"]
