"""The daemon's registry operations (moby/daemon/images/image_pull.go PullImage,
image_push.go PushImage, image_search.go SearchRegistryForImages, daemon/auth.go
AuthenticateToRegistry): parse what the client asked, run it through the
distribution and registry packages, and log the `pull`/`push` events."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from .. import errdefs
from ..distribution.inspect import distribution_inspect
from ..distribution.progress import Output, message
from ..distribution.pull import pull
from ..distribution.push import push
from ..distribution.service import DistributionService, Options, Request
from ..image import reference as refmod
from ..pkg import platforms
from ..registry.config import ServiceConfig
from ..registry.errors import RegistryError
from ..registry.login import login
from ..registry.search import DEFAULT_LIMIT, search
from ..registry.session import Credentials
from ..trace import traced
from ..types.auth import AuthConfig

Writer = Callable[[bytes], Awaitable[None]]


def distribution_service(d: Any) -> DistributionService:
    """The daemon's one DistributionService (its transfer managers are daemon-wide)."""
    svc: DistributionService | None = d._distribution
    if svc is None:
        cfg = d.config
        registry = ServiceConfig(insecure_registries=list(cfg.insecure_registries),
                                 mirrors=list(cfg.registry_mirrors),
                                 allow_nondistributable_artifacts=list(cfg.allow_nondistributable_artifacts),
                                 registry_mirrors_by_host=dict(cfg.berth_registry_mirrors),
                                 certs_dirs=tuple(cfg.berth_certs_dirs))
        opts = Options(max_concurrent_downloads=cfg.max_concurrent_downloads,
                       max_concurrent_uploads=cfg.max_concurrent_uploads,
                       max_download_attempts=cfg.max_download_attempts,
                       stall_timeout=cfg.berth_download_stall_timeout)
        svc = d._distribution = DistributionService(d.images, d.layers, registry, d.tmp_dir,
                                                    d.run_blocking, opts)
    return svc


def request_of(auth: AuthConfig | None, meta_headers: dict[str, str], upstream_ua: str) -> Request:
    a = auth or AuthConfig()
    creds_json = b""
    if a.username or a.password or a.auth or a.identitytoken or a.registrytoken:
        creds_json = json.dumps({"username": a.username, "password": a.password, "auth": a.auth,
                                 "identitytoken": a.identitytoken, "registrytoken": a.registrytoken}).encode()
    return Request(Credentials(a.username, a.password, a.identitytoken, a.registrytoken), creds_json,
                   meta_headers, upstream_ua)


def _cancel_current() -> Callable[[], None]:
    task = asyncio.current_task()

    def cancel() -> None:
        if task is not None:
            task.cancel()
    return cancel


@traced("PullImage")
async def pull_image(d: Any, image: str, tag: str, platform_spec: str, auth: AuthConfig | None,
                     meta_headers: dict[str, str], upstream_ua: str, write: Writer) -> None:
    """PullImage: `image` with one trailing ':' trimmed; `tag` (a tag or a digest) wins
    over any tag in `image`; no tag at all pulls every tag."""
    platform = platforms.parse(platform_spec) if platform_spec else None
    image = image.removesuffix(":")
    try:
        ref = refmod.parse_normalized_named(image)
    except refmod.ReferenceError as e:
        raise errdefs.InvalidParameter(str(e)) from None
    if tag:
        try:
            ref = refmod.with_digest(refmod.trim_named(ref), refmod.parse_digest(tag)) if ":" in tag else \
                refmod.with_tag(ref, tag)
        except refmod.ReferenceError:
            try:
                ref = refmod.with_tag(ref, tag)
            except refmod.ReferenceError:
                raise errdefs.InvalidParameter("invalid tag format") from None
        if ref.tag and ref.digest:
            ref = refmod.Reference(ref.name, ref.tag, "")
    svc = distribution_service(d)
    out = Output(write, _cancel_current())
    try:
        await pull(svc, ref, platform, request_of(auth, meta_headers, upstream_ua), out)
        if platform is not None:
            try:
                d.images.get_image(image, platform)
            except errdefs.NotFound as e:
                if "does not match the specified platform" in str(e):
                    out.put(message(f"WARNING: {e}"))
    finally:
        await out.close()
    d.images.log_image_event(refmod.familiar_string(ref), refmod.familiar_name(ref), "pull")


@traced("PushImage")
async def push_image(d: Any, image: str, tag: str, auth: AuthConfig | None, meta_headers: dict[str, str],
                     upstream_ua: str, write: Writer) -> None:
    """PushImage: name and tag errors are unclassified (500); everything after the first
    line comes in the stream."""
    try:
        ref = refmod.parse_normalized_named(image)
        if tag:
            ref = refmod.with_tag(ref, tag)
    except refmod.ReferenceError as e:
        raise errdefs.Untyped(str(e)) from None
    svc = distribution_service(d)
    out = Output(write, _cancel_current())
    try:
        try:
            await push(svc, ref, request_of(auth, meta_headers, upstream_ua), out)
        except errdefs.DockerError:
            raise
        except Exception as e:  # registry errors: push returns them raw (500 class)
            if isinstance(e, RegistryError):
                raise errdefs.Unknown(str(e)) from None
            raise
    finally:
        await out.close()
    d.images.log_image_event(refmod.familiar_string(ref), refmod.familiar_name(ref), "push")


async def authenticate_to_registry(d: Any, auth: AuthConfig, upstream_ua: str) -> tuple[str, str]:
    """AuthenticateToRegistry: (status, identity token)."""
    creds = Credentials(auth.username, auth.password, auth.identitytoken, auth.registrytoken)
    return await login(distribution_service(d).registry, creds, auth.serveraddress, upstream_ua)


async def search_registry_for_images(d: Any, term: str, limit: int | None, filters: Any, auth: AuthConfig | None,
                                     meta_headers: dict[str, str], upstream_ua: str) -> list[dict[str, Any]]:
    """SearchRegistryForImages (limit defaults to 25)."""
    a = auth or AuthConfig()
    creds = Credentials(a.username, a.password, a.identitytoken, a.registrytoken)
    return await search(distribution_service(d).registry, term, DEFAULT_LIMIT if limit is None else limit, filters,
                        creds, meta_headers, upstream_ua)


async def get_repository_info(d: Any, name: str, auth: AuthConfig | None, meta_headers: dict[str, str],
                              upstream_ua: str) -> dict[str, Any]:
    """getDistributionInfo's backend (GetRepository, then the manifest and its platforms)."""
    return await distribution_inspect(distribution_service(d), name, request_of(auth, meta_headers, upstream_ua))
