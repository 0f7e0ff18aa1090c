"""Real registries for the tests: Debian's `docker-registry` (distribution 2.8) started on a
loopback port with its own config and storage, anonymous, htpasswd Basic, TLS, or token
auth backed by a small token issuer (tests/token_issuer.py, RS256 via openssl). Every
process is stopped by the pid this module started."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port(lo: int = 15110, hi: int = 15199) -> int:
    """A free port in the test range (each registry test takes its own)."""
    for p in range(lo, hi):
        with socket.socket() as s:
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
                   port: int | None = None) -> Registry:
    """auth: "" (anonymous), "htpasswd" or "token"."""
    tmp = tempfile.mkdtemp(prefix="h10-reg-" if os.path.isdir("/tmp") else None)
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
        reg.issuer = subprocess.Popen([sys.executable, os.path.join(HERE, "token_issuer.py"), str(iport), cert, key,
                                       users_file], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "issuer.log"), "wb"))
        wait_port(iport, reg.issuer)
        reg.extra["realm"] = f"http://127.0.0.1:{iport}/token"
        lines += ["auth:", "  token:", f"    realm: http://127.0.0.1:{iport}/token", "    service: berth-registry",
                  "    issuer: berth-test-issuer", f"    rootcertbundle: {cert}"]
    config = os.path.join(tmp, "config.yml")
    with open(config, "w") as f:
        f.write("\n".join(lines) + "\n")
    reg.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(tmp, "registry.log"), "wb"))
    try:
        wait_port(reg.port, reg.proc)
    except BaseException:
        reg.close()
        raise
    return reg


def restart(reg: Registry) -> None:
    """Start the stopped registry again on its port and storage."""
    reg.proc = subprocess.Popen(["docker-registry", "serve", os.path.join(reg.tmp, "config.yml")],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(reg.tmp, "registry.log"), "ab"))
    wait_port(reg.port, reg.proc)
