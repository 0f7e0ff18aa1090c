"""One operation's conversation with one registry endpoint (moby/registry/auth.go,
distribution registry/client/auth: endpointAuthorizer, tokenHandler, basicHandler).

As in dockerd: every request opens its own connection (DisableKeepAlives); the ping
decides the auth schemes (challenges are recorded only from a 401); credentials are
then attached pre-emptively to every `/v2/` request; a bearer token is fetched per
scope set and cached for this session until it expires. Berth differs in one way:
a 401 `invalid_token` answer to a later request fetches a fresh token once and
repeats the request (moby#33558, tokens expiring during long pushes).
Credentials live in this object only: never logged, never written.
"""
from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import platform
import ssl
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from .. import ENGINE_VERSION
from .config import Endpoint, ssl_context
from .errors import (
    ErrCode,
    NoBasicAuthCredentials,
    RegistryError,
    TokenError,
    Transport,
    URLError,
    handle_error_response,
    parse_challenges,
)

PING_TIMEOUT = 15.0


@dataclass
class Credentials:
    username: str = ""
    password: str = ""
    identitytoken: str = ""
    registrytoken: str = ""


@dataclass
class _Token:
    value: str
    expires: float


def user_agent(upstream: str = "") -> str:
    ua = (f"docker/{ENGINE_VERSION} go/python{platform.python_version()} git-commit/berth "
          f"kernel/{os.uname().release} os/linux arch/amd64")
    if upstream:
        esc = "".join("\\" + c if c in "();\\" else c for c in upstream)
        ua += f" UpstreamClient({esc})"
    return ua


def proxy_for(url: str) -> str | None:
    """http.ProxyFromEnvironment: HTTP(S)_PROXY unless NO_PROXY matches; loopback never proxied."""
    u = urlsplit(url)
    host = u.hostname or ""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    proxies = urllib.request.getproxies_environment()
    p = proxies.get(u.scheme)
    if not p or urllib.request.proxy_bypass_environment(u.netloc, proxies):  # type: ignore[attr-defined]  # public in CPython, absent from the stubs
        return None
    return p if "://" in p else "http://" + p


def transport_text(e: BaseException) -> str:
    """A Go-like description of a connection failure."""
    if isinstance(e, (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError)):
        return "x509: certificate signed by unknown authority"
    if isinstance(e, (aiohttp.ClientSSLError, ssl.SSLError)):
        s = str(e)
        if "WRONG_VERSION_NUMBER" in s or "record layer failure" in s or "packet length too long" in s:
            return "http: server gave HTTP response to HTTPS client"
        return f"remote error: tls: {s}"
    if isinstance(e, aiohttp.ClientConnectorError):
        os_err = e.os_error
        host = f"{e.host}:{e.port}"
        if isinstance(os_err, ConnectionRefusedError):
            return f"dial tcp {host}: connect: connection refused"
        return f"dial tcp {host}: {os_err.strerror or os_err}" if isinstance(os_err, OSError) else f"dial tcp {host}: {e}"
    if isinstance(e, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, asyncio.IncompleteReadError,
                      ConnectionResetError)):
        return "unexpected EOF"
    if isinstance(e, asyncio.TimeoutError):
        return "net/http: request canceled (Client.Timeout exceeded while awaiting headers)"
    return str(e) or type(e).__name__


