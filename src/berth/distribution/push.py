"""Push (moby/distribution/push.go Push, push_v2.go pushV2Repository, pushV2Tag,
v2PushDescriptor.Upload; xfer/upload.go).

Layers go top first ("Preparing" for each), through the daemon-wide upload manager
(5 at once). A layer the registry already has (per the distribution metadata, checked
with HEAD) is "Layer already exists"; one known in another repository of the same
registry is mounted ("Mounted from <repo>"); the others are regenerated from the layer
store, gzip-compressed in a worker thread and uploaded with one PATCH and the closing
PUT. Then the config blob, the schema2 manifest (3-space indent), the
`<tag>: digest: … size: …` line and its aux record."""
from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import aiohttp

from .. import errdefs
from ..image import reference as refmod
from ..layer.store import Layer
from ..registry.config import Endpoint
from ..registry.errors import RegistryError, Transport
from ..registry.session import Session, error_of, transport_text
from ..trace import traced
from . import manifest as mf
from .metadata import V2Metadata, auth_hmac_key, compute_hmac
from .progress import Output, action, aux, message, update
from .service import DistributionService, Request, SharedSession, transfer_error, try_endpoints
from .xfer import Transfer


def short(dgst: str) -> str:
    return dgst.partition(":")[2][:12]


@dataclass
class _Pushed:
    desc: mf.Descriptor


@traced("Push", image_action="push", count_errors=True)  # dockerd times distribution.Push
async def push(svc: DistributionService, ref: refmod.Reference, req: Request, out: Output) -> None:
    out.put(message(f"The push refers to repository [{ref.name}]"))
    name = refmod.familiar_name(ref)
    local = svc.images.refs.repositories.get(name, {})
    if not local:
        raise errdefs.NotFound(f"An image does not exist locally with the tag: {name}")

    async def attempt(ep: Endpoint, session: Session, shared: SharedSession) -> None:
        await _Pusher(svc, session, shared, ref, req, out).push_repository()

    last_err = await try_endpoints(svc.registry.endpoints(ref.domain, push=True), req,
                                   f"repository:{ref.path}:push,pull", attempt)
    if last_err is None:
        return
    raise errdefs.Unknown(str(last_err))


