"""The iptables chains netavark leaves on the host, taken off once nothing uses them.

netavark 1.4 keeps a network's port-forwarding chain (nat `NETAVARK-DN-<hash>`) after the
last port forward through it is gone, so every network that ever published a port would
leave one behind. `iptables -X` deletes only an empty chain that no rule jumps to, so
trying it on each such chain removes exactly the leftovers and never a chain in use
(Berth's, or podman's on the same host).

`full` also takes netavark's host-wide chains (NETAVARK_FORWARD, the isolation chains,
the hostport chains) and the jumps to them, when none holds a rule: what the test suite
does at its end, so that a test run leaves the firewall as it found it.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import shlex
import subprocess

log = logging.getLogger(__name__)

_FILTER_CHAINS = ("NETAVARK_FORWARD", "NETAVARK_ISOLATION_1", "NETAVARK_ISOLATION_2")
_HOSTPORT_CHAINS = ("NETAVARK-HOSTPORT-DNAT", "NETAVARK-HOSTPORT-SETMARK", "NETAVARK-HOSTPORT-MASQ")
# Rules netavark puts in its own hostport chains when it makes them: not a use.
_HOSTPORT_STATIC = ("NETAVARK-HOSTPORT-SETMARK", "NETAVARK-HOSTPORT-MASQ")


def _ipt(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, "-w", *args], capture_output=True, text=True)


def _rules(tool: str, table: str) -> list[list[str]] | None:
    r = _ipt(tool, "-t", table, "-S")
    if r.returncode != 0:
        return None  # no such tool or table here
    return [shlex.split(line) for line in r.stdout.splitlines() if line]


def sweep(full: bool = False) -> None:
    """Delete netavark's unused chains (see the module); call with the netavark lock held."""
    for tool in ("iptables", "ip6tables"):
        try:
            _sweep_tool(tool, full)
        except FileNotFoundError:
            continue
        except OSError as e:  # the firewall is not ours to fix: say so and go on
            log.warning("%s: %s", tool, e)


def _sweep_tool(tool: str, full: bool) -> None:
    nat = _rules(tool, "nat")
    if nat is None:
        return
    for rule in nat:
        if rule[:1] == ["-N"] and rule[1].startswith("NETAVARK-DN-"):
            _ipt(tool, "-t", "nat", "-X", rule[1])  # refused while it holds or gets a rule
    if not full:
        return
    if tool == "iptables":
        _drop_orphan_accepts()
    _drop_if_unused(tool, "nat", _HOSTPORT_CHAINS, static=_HOSTPORT_STATIC)
    _drop_if_unused(tool, "filter", _FILTER_CHAINS, static=())


def _drop_if_unused(tool: str, table: str, chains: tuple[str, ...], static: tuple[str, ...]) -> None:
    """Delete `chains`, and every rule jumping to them, when none holds a rule of its own
    (but those netavark writes into `static` chains at their making)."""
    rules = _rules(tool, table)
    if rules is None:
        return
    names = {r[1] for r in rules if r[:1] == ["-N"]}
    for r in rules:
        if r[:1] == ["-A"] and r[1] in chains and r[1] not in static:
            return  # in use
        if r[:1] == ["-A"] and r[1].startswith("NETAVARK") and r[1] not in chains:
            return  # a network's own chains are still there: netavark is in use
    for r in rules:
        if r[:1] == ["-A"] and r[1] not in chains and "-j" in r and r[r.index("-j") + 1] in chains:
            _ipt(tool, "-t", table, "-D", *r[1:])
    for c in chains:
        if c in names:
            _ipt(tool, "-t", table, "-F", c)
    for c in chains:
        if c in names:
            _ipt(tool, "-t", table, "-X", c)


def _drop_orphan_accepts() -> None:
    """Berth's published-port accepts (hostsetup.set_published_ports_accept) whose bridge is
    gone: what a SIGKILLed daemon leaves with its bridge."""
    rules = _rules("iptables", "filter") or []
    for r in rules:
        if r[:2] != ["-A", "FORWARD"] or "berth published ports" not in " ".join(r):
            continue
        bridge = r[r.index("-o") + 1] if "-o" in r else ""
        if bridge and not os.path.exists(f"/sys/class/net/{bridge}"):
            _ipt("iptables", "-D", *r[1:])


def network_hash(network_name: str) -> str:
    """netavark's chain suffix for a network (core_utils.rs create_network_hash, 13 digits)."""
    return hashlib.sha512(network_name.encode()).hexdigest().upper()[:13]


def drop_other_networks(network_name: str, subnets: list[str]) -> None:
    """Take off the nat rules an earlier record of a network left for the same subnets: a
    daemon SIGKILLed and its data root (or exec root) removed leaves its network's
    masquerade chain (`POSTROUTING -s <subnet> -j NETAVARK-<hash>`) and its port-forwarding
    chain (`NETAVARK-DN-<hash>`, DNATs to the old containers' addresses, jumped to from
    NETAVARK-HOSTPORT-DNAT for the old published ports), under a network name no daemon
    knows any more. The subnet is this network's now (its bridge holds the gateway), so a
    chain of another name that masquerades it or forwards into it is such a leftover, as
    dockerd flushes its DOCKER chain at start. IPv4 only. Call with the netavark lock held."""
    own = network_hash(network_name)
    nets = [ipaddress.ip_network(s, strict=False) for s in subnets if ":" not in s]
    if not nets:
        return
    try:
        rules = _rules("iptables", "nat")
    except OSError as e:
        log.warning("iptables: %s", e)
        return
    if rules is None:
        return
    stale: set[str] = set()
    for r in rules:
        if r[:1] != ["-A"]:
            continue
        chain, target = r[1], _target(r)
        if (chain == "POSTROUTING" and _is_network_chain(target, own) and "-s" in r
                and _in(r[r.index("-s") + 1], nets)):
            stale.add(target)
        if (chain.startswith("NETAVARK-DN-") and chain != "NETAVARK-DN-" + own and target == "DNAT"
                and "--to-destination" in r and _in(r[r.index("--to-destination") + 1].rsplit(":", 1)[0], nets)):
            stale.add(chain)
    if not stale:
        return
    log.info("removing the nat chains an earlier record of subnet %s left: %s", ", ".join(subnets),
             ", ".join(sorted(stale)))
    for r in rules:
        if r[:1] == ["-A"] and r[1] not in stale and _target(r) in stale:
            _ipt("iptables", "-t", "nat", "-D", *r[1:])
    for c in sorted(stale):
        _ipt("iptables", "-t", "nat", "-F", c)
        _ipt("iptables", "-t", "nat", "-X", c)


def _target(rule: list[str]) -> str:
    return rule[rule.index("-j") + 1] if "-j" in rule and rule.index("-j") + 1 < len(rule) else ""


def _is_network_chain(chain: str, own: str) -> bool:
    """A network's masquerade chain (NETAVARK-<13 hex digits>) other than `own`'s."""
    suffix = chain[len("NETAVARK-"):]
    return (chain.startswith("NETAVARK-") and suffix != own and len(suffix) == 13
            and all(c in "0123456789ABCDEF" for c in suffix))


def _in(addr: str, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        a = ipaddress.ip_network(addr, strict=False)
    except ValueError:
        return False
    return any(a.version == n.version and a.subnet_of(n) for n in nets)  # type: ignore[arg-type]  # subnet_of wants the same IP version; the version test above ensures it
