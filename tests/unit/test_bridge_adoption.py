"""The default network takes the address a bridge left on the host holds (dockerd's
initBridgeDriver), unless --bip says otherwise or endpoints use the record's gateway."""
from __future__ import annotations

import ipaddress

import pytest

from berth.config import DaemonConfig
from berth.network import bridgeaddr, store


def _store(tmp_path, monkeypatch, held: list[str], bip: str = "") -> store.NetworkStore:
    monkeypatch.setattr(bridgeaddr, "addresses", lambda bridge: [ipaddress.ip_interface(a) for a in held])
    monkeypatch.setattr(store.ipam, "host_routes", lambda: [])
    cfg = DaemonConfig(data_root=str(tmp_path / "root"), bip=bip)
    return store.NetworkStore(cfg, lambda: "2026-12-02T00:00:00Z")


def _bridge(s: store.NetworkStore) -> store.Network:
    return s.find("bridge")


def test_default_network_adopts_the_bridge_address(tmp_path, monkeypatch) -> None:
    br = _bridge(_store(tmp_path, monkeypatch, ["192.168.128.1/20"]))
    assert (br.Pools[0].Subnet, br.Pools[0].Gateway) == ("192.168.128.0/20", "192.168.128.1")
    assert br.IPAM.Config[0].Subnet == "192.168.128.0/20"


def test_existing_record_without_endpoints_follows_the_bridge(tmp_path, monkeypatch) -> None:
    first = _bridge(_store(tmp_path, monkeypatch, []))
    again = _bridge(_store(tmp_path, monkeypatch, ["10.89.7.1/24"]))
    assert again.Id == first.Id
    assert (again.Pools[0].Subnet, again.Pools[0].Gateway) == ("10.89.7.0/24", "10.89.7.1")


def test_record_with_endpoints_is_kept(tmp_path, monkeypatch) -> None:
    s = _store(tmp_path, monkeypatch, [])
    br = _bridge(s)
    s.allocate(br, "ep1")
    kept = _bridge(_store(tmp_path, monkeypatch, ["10.89.7.1/24"]))
    assert kept.Pools[0].Subnet == br.Pools[0].Subnet  # the bridge is given this gateway instead


@pytest.mark.parametrize("held", [["10.89.7.1/24"], []])
def test_bip_wins(tmp_path, monkeypatch, held: list[str]) -> None:
    br = _bridge(_store(tmp_path, monkeypatch, held, bip="10.89.9.1/24"))
    assert (br.Pools[0].Subnet, br.Pools[0].Gateway) == ("10.89.9.0/24", "10.89.9.1")


def test_elect_ipv4_needs_a_host_address(monkeypatch) -> None:
    monkeypatch.setattr(bridgeaddr, "addresses", lambda bridge: [ipaddress.ip_interface("10.1.0.0/16")])
    assert bridgeaddr.elect_ipv4("x") == ("10.1.0.0/16", "")
    monkeypatch.setattr(bridgeaddr, "addresses", lambda bridge: [ipaddress.ip_interface("fd00::1/64"),
                                                                 ipaddress.ip_interface("10.1.2.3/16")])
    assert bridgeaddr.elect_ipv4("x") == ("10.1.0.0/16", "10.1.2.3")