class _Pusher:
    def __init__(self, svc: DistributionService, s: Session, shared: SharedSession, ref: refmod.Reference,
                 req: Request, out: Output) -> None:
        self.svc, self.s, self.shared, self.ref, self.out = svc, s, shared, ref, out
        self.path = ref.path
        self.hmac_key = auth_hmac_key(req.creds_json)
        self.pushed: dict[str, mf.Descriptor] = {}  # diff ID → descriptor, this request

    @traced("pushV2Repository")
    async def push_repository(self) -> None:
        refs = self.svc.images.refs
        if self.ref.tag:
            image_id = refs.get(self.ref)
            if image_id is None:
                raise errdefs.NotFound(f"tag does not exist: {refmod.familiar_string(self.ref)}")
            await self.push_tag(self.ref, image_id)
            return
        tagged = [(refmod.parse_normalized_named(k), v) for k, v in
                  refs.repositories.get(refmod.familiar_name(self.ref), {}).items()]
        tagged = [(r, v) for r, v in tagged if r.tag and not r.digest]
        if not tagged:
            raise errdefs.NotFound(f"no tags to push for {refmod.familiar_name(self.ref)}")
        for r, image_id in tagged:
            await self.push_tag(r, image_id)

    @traced("pushV2Tag")
    async def push_tag(self, ref: refmod.Reference, image_id: str) -> None:
        svc = self.svc
        img = svc.images.image_by_id(image_id)
        if img is None:
            raise errdefs.NotFound(f"No such image: {image_id}")
        chain: list[Layer] = []
        layer = svc.layers.lookup(img.top_layer) if img.top_layer else None
        while layer is not None:
            chain.append(layer)  # top first, as dockerd's descriptors
            layer = layer.parent
        for layer in chain:
            self.out.put(action("Preparing", short(layer.diff_id)))
        watched: list[tuple[Transfer, Layer]] = []
        try:
            for layer in chain:
                key = f"v2push:{self.ref.name} {layer.diff_id}"
                t, _ = svc.uploads.watch(key, self._uploader(layer), self.out.put)
                watched.append((t, layer))
            results = await asyncio.gather(*(asyncio.shield(t.started) for t, _ in watched))
        finally:
            cancelled = [t.task for t, _ in watched if svc.uploads.unwatch(t, self.out.put) and t.task]
            if cancelled:
                await asyncio.wait(cancelled)
        descs: list[mf.Descriptor] = list(reversed(results))  # base first in the manifest
        cfg_digest = image_id
        cfg_size = await self.push_config(cfg_digest, img.raw)
        raw = mf.schema2_manifest(mf.Descriptor(mf.CONFIG_V1, cfg_digest, cfg_size), descs)
        url = self.s.url(f"/v2/{self.path}/manifests/{ref.tag}")
        r = await self.s.request("PUT", url, headers={"Content-Type": mf.SCHEMA2}, data=raw)
        try:
            if not 200 <= r.status < 300:
                raise await error_of(r)
            got = r.headers.get("Docker-Content-Digest", "")
        finally:
            r.release()
        try:
            refmod.parse_digest(got)
        except refmod.ReferenceError:
            raise RegistryError("invalid checksum digest format") from None
        dgst = mf.sha256_digest(raw)
        self.out.put(message(f"{ref.tag}: digest: {dgst} size: {len(raw)}"))
        self.out.put(aux({"Tag": ref.tag, "Digest": dgst, "Size": len(raw)}))
        await asyncio.get_running_loop().run_in_executor(None, self._record, ref, dgst, image_id)

    def _record(self, ref: refmod.Reference, dgst: str, image_id: str) -> None:
        with self.svc.images._lock:
            self.svc.images.refs.add_digest(refmod.Reference(ref.name, "", dgst), image_id, True)

    @traced("manifestFromBuilder")  # the config blob, as schema2's builder.Build puts it
    async def push_config(self, dgst: str, raw: bytes) -> int:
        size = await self._blob_size(dgst)
        if size is not None:
            return size
        await self._upload_bytes(dgst, raw)
        size = await self._blob_size(dgst)
        if size is None:
            raise RegistryError(f"missing content-length header for request: "
                                f"{self.s.url(f'/v2/{self.path}/blobs/{dgst}')}")
        return size

    async def _blob_size(self, dgst: str, path: str | None = None) -> int | None:
        url = self.s.url(f"/v2/{path or self.path}/blobs/{dgst}")
        r = await self.s.request("HEAD", url)
        r.release()
        if r.status == 200:
            return r.content_length
        if r.status == 404:
            return None
        raise await error_of(r)

    # -- one layer -------------------------------------------------------------------------
    def _uploader(self, layer: Layer) -> Callable[[Transfer], Any]:
        async def run(t: Transfer) -> mf.Descriptor:
            self.shared.hold()
            try:
                await self.svc.uploads.acquire(lambda: t.broadcast(action("Waiting", short(layer.diff_id))))
                try:
                    return await self._upload_layer(t, layer)
                except RegistryError as e:
                    raise transfer_error(e) from None
                finally:
                    self.svc.uploads.release()
            finally:
                await self.shared.release()
        return run

    @traced("Upload")  # v2PushDescriptor.Upload
    async def _upload_layer(self, t: Transfer, layer: Layer) -> mf.Descriptor:
        svc, id_ = self.svc, short(layer.diff_id)
        if layer.diff_id in self.pushed:
            t.broadcast(action("Layer already exists", id_))
            return self.pushed[layer.diff_id]
        metas = svc.metadata.get_metadata(layer.diff_id)
        target = self.ref.name
        # candidates: HMAC matches first, then the target repository, then newest
        metas.sort(key=lambda m: (m.hmac == compute_hmac(self.hmac_key, m.digest, m.source_repository)
                                  and bool(m.hmac), m.source_repository == target), reverse=True)
        for m in metas:
            if m.source_repository != target:
                continue
            size = await self._blob_size(m.digest)
            if size is not None:
                t.broadcast(action("Layer already exists", id_))
                return self._done(layer, mf.Descriptor(mf.LAYER_GZIP, m.digest, size))
            svc.metadata.remove(layer.diff_id, m)
            break
        domain = self.ref.domain
        mounts = 0
        for m in metas:
            if m.source_repository == target or mounts >= 3:
                continue
            try:
                src = refmod.parse_normalized_named(m.source_repository)
            except refmod.ReferenceError:
                continue
            if src.domain != domain:
                continue
            mounts += 1
            q = urlencode(sorted({"from": src.path, "mount": m.digest}.items()))
            url = self.s.url(f"/v2/{self.path}/blobs/uploads/?{q}")
            r = await self.s.request("POST", url, extra_scopes=(f"repository:{src.path}:pull",))
            location = r.headers.get("Location", "")
            r.release()
            if r.status == 201:
                size = await self._blob_size(m.digest)
                if size is not None:
                    t.broadcast(action(f"Mounted from {src.path}", id_))
                    return self._done(layer, mf.Descriptor(mf.LAYER_GZIP, m.digest, size))
            elif r.status == 202 and location:
                await self._cancel_upload(location)
            svc.metadata.remove(layer.diff_id, m)
        # regenerate, compress and upload at once: a worker thread writes the gzip stream
        # into a bounded queue the PATCH body reads from
        dgst, size = await self._stream_layer(t, layer)
        t.broadcast(action("Pushed", id_))
        return self._done(layer, mf.Descriptor(mf.LAYER_GZIP, dgst, size))

    @traced("uploadUsingSession")
    async def _stream_layer(self, t: Transfer, layer: Layer) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
        sink = _QueueSink(loop, q)
        chain_id = self.svc.layers

        def produce() -> tuple[str, int]:
            try:
                with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:
                    tar = _CountingWriter(gz, sink)
                    chain_id.tar_stream(layer.chain_id, tar)  # type: ignore[arg-type]  # a file-like writer: write() is all it needs
                sink.flush_all()
                return "sha256:" + sink.h.hexdigest(), sink.n
            finally:
                sink.close()

        fut = loop.run_in_executor(None, produce)
        diff_size = layer.size or 1

        async def body() -> Any:
            while (chunk := await q.get()) is not None:
                yield chunk
                # "Pushing" counts uncompressed bytes against the layer's size, as dockerd
                t.broadcast(update("Pushing", short(layer.diff_id), sink.raw, diff_size))

        try:
            location = await self._start_upload()
            url = await self._patch(location, body())
            dgst, size = await fut
            await self._put(url, dgst)
            return dgst, size
        finally:
            sink.cancelled = True
            while not fut.done():  # unblock the producer if the upload stopped early
                try:
                    q.get_nowait()
                except asyncio.QueueEmpty:
                    await asyncio.sleep(0.01)
            if not fut.done():
                await asyncio.wait([fut])

    def _done(self, layer: Layer, desc: mf.Descriptor) -> mf.Descriptor:
        self.pushed[layer.diff_id] = desc
        self.svc.metadata.add(layer.diff_id, V2Metadata(desc.digest, self.ref.name,
                                                        compute_hmac(self.hmac_key, desc.digest, self.ref.name)))
        return desc

    async def _cancel_upload(self, location: str) -> None:
        url = urljoin(self.s.url(f"/v2/{self.path}/blobs/uploads/"), location)
        try:
            r = await self.s.request("DELETE", url)
            r.release()
        except RegistryError:
            pass

    async def _start_upload(self) -> str:
        start = self.s.url(f"/v2/{self.path}/blobs/uploads/")
        r = await self.s.request("POST", start)
        location = r.headers.get("Location", "")
        if r.status != 202 or not location:
            raise await error_of(r) if r.status >= 400 else RegistryError(
                f"unexpected status from POST request to {start}: {r.status} {r.reason}")
        r.release()
        return urljoin(start, location)

    async def _patch(self, url: str, body: Any) -> str:
        """One PATCH with the whole blob, chunked, as dockerd; the next URL."""
        r = await self.s.request("PATCH", url, data=body)
        location = r.headers.get("Location", "")
        if not 200 <= r.status < 300:
            raise await error_of(r)
        r.release()
        return urljoin(url, location) if location else url

    async def _put(self, url: str, dgst: str) -> None:
        r = await self.s.request("PUT", _with_query(url, "digest", dgst), data=b"")
        if not 200 <= r.status < 300:
            raise await error_of(r)
        r.release()

    async def _upload_bytes(self, dgst: str, data: bytes) -> None:
        """POST, PATCH, PUT ?digest= (uploadUsingSession) for a small blob (the config)."""
        url = await self._patch(await self._start_upload(), data)
        await self._put(url, dgst)


