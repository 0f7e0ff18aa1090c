"""netavark's leftover chains are taken off the host, and chains in use never are
(network/leftovers.py), on the real firewall."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from berth.network import leftovers
from berth.network.netavark import host_lock

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (iptables)")


def _nat(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "-t", "nat", *args], capture_output=True, text=True, check=check)


def _dn_chains() -> set[str]:
    out = _nat("-S").stdout.splitlines()
    return {line.split()[1] for line in out if line.startswith("-N NETAVARK-DN-")}


def _sweep() -> None:
    with host_lock():
        leftovers.sweep()


def test_empty_unreferenced_chain_is_removed_used_ones_stay() -> None:
    tag = uuid.uuid4().hex[:8].upper()
    empty, holding, jumped = (f"NETAVARK-DN-T{tag}{i}" for i in "ABC")
    for c in (empty, holding, jumped):
        _nat("-N", c)
    _nat("-A", holding, "-j", "RETURN")
    _nat("-N", f"BERTHTEST-{tag}")
    _nat("-A", f"BERTHTEST-{tag}", "-j", jumped)
    try:
        _sweep()
        left = _dn_chains()
        assert empty not in left
        assert holding in left and jumped in left
    finally:
        _nat("-F", f"BERTHTEST-{tag}", check=False)
        _nat("-X", f"BERTHTEST-{tag}", check=False)
        for c in (empty, holding, jumped):
            _nat("-F", c, check=False)
            _nat("-X", c, check=False)


def test_a_removed_network_leaves_no_port_chain(berthd) -> None:  # type: ignore[no-untyped-def]
    before = _dn_chains()
    net = "fw-" + uuid.uuid4().hex[:8]
    berthd.docker("network", "create", net)
    try:
        berthd.docker("run", "--rm", "--network", net, "-p", "127.0.0.1::80", "busybox", "true")
    finally:
        berthd.docker("network", "rm", net, check=False)
    assert _dn_chains() <= before
