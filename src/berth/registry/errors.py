"""Registry errors as dockerd's vendored distribution client words them
(registry/api/errcode, registry/client/errors.go HandleErrorResponse, net/url.Error).

Every class carries the exact Go text in str(); classification for the API happens
where the operation ends (distribution/pull.py translate_pull_error and friends)."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping

# errcode descriptors: the code's default message
DEFAULT_MESSAGES = {
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "TOOMANYREQUESTS": "too many requests",
    "UNKNOWN": "unknown error",
    "UNSUPPORTED": "The operation is unsupported.",
    "NAME_UNKNOWN": "repository name not known to registry",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "BLOB_UNKNOWN": "blob unknown to registry",
    "NAME_INVALID": "invalid repository name",
    "TAG_INVALID": "manifest tag did not match URI",
    "MANIFEST_INVALID": "manifest invalid",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "SIZE_INVALID": "provided length did not match content length",
}


class RegistryError(Exception):
    """Base: str() is the text dockerd would show."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class ErrCode(RegistryError):
    """errcode.Error: `<code lowered, _ as space>: <message>`."""

    def __init__(self, code: str, message: str = "", detail: object = None) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, "unknown error")
        self.detail = detail
        super().__init__(f"{code.lower().replace('_', ' ')}: {self.message}")


class ErrCodes(RegistryError):
    """errcode.Errors: one entry prints as itself, several as `errors:\\n<e>\\n...`."""

    def __init__(self, errors: list[ErrCode]) -> None:
        self.errors = errors
        text = str(errors[0]) if len(errors) == 1 else "errors:\n" + "".join(f"{e}\n" for e in errors)
        super().__init__(text)


class UnexpectedStatus(RegistryError):
    """`received unexpected HTTP status: <status line>` (5xx and other odd statuses)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        super().__init__(f"received unexpected HTTP status: {status} {reason}")


class BadResponseBody(RegistryError):
    """UnexpectedHTTPResponseError: a body that is not registry JSON (never retried)."""


class Transport(RegistryError):
    """A connection-level failure (refused, reset, TLS, EOF): retryable."""


class URLError(RegistryError):
    """Go's *url.Error: `<Method> "<url>": <err>`; `err` is the wrapped error."""

    def __init__(self, method: str, url: str, err: Exception) -> None:
        self.err = err
        super().__init__(f'{method.capitalize()} "{url}": {err}')


class NoBasicAuthCredentials(RegistryError):
    def __init__(self) -> None:
        super().__init__("no basic auth credentials")


class TokenError(RegistryError):
    pass


class VerificationError(RegistryError):
    pass


def first_code(err: BaseException) -> ErrCode | None:
    """The first errcode inside `err` (through url.Error wrapping), as TranslatePullError reads it."""
    while isinstance(err, URLError):
        err = err.err
    if isinstance(err, ErrCodes):
        return err.errors[0] if err.errors else None
    if isinstance(err, ErrCode):
        return err
    return None


_AUTH_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenges(headers: list[str]) -> list[tuple[str, dict[str, str]]]:
    """challenge.ResponseChallenges: each WWW-Authenticate → (scheme lowered, params).
    Parsing stops at the first malformed parameter."""
    out: list[tuple[str, dict[str, str]]] = []
    for h in headers:
        h = h.strip()
        scheme, _, rest = h.partition(" ")
        if not scheme:
            continue
        params: dict[str, str] = {}
        pos = 0
        rest = rest.strip()
        while pos < len(rest):
            m = _AUTH_PARAM.match(rest, pos)
            if m is None or m.end() == pos:
                break
            value = m.group(2) if m.group(2) is not None else m.group(3)
            params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = m.end()
        out.append((scheme.lower(), params))
    return out


def handle_error_response(status: int, reason: str, headers: Mapping[str, str] | list[str], body: bytes,
                          auth_headers: list[str] | None = None) -> RegistryError:
    """HandleErrorResponse: 4xx bodies parsed into errcodes (merged with a Bearer
    challenge's `error`), anything else an unexpected status."""
    if 400 <= status < 500:
        merged: list[ErrCode] = []
        for scheme, params in parse_challenges(auth_headers or []):
            if scheme != "bearer":
                continue
            kind = params.get("error")
            if kind == "invalid_token":
                merged.append(ErrCode("UNAUTHORIZED", params.get("error_description", "")))
            elif kind == "insufficient_scope":
                merged.append(ErrCode("DENIED", params.get("error_description", "")))
        parsed = _parse_http_error(status, body)
        if merged:
            if isinstance(parsed, ErrCodes):
                merged += parsed.errors
            elif isinstance(parsed, ErrCode):
                merged.append(parsed)
            return ErrCodes(merged)
        return parsed
    return UnexpectedStatus(status, reason)


def _parse_http_error(status: int, body: bytes) -> RegistryError:
    """parseHTTPErrorResponse."""
    try:
        doc = json.loads(body)
    except ValueError as e:
        if status == 401:
            return ErrCode("UNAUTHORIZED", "authentication required", body.decode(errors="replace"))
        return BadResponseBody(f'error parsing HTTP {status} response body: {_go_json_error(body, e)}: '
                               f'{json.dumps(body.decode(errors="replace"))}')
    if isinstance(doc, dict) and isinstance(doc.get("details"), str) and doc.get("details"):
        code = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS"}.get(status, "UNKNOWN")
        return ErrCode(code, doc["details"])
    errs = doc.get("errors") if isinstance(doc, dict) else None
    if not errs:
        return BadResponseBody(f"error parsing HTTP {status} response body: no error details found in HTTP "
                               f"response body: {json.dumps(body.decode(errors='replace'))}")
    codes = []
    for item in errs:
        if isinstance(item, dict):
            codes.append(ErrCode(str(item.get("code") or "UNKNOWN"), str(item.get("message") or ""),
                                 item.get("detail")))
    return ErrCodes(codes)


def _go_json_error(body: bytes, e: ValueError) -> str:
    """encoding/json's error for the usual non-JSON bodies (HTML pages, empty bodies)."""
    if not body.strip():
        return "unexpected end of JSON input"
    ch = body.lstrip()[:1].decode(errors="replace")
    return f"invalid character {json.dumps(ch).replace(chr(34), chr(39))} looking for beginning of value"