# Berth compresses pushed layers with gzip level 1 (dockerd: Go's level 6). Digests of pushed
# layers differ from dockerd's whatever the level (another deflate), and level 1 is several
# times faster (moby#26959, moby PR #48106).
GZIP_LEVEL = 1


class _QueueSink:
    """The gzip stream's destination: hashed, counted, and handed to the event loop in 1 MiB
    pieces through a bounded queue (the producer thread blocks while the upload catches up)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, q: asyncio.Queue[bytes | None]) -> None:
        self.loop, self.q = loop, q
        self.h = hashlib.sha256()
        self.n = 0
        self.raw = 0  # uncompressed bytes so far (progress)
        self.buf = bytearray()
        self.cancelled = False

    def write(self, b: bytes) -> int:
        self.h.update(b)
        self.n += len(b)
        self.buf += b
        if len(self.buf) >= 1 << 20:
            self._send(bytes(self.buf))
            self.buf = bytearray()
        return len(b)

    def flush(self) -> None:
        pass

    def flush_all(self) -> None:
        if self.buf:
            self._send(bytes(self.buf))
            self.buf = bytearray()

    def _send(self, data: bytes | None) -> None:
        if self.cancelled:
            raise RegistryError("upload cancelled")
        asyncio.run_coroutine_threadsafe(self.q.put(data), self.loop).result()

    def close(self) -> None:
        if not self.cancelled:
            self._send(None)


class _CountingWriter:
    def __init__(self, gz: Any, sink: _QueueSink) -> None:
        self.gz, self.sink = gz, sink

    def write(self, b: bytes) -> int:
        self.sink.raw += len(b)
        return self.gz.write(b)


def _with_query(url: str, key: str, value: str) -> str:
    u = urlsplit(url)
    q = parse_qsl(u.query, keep_blank_values=True) + [(key, value)]
    return urlunsplit((u.scheme, u.netloc, u.path, urlencode(q), u.fragment))


__all__ = ["Transport", "aiohttp", "push", "transport_text"]
