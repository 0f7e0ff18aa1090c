"""A minimal Docker token issuer for the registry's `token` auth (distribution's
docs/spec/auth/token.md): GET /token?service=&scope=&account= with Basic credentials
(or none: anonymous, pull only) answers {"token","access_token","expires_in","issued_at"}
with an RS256 JWT whose x5c header carries the signing certificate (the registry's
rootcertbundle). With `offline_token=true` and valid credentials a refresh_token is
handed out; POST /token with grant_type=refresh_token accepts it back.

    python token_issuer.py PORT CERT KEY USERS_FILE [TTL]    (USERS_FILE lines: user:password)

TTL (seconds, default 300) is how long a token is good for. The registry accepts a token
up to a minute past its `exp` (distribution's Leeway, for clock skew), so `exp` is set
that much earlier: a 3 s token is refused 3 s after it was issued.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PORT, CERT, KEY, USERS = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
TTL = int(sys.argv[5]) if len(sys.argv) > 5 else 300
LEEWAY = 60  # distribution's token.Leeway
REFRESH: dict[str, str] = {}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_der() -> str:
    pem = Path(CERT).read_text()
    body = "".join(line for line in pem.splitlines() if "CERTIFICATE" not in line)
    return body  # x5c is standard base64 of the DER


def users() -> dict[str, str]:
    out = {}
    for line in Path(USERS).read_text().splitlines():
        if ":" in line:
            u, p = line.rstrip("\n").split(":", 1)
            out[u] = p
    return out


def sign(claims: dict) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5c": [cert_der()]}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY], input=signing_input.encode(),
                         capture_output=True, check=True).stdout
    return f"{signing_input}.{b64(sig)}"


def grant(account: str, service: str, scopes: list[str]) -> list[dict]:
    access = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) < 3:
            continue
        typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
        allowed = [a for a in actions if a in ("pull", "push", "*")] if account else \
            [a for a in actions if a == "pull"]
        access.append({"type": typ, "name": name, "actions": allowed})
    return access


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _issue(self, account: str, service: str, scopes: list[str], offline: bool) -> None:
        now = int(time.time())
        exp = now + TTL - (LEEWAY if TTL < LEEWAY else 0)
        claims = {"iss": "berth-test-issuer", "sub": account, "aud": service, "exp": exp, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": grant(account, service, scopes)}
        doc = {"token": sign(claims), "access_token": "", "expires_in": TTL,
               "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        doc["access_token"] = doc["token"]
        if offline and account:
            rt = uuid.uuid4().hex
            REFRESH[rt] = account
            doc["refresh_token"] = rt
        self._answer(200, doc)

    def do_GET(self) -> None:
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        account = ""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if users().get(user) != pw:
                self._answer(401, {"details": "incorrect username or password"})
                return
            account = user
        self._issue(account, q.get("service", [""])[0], q.get("scope", []), q.get("offline_token") == ["true"])

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(n).decode())
        rt = form.get("refresh_token", [""])[0]
        account = REFRESH.get(rt)
        if form.get("grant_type") != ["refresh_token"] or account is None:
            self._answer(401, {"details": "invalid refresh token"})
            return
        scopes = " ".join(form.get("scope", [])).split()
        self._issue(account, form.get("service", [""])[0], scopes, False)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