class Session:
    """Async context manager; `scopes` are e.g. ["repository:foo:pull"]."""

    def __init__(self, endpoint: Endpoint, creds: Credentials, scopes: list[str], *, offline: bool = False,
                 meta_headers: dict[str, str] | None = None, upstream_ua: str = "") -> None:
        self.endpoint = endpoint
        self.creds = creds
        self.scopes = scopes
        self.offline = offline
        self.headers = {"User-Agent": user_agent(upstream_ua), **(meta_headers or {})}
        self.challenges: list[tuple[str, dict[str, str]]] = []
        self.found_v2 = False
        self.refresh_token = ""  # a login's IdentityToken
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Session:
        ctx: ssl.SSLContext | bool = ssl_context(self.endpoint)
        conn = aiohttp.TCPConnector(force_close=True, ssl=ctx if ctx else False, limit=0)
        self._http = aiohttp.ClientSession(connector=conn, auto_decompress=False,
                                           timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None
        return self._http

    def url(self, path: str) -> str:
        return self.endpoint.url + path

    # -- ping ----------------------------------------------------------------------
    async def ping(self) -> None:
        """PingV2Registry: any HTTP answer is a ping; a 401's challenges are kept.
        A transport failure raises URLError(Transport)."""
        url = self.url("/v2/")
        try:
            async with self.http.get(url, headers=self.headers, proxy=proxy_for(url),
                                     timeout=aiohttp.ClientTimeout(total=PING_TIMEOUT)) as r:
                await r.read()
                versions = ",".join(r.headers.getall("Docker-Distribution-Api-Version", []))
                self.found_v2 = "registry/2.0" in [v.strip() for v in versions.split(",")]
                if r.status == 401:
                    self.challenges = parse_challenges(r.headers.getall("WWW-Authenticate", []))
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise URLError("GET", url, Transport(transport_text(e))) from None

    # -- authorizer ------------------------------------------------------------------
    async def auth_header(self, method: str, url: str, extra_scopes: tuple[str, ...] = ()) -> dict[str, str]:
        """endpointAuthorizer.ModifyRequest for a `/v2/` URL."""
        if "/v2/" not in url:
            return {}
        for scheme, params in self.challenges:
            if scheme == "bearer":
                if self.creds.registrytoken:
                    return {"Authorization": f"Bearer {self.creds.registrytoken}"}
                token = await self._token(method, url, params, extra_scopes)
                return {"Authorization": f"Bearer {token}"}
            if scheme == "basic":
                if not (self.creds.username and self.creds.password):
                    raise URLError(method, url, NoBasicAuthCredentials())
                raw = f"{self.creds.username}:{self.creds.password}".encode()
                return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def invalidate_tokens(self) -> None:
        self._tokens.clear()

    async def _token(self, method: str, url: str, params: dict[str, str], extra: tuple[str, ...]) -> str:
        scopes = tuple(self.scopes) + extra
        cached = self._tokens.get(scopes)
        if cached is not None and cached.expires > time.time():
            return cached.value
        realm = params.get("realm")
        if not realm:
            raise URLError(method, url, TokenError("no realm specified for token auth challenge"))
        service = params.get("service", "")
        try:
            token, expires_in, issued, refresh = await self._fetch_token(realm, service, list(scopes))
        except RegistryError as e:
            raise URLError(method, url, e) from None
        if refresh:
            self.refresh_token = refresh
        expires = (issued or time.time()) + max(expires_in or 60, 60)
        if not extra:  # a token with extra scopes is not cached (tokenHandler)
            self._tokens[scopes] = _Token(token, expires)
        return token

    async def _fetch_token(self, realm: str, service: str, scopes: list[str]) -> tuple[str, int, float, str]:
        c = self.creds
        try:
            if c.identitytoken:
                form = {"scope": " ".join(scopes), "service": service, "client_id": "docker",
                        "grant_type": "refresh_token", "refresh_token": c.identitytoken}
                req = self.http.post(realm, data=form, headers=self.headers, proxy=proxy_for(realm),
                                     timeout=aiohttp.ClientTimeout(total=PING_TIMEOUT))
            else:
                q: list[tuple[str, str]] = []
                if c.username:
                    q.append(("account", c.username))
                if self.offline:
                    q += [("client_id", "docker"), ("offline_token", "true")]
                q += [("scope", s) for s in scopes]
                if service:
                    q.append(("service", service))
                auth = aiohttp.BasicAuth(c.username, c.password) if c.username and c.password else None
                sep = "&" if "?" in realm else "?"
                target = realm + (sep + urlencode(q) if q else "")
                req = self.http.get(target, auth=auth, headers=self.headers, proxy=proxy_for(realm),
                                    timeout=aiohttp.ClientTimeout(total=PING_TIMEOUT))
            async with req as r:
                body = await r.read()
                if not 200 <= r.status < 300:
                    raise handle_error_response(r.status, r.reason or "", r.headers, body,
                                                r.headers.getall("WWW-Authenticate", []))
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise Transport(transport_text(e)) from None
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise TokenError(f"unable to decode token response: {e}") from None
        token = doc.get("access_token") or doc.get("token") or ""
        if not token:
            raise TokenError("authorization server did not include a token in the response")
        issued = 0.0
        if doc.get("issued_at"):
            try:
                issued = datetime.fromisoformat(str(doc["issued_at"]).replace("Z", "+00:00")).timestamp()
            except ValueError:
                issued = 0.0
        return token, int(doc.get("expires_in") or 0), issued, str(doc.get("refresh_token") or "")

    # -- requests ------------------------------------------------------------------------
    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      extra_scopes: tuple[str, ...] = (), data: Any = None, allow_redirects: bool = True,
                      timeout: aiohttp.ClientTimeout | None = None) -> aiohttp.ClientResponse:
        """An authorised request; the caller reads and releases the response. Transport errors
        come back as URLError(Transport). Beyond dockerd: a 401 with `invalid_token` retries once
        with a new token (moby#33558), and a 429 with a Retry-After of at most a minute waits and
        retries, up to 3 times (dockerd fails at once)."""
        refreshed, waits = False, 0
        replayable = data is None or isinstance(data, bytes)
        while True:
            h = dict(self.headers)
            h.update(await self.auth_header(method, url, extra_scopes))
            h.update(headers or {})
            try:
                r = await self.http.request(method, url, headers=h, data=data, proxy=proxy_for(url),
                                            allow_redirects=allow_redirects, max_redirects=10,
                                            timeout=timeout if timeout is not None else self.http.timeout)
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                raise URLError(method, url, Transport(transport_text(e))) from None
            if (r.status == 401 and not refreshed and replayable and
                    any(p.get("error") == "invalid_token" for s, p in
                        parse_challenges(r.headers.getall("WWW-Authenticate", [])) if s == "bearer")):
                r.release()
                self.invalidate_tokens()
                refreshed = True
                continue
            if r.status == 429 and replayable and waits < 3:
                delay = retry_after(r.headers.get("Retry-After", ""))
                if delay is not None and delay <= 60:
                    r.release()
                    waits += 1
                    await asyncio.sleep(delay)
                    continue
            return r


def retry_after(value: str) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


async def error_of(r: aiohttp.ClientResponse) -> RegistryError:
    """HandleErrorResponse over a response."""
    try:
        body = await r.read()
    except (aiohttp.ClientError, OSError):
        body = b""
    return handle_error_response(r.status, r.reason or "", r.headers, body,
                                 r.headers.getall("WWW-Authenticate", []))


__all__ = ["Credentials", "ErrCode", "Session", "error_of", "field"]
