"""Real registries for the tests: Debian's `docker-registry` (distribution 2.8) started on a
loopback port with its own config and storage, anonymous, htpasswd Basic, TLS, or token
auth backed by a small token issuer (tests/token_issuer.py, RS256 via openssl). Every
process is stopped by the pid this module started."""
from __future__ import annotations

import asyncio as _asyncio
import base64 as _b64
import gzip as _gzip
import hashlib as _hashlib
import http.client
import io as _io
import json as _json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile as _tarfile
import tempfile
import threading as _threading
import time
import urllib.error as _uerr
import urllib.request as _ureq
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port(lo: int = 15110, hi: int = 15199) -> int:
    """A free port in the test range (each registry test takes its own); BERTH_TEST_PORTS
    (`first-last`) puts every port in that range instead, for runs beside other test runs
    (a port asked from 15190 up, for a registry nobody runs, then comes from the top)."""
    own = os.environ.get("BERTH_TEST_PORTS", "")
    if own:
        first, last = (int(x) for x in own.split("-", 1))
        if first <= lo <= last:
            hi = last + 1
        elif lo >= 15190:
            lo, hi = last, first - 1
        else:
            lo, hi = first, last + 1
    for p in range(lo, hi, 1 if hi > lo else -1):
        with socket.socket() as s:
            # as the servers bind (Go and aiohttp set SO_REUSEADDR): a port whose last
            # connections are in TIME_WAIT is free for them
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return p
    raise RuntimeError("no free port")


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_cert(d: str, name: str, cn: str = "127.0.0.1") -> tuple[str, str]:
    """A self-signed certificate (its own CA) for 127.0.0.1/localhost: (cert, key) paths."""
    cert, key = os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


@dataclass
class Registry:
    port: int
    tmp: str
    proc: subprocess.Popen[bytes] | None = None
    issuer: subprocess.Popen[bytes] | None = None
    tls_cert: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> str:
        return os.path.join(self.tmp, "data")

    def blob_path(self, dgst: str) -> str:
        hexpart = dgst.split(":", 1)[1]
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hexpart[:2], hexpart, "data")

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        _stop(self.issuer)
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_registry(auth: str = "", users: dict[str, str] | None = None, tls: bool = False,
                   port: int | None = None, token_ttl: int = 300, schema1: bool = False,
                   layer_urls: str = "") -> Registry:
    """auth: "" (anonymous), "htpasswd" or "token" (tokens good for `token_ttl` seconds);
    `schema1` lets it take schema1 manifest PUTs (signed ones only: it verifies them);
    `layer_urls`, a regexp, the `urls` of foreign layers it takes in manifests (none by default)."""
    tmp = tempfile.mkdtemp(prefix="berth-test-reg-")
    reg = Registry(port or free_port(), tmp)
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true", "storage:",
             "  filesystem:", f"    rootdirectory: {reg.storage}", "  delete:", "    enabled: true",
             "http:", f"  addr: 127.0.0.1:{reg.port}", "  secret: berth-test"]
    if tls:
        reg.tls_cert, key = make_cert(tmp, "registry")
        lines += ["  tls:", f"    certificate: {reg.tls_cert}", f"    key: {key}"]
    if auth == "htpasswd":
        htpasswd = os.path.join(tmp, "htpasswd")
        with open(htpasswd, "w") as f:
            for u, p in (users or {}).items():
                out = subprocess.run(["htpasswd", "-Bbn", u, p], check=True, capture_output=True, text=True).stdout
                f.write(out.strip() + "\n")
        lines += ["auth:", "  htpasswd:", "    realm: berth-test", f"    path: {htpasswd}"]
    elif auth == "token":
        cert, key = make_cert(tmp, "token-signer", cn="berth-test-token")
        iport = free_port(reg.port + 1)
        users_file = os.path.join(tmp, "users.txt")
        with open(users_file, "w") as f:
            for u, p in (users or {}).items():
                f.write(f"{u}:{p}\n")
        with open(os.path.join(tmp, "issuer.log"), "wb") as log:  # Popen keeps its own copy
            reg.issuer = subprocess.Popen([sys.executable, os.path.join(HERE, "token_issuer.py"), str(iport), cert,
                                           key, users_file, str(token_ttl)], stdout=subprocess.DEVNULL, stderr=log)
        wait_port(iport, reg.issuer)
        reg.extra["realm"] = f"http://127.0.0.1:{iport}/token"
        lines += ["auth:", "  token:", f"    realm: http://127.0.0.1:{iport}/token", "    service: berth-registry",
                  "    issuer: berth-test-issuer", f"    rootcertbundle: {cert}"]
    if schema1:
        lines += ["compatibility:", "  schema1:", "    enabled: true"]
    if layer_urls:
        lines += ["validation:", "  manifests:", "    urls:", "      allow:", f"        - {_json.dumps(layer_urls)}"]
    config = os.path.join(tmp, "config.yml")
    with open(config, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(tmp, "registry.log"), "wb") as log:
        reg.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_port(reg.port, reg.proc)
    except BaseException:
        reg.close()
        raise
    return reg


