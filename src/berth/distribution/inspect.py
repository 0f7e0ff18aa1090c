"""GET /distribution/{name}/json (moby/api/server/router/distribution/distribution_routes.go
getDistributionInfo): the manifest descriptor a reference resolves to in its registry, and
the platforms it serves."""
from __future__ import annotations

import json
from typing import Any

from .. import errdefs
from ..image import reference as refmod
from ..registry.errors import RegistryError, URLError, first_code
from ..registry.session import Session, error_of
from . import manifest as mf
from .service import DistributionService, Request, fetch_config, get_manifest

_STATUS_OF = {"UNAUTHORIZED": errdefs.Unauthorized, "DENIED": errdefs.Forbidden, "NAME_UNKNOWN": errdefs.NotFound,
              "MANIFEST_UNKNOWN": errdefs.NotFound, "BLOB_UNKNOWN": errdefs.NotFound,
              "TOOMANYREQUESTS": errdefs.Unavailable}


def _classify(err: BaseException) -> errdefs.DockerError:
    """statusCodeFromDistributionError: an errcode's own status; the rest 500."""
    code = first_code(err)
    if code is not None and not isinstance(err, URLError):
        return _STATUS_OF.get(code.code, errdefs.Unknown)(str(err))
    return errdefs.Unknown(str(err))


def _platform(doc: dict[str, Any]) -> dict[str, Any]:
    """ocispec.Platform as Go marshals it."""
    out: dict[str, Any] = {"architecture": str(doc.get("architecture") or ""), "os": str(doc.get("os") or "")}
    if doc.get("os.version"):
        out["os.version"] = doc["os.version"]
    if doc.get("os.features"):
        out["os.features"] = doc["os.features"]
    if doc.get("variant"):
        out["variant"] = doc["variant"]
    return out


async def distribution_inspect(svc: DistributionService, name: str, req: Request) -> dict[str, Any]:
    try:
        ref = refmod.parse_any_reference(name)
    except refmod.ReferenceError as e:
        raise errdefs.InvalidParameter(str(e)) from None
    if not ref.is_named():
        raise errdefs.Untyped("no manifest found for full image ID")
    ref = refmod.tag_name_only(ref)
    last: BaseException | None = None
    for ep in svc.registry.endpoints(ref.domain):
        async with Session(ep, req.creds, [f"repository:{ref.path}:pull"], meta_headers=req.meta_headers,
                           upstream_ua=req.upstream_ua) as s:
            try:
                await s.ping()
            except URLError as e:
                last = e
                continue
            try:
                return await _inspect(s, ref)
            except (RegistryError, mf.ManifestError) as e:
                raise _classify(e) from None
    raise errdefs.Unknown(str(last))


async def _inspect(s: Session, ref: refmod.Reference) -> dict[str, Any]:
    m = await get_manifest(s, ref.path, ref.digest or ref.tag, bool(ref.digest))
    desc = {"mediaType": m.media_type, "digest": m.digest, "size": len(m.raw)}
    platforms: list[dict[str, Any]] | None = None
    if m.is_list:
        platforms = [_platform(d.platform or {}) for d in m.entries]
    elif m.media_type == mf.SCHEMA2:
        cfg = json.loads(await fetch_config(s, ref.path, m.config.digest))
        platforms = [_platform(cfg)]
    return {"Descriptor": desc, "Platforms": platforms}


__all__ = ["distribution_inspect", "error_of"]
