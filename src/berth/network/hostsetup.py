"""The host set-up dockerd's bridge driver makes when it starts (moby v20.10.24
libnetwork/drivers/bridge: bridge.go configure, setup_ip_forwarding.go).

- `net.ipv4.ip_forward`: enabled when it is off (`--ip-forward`, default true), and then,
  with `--iptables`, the filter FORWARD chain's policy set to DROP: what a host that did
  not forward before keeps from forwarding for others. A host that forwards already
  keeps its policy.
- `bridge` and `br_netfilter` loaded (`modprobe -va bridge br_netfilter`) when
  /proc/sys/net/bridge is missing and iptables is on, so that bridged traffic passes
  iptables (the module enables bridge-nf-call-iptables when it loads).

netavark, which wires containers in, turns ip_forward on at each of its setups; with
`--ip-forward=false` Berth puts back the value it found after every setup (PinnedSysctl),
so the host keeps not forwarding, as with dockerd.
"""
from __future__ import annotations

import logging
import os
import subprocess

log = logging.getLogger("berth.network")

IPV4_FORWARD = "/proc/sys/net/ipv4/ip_forward"
BRIDGE_NF_DIR = "/proc/sys/net/bridge"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def forwarding_enabled() -> bool:
    return _read(IPV4_FORWARD) != "0"


def setup_ip_forwarding(enable_iptables: bool) -> None:
    """setupIPForwarding: only when forwarding is off."""
    if _read(IPV4_FORWARD) == "1":
        return
    try:
        _write(IPV4_FORWARD, "1")
    except OSError as e:
        raise OSError(f"Enabling IP forwarding failed: {e}") from None
    if not enable_iptables:
        return
    r = subprocess.run(["iptables", "-w", "-P", "FORWARD", "DROP"], capture_output=True, text=True)
    if r.returncode != 0:
        try:
            _write(IPV4_FORWARD, "0")
        except OSError as e:
            log.error("Disabling IP forwarding failed, %s", e)
        raise OSError(f"setting the default DROP policy of the FORWARD chain: {r.stderr.strip()}")


def load_bridge_netfilter() -> None:
    """bridge.go configure: the modules that make bridged traffic go through iptables."""
    if os.path.exists(BRIDGE_NF_DIR):
        return
    try:
        r = subprocess.run(["modprobe", "-va", "bridge", "br_netfilter"], capture_output=True, text=True)
    except OSError as e:
        log.warning("Running modprobe bridge br_netfilter failed: %s", e)
        return
    if r.returncode != 0:
        log.warning("Running modprobe bridge br_netfilter failed with message: %s, error: exit status %d",
                    (r.stdout + r.stderr).strip(), r.returncode)


class PinnedSysctl:
    """A sysctl value put back after each netavark setup (which sets it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.value = _read(path)

    def restore(self) -> None:
        if self.value and _read(self.path) != self.value:
            try:
                _write(self.path, self.value)
            except OSError as e:
                log.warning("restoring %s: %s", self.path, e)


def setup(ip_forward: bool, iptables: bool) -> PinnedSysctl | None:
    """The bridge driver's start: returns the ip_forward pin when forwarding is to be left
    alone (`--ip-forward=false`)."""
    if iptables:
        load_bridge_netfilter()
    if not ip_forward:
        return PinnedSysctl(IPV4_FORWARD)
    setup_ip_forwarding(iptables)
    return None


BRIDGE_NF_IPTABLES = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def _icc_rule(bridge: str) -> list[str]:
    return ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", f"berth icc {bridge}", "-j", "DROP"]


def set_icc(bridge: str, enable: bool) -> None:
    """setIcc for a network with `com.docker.network.bridge.enable_icc=false`: traffic
    between two containers of the bridge is dropped (inserted ahead of netavark's
    accepts, which dockerd's appended rule would come after), and, as
    setupBridgeNetFiltering, bridged traffic made to pass iptables. `enable` True
    removes the rule (the network is going)."""
    rule = _icc_rule(bridge)
    present = subprocess.run(["iptables", "-w", "-C", *rule], capture_output=True).returncode == 0
    if enable:
        if present:
            subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True)
        return
    if not present:
        r = subprocess.run(["iptables", "-w", "-I", *rule[:1], "1", *rule[1:]], capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError(f"Setting ICC rule failed: {r.stderr.strip()}")
    if forwarding_enabled() and _read(BRIDGE_NF_IPTABLES) == "0":
        try:
            _write(BRIDGE_NF_IPTABLES, "1")
        except OSError as e:
            log.warning("enabling bridge-nf-call-iptables: %s", e)


def _published_rule(bridge: str) -> list[str]:
    return ["FORWARD", "-o", bridge, "-m", "conntrack", "--ctstate", "DNAT", "-m", "comment", "--comment",
            f"berth published ports {bridge}", "-j", "ACCEPT"]


def set_published_ports_accept(bridge: str, enable: bool) -> None:
    """Connections to a published port, DNATed to a container of `bridge`, pass the
    FORWARD chain whatever its policy: dockerd accepts each published port in its DOCKER
    chain, and with the DROP policy it (and Berth, on a host that did not forward) sets,
    netavark's own accepts (replies, and what containers send) let no new inbound
    connection through, so a port published to the outside answered only on loopback.
    Appended, so netavark's isolation chains are still met first. `enable` False removes
    it (the network is going)."""
    rule = _published_rule(bridge)
    present = subprocess.run(["iptables", "-w", "-C", *rule], capture_output=True).returncode == 0
    if not enable:
        if present:
            subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True)
        return
    if not present:
        r = subprocess.run(["iptables", "-w", "-A", *rule], capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError(f"Setting the published ports rule failed: {r.stderr.strip()}")
