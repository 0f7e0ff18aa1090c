"""Registry service configuration and endpoint lookup (moby/registry/config.go,
service_v2.go lookupV2Endpoints, registry.go newTLSConfig/ReadCertsDirectory).

Endpoints: `https://<host>` first; for an insecure host (127.0.0.0/8 always, plus
`insecure-registries`) that endpoint skips verification and `http://<host>` follows.
docker.io gets its mirrors first. TLS trust for a secure host comes from the certs.d
directories: dockerd's `/etc/docker/certs.d/<host:port>/` and Berth's own
`/etc/berth/certs.d/<host:port>/` (tests point `certs_dirs` elsewhere).
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .. import errdefs

INDEX_NAME = "docker.io"
INDEX_HOSTNAME = "index.docker.io"
INDEX_SERVER = "https://index.docker.io/v1/"
DEFAULT_V2_REGISTRY = "https://registry-1.docker.io"
DEFAULT_CERTS_DIRS = ("/etc/docker/certs.d", "/etc/berth/certs.d")


@dataclass
class Endpoint:
    url: str  # scheme://host[:port], no trailing slash
    tls: bool
    verify: bool
    mirror: bool = False
    official: bool = False
    certs_dir: str | None = None  # the certs.d/<host> directory, when it exists

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_VALID_HOST_PORT = re.compile(f"{_DOMAIN_COMPONENT}(?:\\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?\\Z", re.ASCII)


def _split_host_port(s: str) -> tuple[str, str]:
    """net.SplitHostPort; ValueError where Go errs."""
    if s.startswith("["):
        end = s.find("]")
        if end < 0 or s[end + 1:end + 2] != ":":
            raise ValueError(s)
        return s[1:end], s[end + 2:]
    if s.count(":") != 1:
        raise ValueError(s)
    host, _, port = s.partition(":")
    return host, port


def _parse_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _validate_host_port(s: str) -> str:
    """validateHostPort: "" when `s` is host[:port], else the error."""
    try:
        host, port = _split_host_port(s)
    except ValueError:
        host, port = s, ""
    if not _VALID_HOST_PORT.match(s) and not _parse_ip(host):
        return f'invalid host "{host}"'
    if port:
        if not re.fullmatch(r"[+-]?[0-9]+", port):
            return f'strconv.Atoi: parsing "{port}": invalid syntax'
        if not 0 <= int(port) <= 65535:
            return f'invalid port "{port}"'
    return ""


def load_allow_nondistributable_artifacts(registries: list[str]) -> tuple[list[str], list[str]]:
    """LoadAllowNondistributableArtifacts: (CIDRs, host[:port] names), each once. On Linux
    nothing reads them but /info: dockerd's layers are never Describable there, so a push
    uploads a foreign layer wherever it goes (distribution/push_v2.go Upload)."""
    cidrs: list[str] = []
    hostnames: list[str] = []
    for r in registries:
        if r.startswith("-") or r.endswith("-"):  # ValidateIndexName
            raise errdefs.InvalidParameter(f"invalid index name ({r}). Cannot begin or end with a hyphen")
        if "://" in r:
            raise errdefs.InvalidParameter(f"allow-nondistributable-artifacts registry {r} should not contain '://'")
        net = None
        if "/" in r:
            try:
                addr, _, bits = r.partition("/")
                ipaddress.ip_address(addr)  # net.ParseCIDR wants an address and a prefix length
                if not bits.isdigit():
                    raise ValueError(r)
                net = str(ipaddress.ip_network(r, strict=False))
            except ValueError:
                net = None
        if net is not None:
            if net not in cidrs:
                cidrs.append(net)
            continue
        err = _validate_host_port(r)
        if err:
            raise errdefs.InvalidParameter(f"allow-nondistributable-artifacts registry {r} is not valid: {err}")
        if r not in hostnames:
            hostnames.append(r)
    return cidrs, hostnames


@dataclass
class ServiceConfig:
    insecure_registries: list[str] = field(default_factory=list)
    mirrors: list[str] = field(default_factory=list)
    allow_nondistributable_artifacts: list[str] = field(default_factory=list)
    # Berth's own: mirrors for registries other than docker.io (moby#18818), host → URLs.
    registry_mirrors_by_host: dict[str, list[str]] = field(default_factory=dict)
    certs_dirs: tuple[str, ...] = DEFAULT_CERTS_DIRS

    def __post_init__(self) -> None:
        self.nondistributable_cidrs, self.nondistributable_hosts = load_allow_nondistributable_artifacts(
            self.allow_nondistributable_artifacts)
        self.insecure_cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.insecure_hosts: set[str] = set()
        for entry in self.insecure_registries:
            entry = _strip_scheme(entry)
            try:
                self.insecure_cidrs.append(ipaddress.ip_network(entry, strict=False) if "/" in entry
                                           else _raise())
            except ValueError:
                self.insecure_hosts.add(entry)
        # LoadInsecureRegistries: 127.0.0.0/8 is always insecure
        loopback = ipaddress.ip_network("127.0.0.0/8")
        if loopback not in self.insecure_cidrs:
            self.insecure_cidrs.append(loopback)
        self.mirrors = [validate_mirror(m) for m in self.mirrors]
        self.registry_mirrors_by_host = {h: [validate_mirror(m) for m in ms]
                                         for h, ms in self.registry_mirrors_by_host.items()}

    # -- isSecureIndex -----------------------------------------------------------------
    def is_secure(self, host: str) -> bool:
        if host in (INDEX_NAME, INDEX_HOSTNAME):
            return True
        if host in self.insecure_hosts:
            return False
        hostname = urlsplit("//" + host).hostname or host
        try:
            addrs = [ipaddress.ip_address(hostname)]
        except ValueError:
            try:
                addrs = [ipaddress.ip_address(ai[4][0]) for ai in socket.getaddrinfo(hostname, None)]
            except (OSError, ValueError):
                return True  # a name that does not resolve is taken as secure, as dockerd
        return not any(a in net for a in addrs for net in self.insecure_cidrs)

    def endpoints(self, host: str, push: bool = False) -> list[Endpoint]:
        """lookupV2Endpoints (push/login: no mirrors)."""
        if host in (INDEX_NAME, INDEX_HOSTNAME):
            out = [] if push else [Endpoint(m.rstrip("/"), m.startswith("https"), True, mirror=True,
                                            certs_dir=self.certs_dir(urlsplit(m).netloc))
                                   for m in self.mirrors]
            return out + [Endpoint(DEFAULT_V2_REGISTRY, True, True, official=True)]
        out = [] if push else [Endpoint(m.rstrip("/"), m.startswith("https"), True, mirror=True,
                                        certs_dir=self.certs_dir(urlsplit(m).netloc))
                               for m in self.registry_mirrors_by_host.get(host, [])]
        secure = self.is_secure(host)
        out.append(Endpoint(f"https://{host}", True, secure, certs_dir=self.certs_dir(host) if secure else None))
        if not secure:
            out.append(Endpoint(f"http://{host}", False, False))
        return out

    def certs_dir(self, host: str) -> str | None:
        for root in self.certs_dirs:
            d = os.path.join(root, host)
            if os.path.isdir(d):
                return d
        return None

    def info(self) -> dict[str, Any]:
        """GET /info RegistryConfig."""
        index_configs: dict[str, object] = {
            INDEX_NAME: {"Name": INDEX_NAME, "Mirrors": list(self.mirrors), "Secure": True, "Official": True}}
        for h in sorted(self.insecure_hosts):
            index_configs[h] = {"Name": h, "Mirrors": [], "Secure": False, "Official": False}
        return {"AllowNondistributableArtifactsCIDRs": list(self.nondistributable_cidrs),
                "AllowNondistributableArtifactsHostnames": list(self.nondistributable_hosts),
                "InsecureRegistryCIDRs": [str(n) for n in self.insecure_cidrs], "IndexConfigs": index_configs,
                "Mirrors": list(self.mirrors)}


def _raise() -> ipaddress.IPv4Network:
    raise ValueError


def _strip_scheme(entry: str) -> str:
    for scheme in ("http://", "https://"):
        if entry.startswith(scheme):
            return entry[len(scheme):]
    if "://" in entry:
        raise errdefs.InvalidParameter(f"insecure registry {entry} should not contain '://'")
    return entry


def validate_mirror(val: str) -> str:
    """ValidateMirror: http(s) only, no path/query/fragment/userinfo; a trailing `/` added."""
    u = urlsplit(val)
    if u.scheme not in ("http", "https"):
        raise errdefs.InvalidParameter(f"invalid mirror: unsupported scheme {u.scheme!r} in {val!r}")
    if (u.path and u.path != "/") or u.query or u.fragment:
        raise errdefs.InvalidParameter(f"invalid mirror: path, query, or fragment at end of the URI {val!r}")
    if u.username or u.password:
        raise errdefs.InvalidParameter(f"invalid mirror: username/password not allowed in URI {val!r}")
    return f"{u.scheme}://{u.netloc}/"


def ssl_context(ep: Endpoint) -> ssl.SSLContext | bool:
    """newTLSConfig: system roots plus certs.d `*.crt`, client `X.cert`/`X.key`; an insecure
    host's https endpoint does not verify. Errors are dockerd's."""
    if not ep.tls:
        return False
    if not ep.verify and not ep.certs_dir:
        # no trust store to load (loading the system one costs tens of milliseconds a pull)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    key = (ep.verify, ep.certs_dir, _dir_state(ep.certs_dir))
    cached = _CONTEXTS.get(key)
    if cached is not None:
        return cached
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not ep.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    d = ep.certs_dir
    if d:
        names = sorted(os.listdir(d))
        for n in names:
            p = os.path.join(d, n)
            if n.endswith(".crt"):
                ctx.load_verify_locations(cafile=p)
            elif n.endswith(".cert"):
                keyfile = n[:-5] + ".key"
                if keyfile not in names:
                    raise errdefs.Untyped(f"missing key {keyfile} for client certificate {n}. Note that CA "
                                          "certificates should use the extension .crt")
                ctx.load_cert_chain(p, os.path.join(d, keyfile))
            elif n.endswith(".key"):
                cert = n[:-4] + ".cert"
                if cert not in names:
                    raise errdefs.Untyped(f"Missing client certificate {cert} for key {n}")
    _CONTEXTS[key] = ctx
    return ctx


# TLS contexts by (verify, certs dir, the dir's files and mtimes): built once, rebuilt when
# certs.d changes.
_CONTEXTS: dict[tuple[object, ...], ssl.SSLContext] = {}


def _dir_state(d: str | None) -> tuple[tuple[str, float], ...]:
    if not d:
        return ()
    try:
        return tuple(sorted((n, os.stat(os.path.join(d, n)).st_mtime) for n in os.listdir(d)))
    except OSError:
        return ()
