"""/etc/hosts and /etc/resolv.conf content (moby v20.10.24 libnetwork/etchosts/etchosts.go,
libnetwork/resolvconf/resolvconf.go, libnetwork/sandbox_dns_unix.go).
"""
from __future__ import annotations

import re

DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
EMBEDDED_DNS = "127.0.0.11"
_LOCALHOST_NS = re.compile(r"(?m)^\s*nameserver\s+((127\.\d+\.\d+\.\d+)|(::1))\s*$")
_IPV6_NS = re.compile(r"(?m)^\s*nameserver\s+\S*:\S*\s*$")
HOST_RESOLV = "/etc/resolv.conf"
ALT_RESOLV = "/run/systemd/resolve/resolv.conf"  # when the host runs systemd-resolved


def hostname_record(ip: str, hostname: str, domainname: str) -> str:
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    hosts = fqdn
    if "." in fqdn:
        hosts += " " + fqdn.split(".", 1)[0]
    return f"{ip}\t{hosts}\n"


def build_hosts(ips: list[str], hostname: str, domainname: str, extra: list[tuple[str, str]]) -> str:
    """Default records, then extra ones (--add-host, then links), then one record per
    address of the container (etchosts.Build, then Add for each endpoint)."""
    out = DEFAULT_HOSTS
    for host, ip in extra:
        out += f"{ip}\t{host}\n"
    for ip in ips:
        out += hostname_record(ip, hostname, domainname)
    return out


def read_host_resolv() -> str:
    path = HOST_RESOLV
    try:
        with open(path) as f:
            data = f.read()
    except OSError:
        return ""
    if re.search(r"(?m)^\s*nameserver\s+127\.0\.0\.53\s*$", data):
        try:
            with open(ALT_RESOLV) as f:
                return f.read()
        except OSError:
            pass
    return data


def _entries(data: str, key: str) -> list[str]:
    out = []
    for line in data.splitlines():
        f = line.split()
        if f and f[0] == key:
            out += f[1:]
    return out


def nameservers(data: str) -> list[str]:
    return [ns for line in data.splitlines() if (f := line.split()) and f[0] == "nameserver" and len(f) > 1
            for ns in f[1:2]]


def build(dns: list[str], search: list[str], options: list[str]) -> str:
    out = ""
    if search:
        out += "search " + " ".join(search) + "\n"
    for ns in dns:
        out += f"nameserver {ns}\n"
    if options:
        out += "options " + " ".join(options) + "\n"
    return out


def build_resolv(host: str, dns: list[str] | None, search: list[str] | None, options: list[str] | None,
                 embedded: bool, ipv6: bool = False) -> str:
    """setupDNS, then rebuildDNS when the embedded DNS serves the sandbox."""
    if dns or search or options:
        ns = list(dns) if dns else nameservers(host)
        sr = list(search) if search else _entries(host, "search") or _entries(host, "domain")[:1]
        if sr == ["."]:
            sr = []
        opts = list(options) if options else _entries(host, "options")
        content = build(ns, sr, opts)
    else:
        content = _LOCALHOST_NS.sub("", host)
        if not ipv6:
            content = _IPV6_NS.sub("", content)
        if not nameservers(content):
            content += "\n" if content and not content.endswith("\n") else ""
            content += "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    if not embedded:
        return content
    # rebuildDNS: the embedded server first; host nameservers become its upstreams.
    sr = _entries(content, "search")
    opts = _entries(content, "options")
    if not any(o.startswith("ndots:") for o in opts):
        opts.append("ndots:0")
    return build([EMBEDDED_DNS], sr, opts)


def upstream_servers(content_without_embedded: str) -> list[str]:
    return nameservers(content_without_embedded)
