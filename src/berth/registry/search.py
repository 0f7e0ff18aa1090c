"""Search (moby/registry/service.go Search, session.go SearchRepositories,
endpoint_v1.go): always the v1 API of the index; results filtered here."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .. import errdefs
from ..types.filters import Args
from .config import INDEX_NAME, INDEX_SERVER, Endpoint, ServiceConfig, ssl_context
from .session import Credentials, proxy_for, transport_text, user_agent

DEFAULT_LIMIT = 25


def check_filters(filters: Args) -> tuple[bool | None, bool | None, int]:
    """(is-automated, is-official, stars) from the filters, with dockerd's refusals."""
    for key in filters.keys():  # noqa: SIM118 - Args is no dict and has no __iter__
        if key not in ("is-automated", "is-official", "stars"):
            raise errdefs.InvalidParameter(f"Invalid filter '{key}'")
    out: list[bool | None] = []
    for key in ("is-automated", "is-official"):
        values = filters.get(key)
        if not values:
            out.append(None)
            continue
        if any(v not in ("true", "false") for v in values) or len(set(values)) > 1:
            raise errdefs.InvalidParameter(f"Invalid filter '{key}=[{' '.join(values)}]'")
        out.append(values[0] == "true")
    stars = 0
    for v in filters.get("stars"):
        try:
            stars = max(stars, int(v))
        except ValueError:
            raise errdefs.InvalidParameter(f"Invalid filter 'stars={v}'") from None
    return out[0], out[1], stars


def split_term(term: str) -> tuple[str, str]:
    """(index host, remote name)."""
    if "://" in term:
        raise errdefs.Untyped('Invalid repository name (ex: "registry.domain.tld/myrepos")')
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        index, remote = first, rest
    else:
        index, remote = INDEX_NAME, term
    if index in (INDEX_NAME, "index.docker.io"):
        index = INDEX_NAME
        remote = remote.removeprefix("library/")
    return index, remote


async def search(cfg: ServiceConfig, term: str, limit: int, filters: Args, creds: Credentials,
                 meta_headers: dict[str, str], upstream_ua: str) -> list[dict[str, Any]]:
    automated, official, stars = check_filters(filters)
    index, remote = split_term(term)
    headers = {"User-Agent": user_agent(upstream_ua), **meta_headers}
    if index == INDEX_NAME:
        base, ep = INDEX_SERVER, Endpoint("https://index.docker.io", True, True)
    else:
        ep, base = await _v1_endpoint(cfg, index, headers)
    if not 1 <= limit <= 100:
        raise errdefs.InvalidParameter(f"Limit {limit} is outside the range of [1, 100]")
    url = f"{base}search?{urlencode({'q': remote, 'n': str(limit)})}"
    conn = aiohttp.TCPConnector(force_close=True, ssl=ssl_context(ep) or False)
    auth = aiohttp.BasicAuth(creds.username, creds.password) if creds.username else None
    async with aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        try:
            async with http.get(url, headers={**headers, "X-Docker-Token": "true"}, auth=auth,
                                proxy=proxy_for(url)) as r:
                body = await r.read()
                status = r.status
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise errdefs.Untyped(f'Get "{url}": {transport_text(e)}') from None
    if status != 200:
        raise errdefs.Untyped(f"Unexpected status code {status}")
    try:
        doc = json.loads(body)
        results = doc["results"] or []
    except (ValueError, KeyError, TypeError) as e:
        raise errdefs.Untyped(f"error decoding registry search results: {e}") from None
    out = []
    for res in results:
        if not isinstance(res, dict):
            continue
        item: dict[str, Any] = {"star_count": int(res.get("star_count") or 0), "is_official": bool(res.get("is_official")),
                "name": str(res.get("name") or ""), "is_automated": bool(res.get("is_automated")),
                "description": str(res.get("description") or "")}
        if automated is not None and item["is_automated"] != automated:
            continue
        if official is not None and item["is_official"] != official:
            continue
        if item["star_count"] < stars:
            continue
        out.append(item)
    return out


async def _v1_endpoint(cfg: ServiceConfig, index: str, headers: dict[str, str]) -> tuple[Endpoint, str]:
    """NewV1Endpoint: https, pinged at /v1/_ping (any answer will do); an insecure host
    falls back to http."""
    secure = cfg.is_secure(index)
    errors = []
    for scheme in ("https", "http"):
        if scheme == "http" and secure:
            break
        ep = Endpoint(f"{scheme}://{index}", scheme == "https", secure,
                      certs_dir=cfg.certs_dir(index) if secure else None)
        base = f"{scheme}://{index}/v1/"
        conn = aiohttp.TCPConnector(force_close=True, ssl=ssl_context(ep) or False)
        try:
            async with aiohttp.ClientSession(connector=conn) as http, \
                    http.get(base + "_ping", headers=headers, proxy=proxy_for(base),
                             timeout=aiohttp.ClientTimeout(total=15)) as r:
                await r.read()
            return ep, base
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            errors.append(f'Get "{base}_ping": {transport_text(e)}')
    if secure:
        raise errdefs.Untyped(
            f"invalid registry endpoint https://{index}/v1/: {errors[0]}. If this private registry supports only "
            f"HTTP or HTTPS with an unknown CA certificate, please add `--insecure-registry {index}` to the "
            f"daemon's arguments. In the case of HTTPS, if you have access to the registry's CA certificate, no "
            f"need for the flag; simply place the CA certificate at /etc/docker/certs.d/{index}/ca.crt")
    raise errdefs.Untyped(f'invalid registry endpoint "https://{index}/v1/". HTTPS attempt: {errors[0]}. '
                          f'HTTP attempt: {errors[1]}')
