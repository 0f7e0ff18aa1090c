"""Network namespaces and the netavark/aardvark-dns plumbing (containers/netavark v1.4
src/network/types.rs; podman v4.3.1 vendor/github.com/containers/common/libnetwork/netavark/run.go).

Berth makes each sandbox's namespace itself, bind-mounted at `<exec-root>/netns/<sandbox[:12]>`
as dockerd does, so the runtime joins it and it outlives a daemon restart. netavark is called
once per (container, network): `netavark --config <exec-root>/netavark setup <netns>` with the
JSON on stdin; the exact JSON is kept under `<exec-root>/netavark/endpoints/` because
teardown must be given the same input. The netavark network `name` is Berth's network ID, so
its per-network firewall chains (named from a hash of it) and aardvark-dns files never
collide with another berthd or podman; the config directory is per daemon, so is the
aardvark-dns instance.

Every netavark call holds one host-wide lock (an flock, as podman's libnetwork holds its
`netavark.lock`): netavark 1.4 does not serialise itself, so a teardown that removes a
network's last endpoint deletes that network's firewall chains while a concurrent setup is
appending to them ("unable to append rule ... No chain/target/match by that name").
"""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import errdefs
from ..pkg import atomicfile
from ..trace import PROCESS, traced
from . import bridgeaddr, keeper, leftovers, netns, rtnl

log = logging.getLogger("berth.network")

_CANDIDATES = ("/usr/lib/podman/netavark", "/usr/libexec/podman/netavark", "/usr/local/libexec/podman/netavark")
_AARDVARK = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns",
             "/usr/local/libexec/podman/aardvark-dns")


# /run/lock is the FHS place for host-wide locks; a host without it falls back to the
# daemon's own config dir (serialising this daemon only).
_HOST_LOCK_DIR = "/run/lock"
_thread_lock = threading.Lock()
_DYING_MAX = 2.0  # seconds a host veth may take to go with its namespace before it is deleted


def _find(cands: tuple[str, ...], name: str) -> str | None:
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    return shutil.which(name)


