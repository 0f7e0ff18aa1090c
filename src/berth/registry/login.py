"""Login (moby/registry/service.go Auth, auth.go loginV2): ping, then `GET /v2/` with the
credentials (token scope-less, offline access asked for, so a token server may hand out
a refresh token: the IdentityToken)."""
from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlsplit

from .. import errdefs
from .config import INDEX_HOSTNAME, Endpoint, ServiceConfig
from .errors import RegistryError, URLError, first_code
from .session import Credentials, Session


class _Fallback(Exception):
    def __init__(self, err: BaseException) -> None:
        self.err = err


def server_host(serveraddress: str) -> str:
    if not serveraddress:
        return INDEX_HOSTNAME
    addr = serveraddress if "://" in serveraddress else "https://" + serveraddress
    try:
        u = urlsplit(addr)
        _ = u.port
    except ValueError as e:
        raise errdefs.InvalidParameter(f"unable to parse server address: {e}") from None
    return u.netloc


async def login(cfg: ServiceConfig, creds: Credentials, serveraddress: str, upstream_ua: str = "") -> tuple[str, str]:
    """(status, identity token); errors as dockerd classes them."""
    host = server_host(serveraddress)
    if host == INDEX_HOSTNAME:
        host = "docker.io"
    last: BaseException | None = None
    for ep in cfg.endpoints(host, push=True):
        try:
            return await _login_v2(ep, creds, upstream_ua)
        except _Fallback as f:
            last = f.err
            continue
    # the last endpoint's error comes back still wrapped: its class is lost (500)
    raise errdefs.Untyped(str(last))


async def _login_v2(ep: Endpoint, creds: Credentials, upstream_ua: str) -> tuple[str, str]:
    async with Session(ep, creds, [], offline=True, upstream_ua=upstream_ua) as s:
        try:
            await s.ping()
        except URLError as e:
            raise _Fallback(e) from None
        url = s.url("/v2/")
        try:
            r = await s.request("GET", url)
        except RegistryError as e:
            err = e
            if not s.found_v2:
                raise _Fallback(err) from None
            code = first_code(err)
            if code is not None and code.code == "UNAUTHORIZED":
                raise errdefs.Unauthorized(str(err)) from None
            raise errdefs.Untyped(str(err)) from None
        r.release()
        if r.status == 200:
            return "Login Succeeded", s.refresh_token
        text = HTTPStatus(r.status).phrase if r.status in HTTPStatus._value2member_map_ else ""
        msg = f"login attempt to {url} failed with status: {r.status} {text}"
        if not s.found_v2:
            raise _Fallback(RegistryError(msg))
        raise errdefs.Untyped(msg)