def restart(reg: Registry) -> None:
    """Start the stopped registry again on its port and storage."""
    with open(os.path.join(reg.tmp, "registry.log"), "ab") as log:
        reg.proc = subprocess.Popen(["docker-registry", "serve", os.path.join(reg.tmp, "config.yml")],
                                    stdout=subprocess.DEVNULL, stderr=log)
    wait_port(reg.port, reg.proc)


# -- content put straight into a registry (no daemon involved) --------------------------

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + _hashlib.sha256(data).hexdigest()


def file_layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar with the given regular files (and their directories)."""
    buf = _io.BytesIO()
    with _tarfile.open(fileobj=buf, mode="w", format=_tarfile.PAX_FORMAT) as tf:
        dirs: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = _tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = _tarfile.DIRTYPE, 0o755, 1700000000
                    tf.addfile(ti)
            ti = _tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(files[name]), 0o644, 1700000000
            tf.addfile(ti, _io.BytesIO(files[name]))
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return _gzip.compress(data, compresslevel=1, mtime=0)


class Client:
    """Just enough of the distribution API to seed a registry (Basic auth optional)."""

    def __init__(self, base: str, user: str = "", password: str = "", cafile: str = "") -> None:
        self.base = base.rstrip("/")
        self.headers = {}
        if user:
            self.headers["Authorization"] = "Basic " + _b64.b64encode(f"{user}:{password}".encode()).decode()
        import ssl

        self.ctx = ssl.create_default_context(cafile=cafile) if cafile else None

    def call(self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        if not url.startswith("http"):
            url = self.base + url
        req = _ureq.Request(url, data=body, method=method, headers={**self.headers, **(headers or {})})
        try:
            with _ureq.urlopen(req, context=self.ctx) as r:
                return r.status, dict(r.headers), r.read()
        except _uerr.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def blob(self, repo: str, data: bytes) -> str:
        d = digest(data)
        status, h, _ = self.call("POST", f"/v2/{repo}/blobs/uploads/")
        assert status == 202, status
        loc = h["Location"]
        sep = "&" if "?" in loc else "?"
        status, _, body = self.call("PUT", f"{loc}{sep}digest={d}", data,
                                    {"Content-Type": "application/octet-stream"})
        assert status == 201, (status, body)
        return d

    def manifest(self, repo: str, ref: str, doc: dict, media_type: str) -> str:
        raw = _json.dumps(doc, indent=3).encode()
        status, h, body = self.call("PUT", f"/v2/{repo}/manifests/{ref}", raw, {"Content-Type": media_type})
        assert status == 201, (status, body)
        return digest(raw)

    def image(self, repo: str, tag: str, layers: list[bytes], *, oci: bool = False, arch: str = "amd64",
              variant: str = "", cmd: list[str] | None = None, labels: dict[str, str] | None = None,
              compressed: list[bytes] | None = None) -> dict[str, object]:
        """Push an image of uncompressed `layers` (gzip-compressed here, or `compressed` as given)."""
        blobs = compressed or [gz(layer) for layer in layers]
        cfg: dict[str, object] = {
            "architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [digest(layer) for layer in layers]},
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
        }
        if variant:
            cfg["variant"] = variant
        raw_cfg = _json.dumps(cfg).encode()
        cfg_digest = self.blob(repo, raw_cfg)
        ldescs = []
        for b in blobs:
            kind = "zstd" if b[:4] == b"\x28\xb5\x2f\xfd" else "gzip"
            ldescs.append({"mediaType": (f"application/vnd.oci.image.layer.v1.tar+{kind}" if oci else
                                         "application/vnd.docker.image.rootfs.diff.tar.gzip"),
                           "size": len(b), "digest": self.blob(repo, b)})
        mt = OCI_MANIFEST if oci else SCHEMA2
        doc = {"schemaVersion": 2, "mediaType": mt,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if oci else
                          "application/vnd.docker.container.image.v1+json", "size": len(raw_cfg),
                          "digest": cfg_digest},
               "layers": ldescs}
        mdigest = self.manifest(repo, tag, doc, mt)
        raw_m = _json.dumps(doc, indent=3).encode()
        return {"digest": mdigest, "size": len(raw_m), "id": cfg_digest, "media_type": mt,
                "layers": [d["digest"] for d in ldescs]}

    def index(self, repo: str, tag: str, entries: list[tuple[dict[str, object], dict[str, str]]],
              oci: bool = False) -> str:
        mt = OCI_INDEX if oci else MANIFEST_LIST
        doc = {"schemaVersion": 2, "mediaType": mt,
               "manifests": [{"mediaType": img["media_type"], "size": img["size"], "digest": img["digest"],
                              "platform": plat} for img, plat in entries]}
        return self.manifest(repo, tag, doc, mt)


# -- a fault-injecting proxy in front of a registry ------------------------------------------

# Only a layer is cut or stalled: the image config (a few kB, fetched beside the layers and
# without Range, as dockerd does) racing a layer to be first must not take the fault.
CUT_AT_LEAST = 100_000


class FaultProxy:
    """Forwards to `upstream`; `mode` decides what blob GETs get: "" (pass), "500",
    "cut" (the connection drops after a first part of the body, once; the Range retry
    passes), "cut-200" (as "cut", then the Range retry answered 200 with the whole blob, as
    a registry or proxy that ignores Range does), "stall" (half the body, then silence,
    once); "429" answers one manifest request with 429 and Retry-After: 1; "slow-upload"
    holds the answer to each blob upload PATCH for `delay` seconds (after the registry took
    it), so what follows runs later than the client's token lasts. `answers` records
    (method, path, status) of what the registry answered.

    A cut comes only after the first part has had time to be read: aiohttp's reader raises
    the connection error before handing over bytes it holds, so a cut at once could leave
    the client nothing to resume from.

    A fault is for the requests made after it is set. A pull that failed has cancelled its
    other downloads, but their requests may reach this proxy's loop after the client has
    closed their connections and after the test has set the next mode: such a request once
    took the cut meant for the next pull (the client never saw it, so no Range request
    followed). So setting `mode` first waits until the requests of before are through
    (none in flight, none new for a moment), and a request whose client is gone takes no
    fault."""

    def __init__(self, upstream: str, port: int) -> None:
        self.upstream, self.port = upstream.rstrip("/"), port
        self._mode = ""
        self._in_flight = 0  # handlers running (a stalled one not counted)
        self._last_start = 0.0
        self.delay = 0.0
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range)
        self.answers: list[tuple[str, str, int]] = []
        self._loop = _asyncio.new_event_loop()
        self._ready = _threading.Event()
        self._thread = _threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self.settle()
        self._mode = value

    def settle(self, quiet: float = 0.3, timeout: float = 10) -> None:
        """Wait until no request is being handled and none has come for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._in_flight and time.monotonic() - self._last_start >= quiet:
                return
            time.sleep(0.02)

    def _run(self) -> None:
        from aiohttp import ClientSession, web
        from multidict import CIMultiDict

        async def handle(request: web.Request) -> web.StreamResponse:
            self._in_flight += 1
            self._last_start = time.monotonic()
            try:
                return await forward(request)
            finally:
                self._in_flight -= 1

        def client_gone(request: web.Request) -> bool:
            return request.transport is None or request.transport.is_closing()

        async def forward(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.method, request.path_qs, request.headers.get("Range", "")))
            is_blob = "/blobs/sha256:" in request.path and request.method == "GET"
            if is_blob and self._mode == "500":
                return web.Response(status=500, text="boom")
            if self._mode == "429" and "/manifests/" in request.path:
                self._mode = ""
                return web.json_response({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]},
                                         status=429, headers={"Retry-After": "1"})
            # repeated headers (dockerd sends one Accept per media type) stay repeated
            headers = CIMultiDict((k, v) for k, v in request.headers.items()
                                  if k.lower() not in ("host", "content-length", "transfer-encoding"))
            headers["X-Forwarded-Host"] = request.host  # upload Locations point back here
            if is_blob and self._mode == "ignore-range" and "Range" in headers:
                self._mode = ""
                del headers["Range"]  # the whole blob, 200
            async with ClientSession(auto_decompress=False) as s, \
                    s.request(request.method, self.upstream + request.path_qs, headers=headers,
                              data=await request.read(), allow_redirects=False) as r:
                body = await r.read()
                self.answers.append((request.method, request.path, r.status))
                out_headers = {k: v for k, v in r.headers.items()
                               if k.lower() not in ("content-length", "transfer-encoding", "connection")}
                if self._mode == "slow-upload" and request.method == "PATCH" and "/blobs/uploads/" in request.path:
                    await _asyncio.sleep(self.delay)
                if (is_blob and self._mode in ("cut", "cut-200", "stall") and r.status == 200
                        and len(body) > CUT_AT_LEAST and not client_gone(request)):
                    stall = self._mode == "stall"
                    self._mode = "ignore-range" if self._mode == "cut-200" else ""
                    resp = web.StreamResponse(status=200, headers=out_headers)
                    resp.content_length = len(body)
                    await resp.prepare(request)
                    await resp.write(body[: len(body) // 2])
                    if stall:  # then nothing more, the connection left open
                        self._stalled = _asyncio.Event()
                        self._in_flight -= 1  # held on purpose: a new mode need not wait for it
                        try:
                            await _asyncio.wait_for(self._stalled.wait(), 60)
                        except (TimeoutError, _asyncio.CancelledError):
                            pass
                        finally:
                            self._in_flight += 1
                    else:  # the first part sent and read before the cut
                        transport = request.transport
                        while transport is not None and transport.get_write_buffer_size():
                            await _asyncio.sleep(0.01)
                        await _asyncio.sleep(3)  # the client has read it even on a loaded machine
                    request.transport.close()  # type: ignore[union-attr]
                    return resp
                if request.method == "HEAD" and "Content-Length" in r.headers:  # the size the client checks
                    head = web.StreamResponse(status=r.status, headers=out_headers)
                    head.content_length = int(r.headers["Content-Length"])
                    await head.prepare(request)
                    await head.write_eof()
                    return head
                return web.Response(status=r.status, body=body, headers=out_headers)

        async def main() -> None:
            app = web.Application(client_max_size=1 << 30)  # pushed blobs pass through
            app.router.add_route("*", "/{tail:.*}", handle)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            self._ready.set()

        _asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(main())
        self._loop.run_forever()

    def close(self) -> None:
        stalled = getattr(self, "_stalled", None)
        if stalled is not None:
            self._loop.call_soon_threadsafe(stalled.set)
        fut = _asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


# -- schema1 manifests signed as libtrust signs them ------------------------------------------

SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def _b64url(data: bytes) -> str:
    return _b64.urlsafe_b64encode(data).decode().rstrip("=")


def sign_schema1(doc: dict, key: object | None = None) -> tuple[bytes, bytes]:
    """`doc` (a schema1 manifest without signatures) signed as libtrust's
    JSONSignature.PrettySignature does it with an ES256 key (a fresh P-256 key unless given):
    (signed bytes, payload bytes), the payload being what the manifest digest is of."""
    import time as _time

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    priv = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    pub = priv.public_key()  # type: ignore[attr-defined]
    nums = pub.public_numbers()
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = _b64.b32encode(_hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    kid = ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))
    content = _json.dumps(doc, indent=3, ensure_ascii=False).encode()
    close = content.rstrip().rfind(b"}")
    fl = len(content[:close].rstrip())
    tail = content[fl:]
    protected = _b64url(_json.dumps({"formatLength": fl, "formatTail": _b64url(tail),
                                     "time": _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime())}).encode())
    signing_input = f"{protected}.{_b64url(content)}".encode()
    r, s = decode_dss_signature(priv.sign(signing_input, ec.ECDSA(hashes.SHA256())))  # type: ignore[attr-defined]
    sig = {"header": {"jwk": {"crv": "P-256", "kid": kid, "kty": "EC",
                              "x": _b64url(nums.x.to_bytes(32, "big")), "y": _b64url(nums.y.to_bytes(32, "big"))},
                      "alg": "ES256"},
           "signature": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")), "protected": protected}
    sigs = _json.dumps([sig], indent=3).replace("\n", "\n   ")
    signed = content[:fl] + b',\n   "signatures": ' + sigs.encode() + b"\n}"
    return signed, content


# -- the Engine API of a daemon under test, and the shared reference ---------------------------
REFD_SOCK = "/tmp/refd/docker.sock"


def call(sock: str, method: str, url: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, bytes]:
    """One Engine API request (API 1.41) on the daemon at unix socket `sock`."""
    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(sock)

    c = Conn("localhost", timeout=120)
    try:
        c.request(method, "/v1.41" + url, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def refd_available() -> bool:
    """A reference dockerd that answers: the socket file alone may be left from one that stopped."""
    try:
        status, _ = call(REFD_SOCK, "GET", "/_ping")
    except OSError:
        return False
    return status == 200