class Netavark:
    def __init__(self, exec_root: str) -> None:
        self.binary = _find(_CANDIDATES, "netavark")
        self.aardvark = _find(_AARDVARK, "aardvark-dns")
        self.after_setup: Callable[[], None] | None = None
        self.config_dir = os.path.join(exec_root, "netavark")
        self.ep_dir = os.path.join(self.config_dir, "endpoints")
        self.netns_dir = os.path.join(exec_root, "netns")
        for d in (self.config_dir, self.ep_dir, os.path.join(self.config_dir, "aardvark-dns"), self.netns_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self.spares = netns.Spares(os.path.join(exec_root, "netns-ahead"))
        self.retired = netns.Retired()
        lock_dir = _HOST_LOCK_DIR if os.path.isdir(_HOST_LOCK_DIR) else self.config_dir
        self.lock_path = os.path.join(lock_dir, "berth-netavark.lock")
        # Berth's own isolation jump carries a comment, so netavark's deletes never match
        # it: checking it once per daemon, at the first setup, is enough.
        self._isolation_jump_checked = False
        self._bridge_checked: set[str] = set()
        # bridge networks this daemon has run netavark's full setup on (firewall included)
        self._firewall_done: set[str] = set()
        # host veths left to their namespace's destruction: name -> (container, MAC, deadline)
        self._dying: dict[str, tuple[str, str, float]] = {}
        self._reaper: threading.Thread | None = None

    # -- namespaces -------------------------------------------------------------------
    def netns_path(self, sandbox_id: str) -> str:
        return os.path.join(self.netns_dir, sandbox_id[:12])

    def take_netns(self, sandbox_id: str) -> str | None:
        """A namespace made ahead (netns.Spares) put at the sandbox key, or None."""
        path = self.netns_path(sandbox_id)
        return path if self.spares.take(path) else None

    def close_netns(self) -> None:
        """At a stop: the namespaces made ahead and not taken go, and those let go."""
        self.spares.close()
        self.retired.close()

    def create_netns(self, sandbox_id: str) -> str:
        """A new network namespace with loopback up, bind-mounted at the sandbox key."""
        path = self.netns_path(sandbox_id)
        if os.path.ismount(path):
            return path
        try:
            netns.create(path)
        except OSError as e:
            raise errdefs.System(f"failed to create network namespace: {e}") from None
        return path

    def remove_netns(self, path: str, later: bool = False) -> None:
        """`later`: by the background thread (netns.Retired), for a stopped container's."""
        if not path.startswith(self.netns_dir + "/"):
            return  # never touch a namespace Berth did not make (container:/host modes)
        if later:
            self.retired.retire(path)
            return
        try:
            netns.remove(path)
        except OSError as e:
            log.warning("%s", e)

    # -- netavark ------------------------------------------------------------------------
    def _ep_file(self, container_id: str, network_id: str) -> str:
        return os.path.join(self.ep_dir, f"{container_id}-{network_id[:12]}.json")

    @traced(lambda self, cmd, *a: f"netavark {cmd}", kind=PROCESS, leaf=True)
    def _run(self, cmd: str, netns: str, data: bytes) -> dict[str, Any]:
        if self.binary is None:
            raise errdefs.System("netavark binary not found: install the netavark package")
        argv = [self.binary, "--config", self.config_dir]
        if self.aardvark:
            argv += ["--aardvark-binary", self.aardvark]
        with host_lock(self.lock_path):
            r = subprocess.run([*argv, cmd, netns], input=data, capture_output=True)
            if cmd == "setup" and r.returncode == 0 and not self._isolation_jump_checked:
                _keep_isolation_jump()
                self._isolation_jump_checked = True
            if cmd == "setup" and self.after_setup is not None:
                self.after_setup()  # netavark sets ip_forward; --ip-forward=false puts it back
        out = r.stdout.decode(errors="replace").strip()
        if r.returncode != 0:
            msg = out or r.stderr.decode(errors="replace").strip()
            try:
                msg = json.loads(msg)["error"]
            except (ValueError, KeyError, TypeError):
                pass
            raise errdefs.System(f"netavark: {msg}")
        if not out:
            return {}
        try:
            return json.loads(out)
        except ValueError:
            return {}

    def sweep_leftovers(self, full: bool = False) -> None:
        """Delete the iptables chains netavark left and nothing uses (network/leftovers.py),
        under the host-wide lock so that no setup is making one at the same time."""
        with host_lock(self.lock_path):
            leftovers.sweep(full)

    def drop_other_networks(self, network_id: str, subnets: list[str]) -> None:
        """The nat chains an earlier record of these subnets left (leftovers.py), taken off
        under the host-wide lock."""
        with host_lock(self.lock_path):
            leftovers.drop_other_networks(network_id, subnets)

    def add_dns_names(self, network_id: str, container_id: str, names: list[str]) -> None:
        """Give a running container's aardvark-dns entry on a network more names.

        netavark only writes names at setup; this edits the entry it wrote (aardvark's
        config: `<id> <ipv4s> <ipv6s> <names>[ <dns servers>]` a line) and asks aardvark-dns
        to read its config again (SIGHUP), as netavark does after its own edits."""
        self._edit_dns_names(network_id, container_id, lambda have: have + [nm for nm in names if nm not in have])

    def rename_dns_name(self, network_id: str, container_id: str, old: str, new: str) -> None:
        """A renamed running container answers to its new name, no longer to the old one
        (dockerd's sandbox.Rename); the saved setup options follow, for the teardown."""
        self._edit_dns_names(network_id, container_id,
                             lambda have: list(dict.fromkeys(new if nm == old else nm for nm in have)))
        path = self._ep_file(container_id, network_id)
        with host_lock(self.lock_path):
            try:
                with open(path) as f:
                    saved = json.load(f)
            except (OSError, ValueError):
                return
            if saved.get("opts", {}).get("container_name") == old:
                saved["opts"]["container_name"] = new
                atomicfile.write_file(path, json.dumps(saved).encode(), 0o600)

    def _edit_dns_names(self, network_id: str, container_id: str,
                        edit: Callable[[list[str]], list[str]]) -> None:
        """Edit the names of a container's entry in aardvark-dns's config for a network
        (`<id> <ipv4s> <ipv6s> <names>[ <dns servers>]` a line), then reload aardvark-dns."""
        path = os.path.join(self.config_dir, "aardvark-dns", network_id)
        with host_lock(self.lock_path):
            try:
                with open(path) as f:
                    lines = f.read().split("\n")
            except FileNotFoundError:
                return
            changed = False
            for i, line in enumerate(lines[1:], 1):
                fields = line.split(" ")
                if len(fields) < 4 or fields[0] != container_id:
                    continue
                have = fields[3].split(",")
                want = edit(have)
                if want != have:
                    fields[3] = ",".join(want)
                    lines[i] = " ".join(fields)
                    changed = True
            if not changed:
                return
            atomicfile.write_file(path, "\n".join(lines).encode(), 0o644)
            self._reload_aardvark()

    def _reload_aardvark(self) -> None:
        try:
            with open(os.path.join(self.config_dir, "aardvark-dns", "aardvark.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGHUP)
        except (OSError, ValueError) as e:
            log.warning("aardvark-dns reload: %s", e)

    def setup(self, netns: str, opts: dict[str, Any]) -> dict[str, Any]:
        """Attach the namespace to one network; returns netavark's StatusBlock for it."""
        data = json.dumps(opts).encode()
        (net_name,) = opts["networks"].keys()
        path = self._ep_file(opts["container_id"], net_name)
        info = opts["network_info"][net_name]
        mac = (opts["networks"][net_name] or {}).get("static_mac") or ""
        if mac and self._dying:  # the bridge must hold no dying port that answers to this MAC
            self.wait_dying(mac=mac)
        if info.get("driver") == "bridge" and net_name not in self._bridge_checked:
            # once per network and daemon: a bridge left by an earlier record holds
            # another address, which netavark would keep (bridgeaddr.py)
            gateways = [(s["gateway"], ipaddress.ip_network(s["subnet"]).prefixlen)
                        for s in info.get("subnets") or [] if s.get("gateway")]
            with host_lock(self.lock_path):
                bridgeaddr.reconcile(info.get("network_interface") or "", gateways)
            self._bridge_checked.add(net_name)
        if net_name in self._firewall_done and self._setup_veth(netns, opts, path):
            return _status_block(opts["networks"][net_name], info)
        # Written first: if setup half-fails, the teardown below (or a later one) undoes it.
        atomicfile.write_file(path, json.dumps({"netns": netns, "opts": opts}).encode(), 0o600, durable=False)
        try:
            res = self._run("setup", netns, data)
        except errdefs.DockerError:
            try:
                self._run("teardown", netns, data)
            except errdefs.DockerError:
                pass
            _unlink(path)
            raise
        if info.get("driver") == "bridge":
            self._firewall_done.add(net_name)
            if not opts["container_id"].startswith(keeper.THROWAWAY_PREFIX):
                keeper.ensure(info.get("network_interface") or "", net_name)
        return res.get(net_name, {})

    @traced("netlink veth", leaf=True)
    def _setup_veth(self, netns: str, opts: dict[str, Any], path: str) -> bool:
        """An endpoint on a bridge this daemon has set up with netavark before and whose
        keeper holds it (so its firewall chains are there): the veth made in-process
        (network/rtnl.py), without netavark's firewall pass. Only for what needs nothing
        more: IPv4, no published port, no embedded DNS. False when it does not apply or
        fails (what was made is undone; netavark then does it all, or says what is wrong)."""
        ((net_name, per_net),) = opts["networks"].items()
        info = opts["network_info"][net_name]
        if (opts.get("port_mappings") or info.get("dns_enabled") or info.get("ipv6_enabled")
                or opts["container_id"].startswith(keeper.THROWAWAY_PREFIX)):
            return False
        try:
            addrs = [ipaddress.IPv4Interface(f"{ip}/{ipaddress.ip_network(s['subnet']).prefixlen}")
                     for ip, s in zip(per_net["static_ips"], info["subnets"], strict=True)]
            gateway = None if info.get("internal") else info["subnets"][0].get("gateway")
            mtu = int(info.get("options", {}).get("mtu") or 0)
        except (KeyError, ValueError, TypeError):
            return False
        bridge = info.get("network_interface") or ""
        host_name = rtnl.host_veth_name()
        # this daemon's lock only: the veth touches no firewall rule another daemon's
        # netavark could be changing, and no other daemon takes this network's bridge
        with _thread_lock:
            if not keeper.kept(bridge, net_name):
                return False
            atomicfile.write_file(path, json.dumps({"netns": netns, "opts": opts, "host_veth": host_name}).encode(),
                                  0o600, durable=False)
            try:
                rtnl.add_veth(netns, bridge, host_name, per_net["interface_name"], per_net.get("static_mac") or "",
                              mtu, addrs, gateway)
            except OSError as e:
                log.debug("endpoint of %s on %s by netlink: %s", opts["container_id"][:12], net_name[:12], e)
                _unlink(path)
                return False
        return True

    def teardown(self, container_id: str, network_id: str, netns_going: bool = False) -> None:
        """Undo setup. `netns_going`: the caller removes the namespace right after, which
        lets a veth made in-process go with it (see _teardown_veth)."""
        path = self._ep_file(container_id, network_id)
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            return
        if saved.get("host_veth") and self._teardown_veth(saved, netns_going):
            _unlink(path)
            return
        try:
            self._run("teardown", saved["netns"], json.dumps(saved["opts"]).encode())
        except errdefs.DockerError as e:
            log.warning("teardown of %s on %s: %s", container_id[:12], network_id[:12], e)
        _unlink(path)

    def _teardown_veth(self, saved: dict[str, Any], netns_going: bool) -> bool:
        """Undo _setup_veth while the network's keeper holds the bridge: delete the pair.
        Without the keeper this may be the network's last endpoint, whose teardown is
        netavark's complete one (bridge, chains, rules): False, netavark does it.

        Deleting a veth waits for RCU grace periods in the kernel (rcu_barrier in
        netdev_run_todo): 15-30 ms on a busy 2-core host, most of a bridge container's exit.
        When the namespace goes right after (`netns_going`), the pair is left to the
        kernel's destruction of the namespace, done by a kernel worker while the exit goes
        on; the host end is then "dying" until it is gone. Whatever must not see it
        (the container's removal or next start: wait_dying; a new endpoint with its MAC:
        _setup_veth) waits for it, and one still there after a while is deleted."""
        ((net_name, info),) = saved["opts"]["network_info"].items()
        with _thread_lock:  # as in _setup_veth
            if not keeper.kept(info.get("network_interface") or "", net_name):
                return False
            cid = saved["opts"]["container_id"]
            if netns_going:
                mac = (saved["opts"]["networks"].get(net_name) or {}).get("static_mac") or ""
                self._dying[saved["host_veth"]] = (cid, mac, time.monotonic() + _DYING_MAX)
                self._start_reaper()
                return True
            try:
                rtnl.delete_veth(saved["host_veth"])
            except OSError as e:
                log.warning("teardown of %s on %s: %s", cid[:12], net_name[:12], e)
        return True

    def wait_dying(self, container_id: str = "", mac: str = "") -> None:
        """Until the dying veths of `container_id` (or with `mac`; both empty: all) are
        gone; one still there at its deadline is deleted (blocking)."""
        while True:
            with _thread_lock:
                names = [n for n, (c, m, _) in self._dying.items()
                         if (not container_id and not mac) or (container_id and c == container_id)
                         or (mac and m == mac)]
                now = time.monotonic()
                for n in names:
                    if not os.path.exists(f"/sys/class/net/{n}"):
                        del self._dying[n]
                    elif self._dying[n][2] <= now:
                        self._delete_dying(n)
                if not any(n in self._dying for n in names):
                    return
            time.sleep(0.002)

    def _delete_dying(self, name: str) -> None:
        """A dying veth still there at its deadline (the namespace held by something else):
        deleted as a teardown would have (with _thread_lock held)."""
        self._dying.pop(name, None)
        try:
            rtnl.delete_veth(name)
        except OSError as e:
            log.warning("deleting %s: %s", name, e)

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap, name="veth-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        """Forget dying veths once gone; delete those still there at their deadline."""
        while True:
            time.sleep(0.25)
            with _thread_lock:
                now = time.monotonic()
                for n, (_, _, deadline) in list(self._dying.items()):
                    if not os.path.exists(f"/sys/class/net/{n}"):
                        del self._dying[n]
                    elif deadline <= now:
                        self._delete_dying(n)
                if not self._dying:
                    self._reaper = None
                    return

    def attached(self, container_id: str) -> list[str]:
        """Network IDs (12-char) the container has live netavark state for."""
        pre = container_id + "-"
        return [f[len(pre):-5] for f in os.listdir(self.ep_dir) if f.startswith(pre) and f.endswith(".json")]

    def all_attached(self) -> list[tuple[str, str]]:
        out = []
        for f in os.listdir(self.ep_dir):
            if f.endswith(".json") and "-" in f:
                cid, nid = f[:-5].rsplit("-", 1)
                out.append((cid, nid))
        return out


@contextlib.contextmanager
def host_lock(path: str = "") -> Iterator[None]:
    """The host-wide lock every netavark call holds (the default path: /run/lock's)."""
    path = path or os.path.join(_HOST_LOCK_DIR, "berth-netavark.lock")
    with _thread_lock, open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _keep_isolation_jump() -> None:
    """netavark 1.4 deletes `FORWARD -j NETAVARK_ISOLATION_1` on the complete teardown of
    any isolated network (the rule's policy is OnComplete, types.rs), which switches
    isolation off for every other network on the host until a network is set up again.
    Berth keeps its own jump, told apart by a comment so netavark's delete (an exact rule
    match) never takes it; evaluating the chain twice is harmless."""
    jump = ["-m", "comment", "--comment", "berth network isolation", "-j", "NETAVARK_ISOLATION_1"]
    if subprocess.run(["iptables", "-w", "-C", "FORWARD", *jump], capture_output=True).returncode == 0:
        return
    r = subprocess.run(["iptables", "-w", "-I", "FORWARD", "1", *jump], capture_output=True)
    if r.returncode != 0:
        log.warning("network isolation jump: %s", r.stderr.decode().strip())


def _status_block(per_net: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """netavark's StatusBlock for an endpoint _setup_veth made (types.rs StatusBlock)."""
    subnets = []
    for ip, s in zip(per_net["static_ips"], info["subnets"], strict=True):
        sub: dict[str, Any] = {"ipnet": f"{ip}/{ipaddress.ip_network(s['subnet']).prefixlen}"}
        if s.get("gateway"):
            sub["gateway"] = s["gateway"]
        subnets.append(sub)
    return {"dns_search_domains": [], "dns_server_ips": [],
            "interfaces": {per_net["interface_name"]: {"mac_address": per_net.get("static_mac") or "",
                                                       "subnets": subnets}}}


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def network_config(n: Any) -> dict[str, Any]:
    """The netavark Network JSON for a Berth network (types.rs Network)."""
    subnets = []
    for p in n.Pools:
        s: dict[str, Any] = {"subnet": p.Subnet}
        if p.Gateway:
            s["gateway"] = p.Gateway
        subnets.append(s)
    # dockerd keeps bridge networks apart (DOCKER-ISOLATION-STAGE-1/2); netavark does only
    # for networks marked `isolate` (its NETAVARK_ISOLATION_1/2 chains). Without it the
    # FORWARD accept of each subnet lets any two Berth networks reach each other.
    opts: dict[str, str] = {"isolate": "true"}
    mtu = n.Options.get("com.docker.network.driver.mtu")
    if mtu and mtu != "1500":
        opts["mtu"] = mtu
    return {
        "name": n.Id,
        "id": n.Id,
        "driver": "bridge",
        "network_interface": n.Interface,
        "created": n.Created,
        "subnets": subnets,
        "ipv6_enabled": any(":" in p.Subnet for p in n.Pools),
        "internal": n.Internal,
        # The default bridge has no embedded DNS in dockerd; user networks do.
        "dns_enabled": n.user_defined,
        "options": opts,
        "ipam_options": {"driver": "host-local"},
    }
