#!/usr/bin/env python3
"""Resource and stats behaviour of two daemons, side by side, as a table of differences.

    python3 bench/cgroup_compare.py REF_SOCK CAND_SOCK [--json OUT] [--only NAME,...]

Run on one host by scripts/guest/compare.sh (`scripts/guest-test --compare`): dockerd
and Berth in the same cgroup v2 + systemd guest. For the same `docker run` flags on both
it records what a user can see: create's warnings or error, the cgroup files the container
reads (memory.max, cpu.max, ...), /proc/self/cgroup, the host-side cgroup path and freezer
state, the key tree of `GET /containers/x/stats?stream=0`, `/info`'s cgroup fields and
warnings, `docker update`'s live effect, OOM, pause/unpause and `docker top`. Values are
normalised (container id, `docker-`/`berth-` scope prefix, which is a deliberate
difference) and every key whose value differs is printed. Exit status 1 when any differ.
Both daemons must hold busybox:latest; everything made is removed.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time

CGFILES = [
    "memory.max", "memory.swap.max", "memory.low", "memory.high", "memory.oom.group",
    "cpu.max", "cpu.weight", "cpuset.cpus", "pids.max", "io.weight", "io.bfq.weight", "io.max",
]

SCENARIOS: dict[str, list[str]] = {
    "default": [],
    "memory": ["--memory", "64m"],
    "memory-swap": ["--memory", "64m", "--memory-swap", "128m"],
    "memory-swap-unlimited": ["--memory", "64m", "--memory-swap", "-1"],
    "memory-swap-equal": ["--memory", "64m", "--memory-swap", "64m"],
    "memory-reservation": ["--memory-reservation", "32m"],
    "memory-reservation-over": ["--memory", "32m", "--memory-reservation", "64m"],
    "memory-too-small": ["--memory", "4m"],
    "cpus": ["--cpus", "1.5"],
    "cpus-too-many": ["--cpus", "64"],
    "cpu-shares": ["--cpu-shares", "512"],
    "cpu-shares-tiny": ["--cpu-shares", "1"],
    "cpu-quota": ["--cpu-quota", "50000", "--cpu-period", "100000"],
    "cpu-quota-only": ["--cpu-quota", "20000"],
    "cpu-period-only": ["--cpu-period", "50000"],
    "cpus-and-quota": ["--cpus", "1", "--cpu-quota", "50000"],
    "cpuset": ["--cpuset-cpus", "0"],
    "cpuset-bad": ["--cpuset-cpus", "7"],
    "pids": ["--pids-limit", "50"],
    "pids-unlimited": ["--pids-limit", "-1"],
    "blkio-weight": ["--blkio-weight", "300"],
    "blkio-weight-bad": ["--blkio-weight", "5"],
    "device-read-bps": ["--device-read-bps", "/dev/vda:1mb"],
    "device-write-iops": ["--device-write-iops", "/dev/vda:100"],
    "oom-kill-disable": ["--oom-kill-disable"],
    "oom-kill-disable-mem": ["--oom-kill-disable", "--memory", "64m"],
    "swappiness": ["--memory-swappiness", "50"],
    "kernel-memory": ["--kernel-memory", "64m"],
    "kernel-memory-tcp": ["--memory", "64m", "--kernel-memory", "32m"],
}


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=300)
        self.path_ = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path_)


class Daemon:
    def __init__(self, sock: str, tag: str) -> None:
        self.sock, self.tag = sock, tag

    def api(self, method: str, url: str) -> tuple[int, object]:
        c = UnixConn(self.sock)
        try:
            c.request(method, "/v1.41" + url)
            r = c.getresponse()
            raw = r.read()
        finally:
            c.close()
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, raw.decode(errors="replace").strip()

    def docker(self, *args: str, timeout: float = 300) -> tuple[int, str, str]:
        env = dict(os.environ, DOCKER_HOST="unix://" + self.sock)
        p = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout.strip(), p.stderr.strip()

    def inspect(self, name: str) -> dict:
        return self.api("GET", f"/containers/{name}/json")[1]  # type: ignore[return-value]


def key_tree(v: object, prefix: str = "") -> list[str]:
    """The key paths of a JSON value with each leaf's type (values differ run to run)."""
    if isinstance(v, dict):
        if not v:
            return [prefix + "={}"]
        out: list[str] = []
        for k in sorted(v):
            out += key_tree(v[k], f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(v, list):
        return [prefix + "=[]"] if not v else [prefix + "[]" + t[len(prefix):] for t in key_tree(v[0], prefix)]
    return [f"{prefix}:{type(v).__name__}"]


def norm(s: str, cid: str = "") -> str:
    if cid:
        s = s.replace(cid, "<id>").replace(cid[:12], "<id12>")
    return re.sub(r"\b(docker|berth)-<id>", "<engine>-<id>", s)


def warnings_of(stderr: str) -> list[str]:
    return [ln[len("WARNING: "):] for ln in stderr.splitlines() if ln.startswith("WARNING: ")]


def host_cgroup(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for ln in f:
                if ln.startswith("0::"):
                    return ln[3:].strip()
    except OSError:
        pass
    return ""


def read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        return f"<{e.strerror}>"


def cat_inside(d: Daemon, name: str) -> dict[str, str]:
    script = "; ".join(f'echo "{f}=$(cat /sys/fs/cgroup/{f} 2>/dev/null | tr "\\n" " " || echo -)"' for f in CGFILES)
    script += '; echo "proc_self_cgroup=$(tr "\\n" " " </proc/self/cgroup)"'
    rc, out, err = d.docker("exec", name, "sh", "-c", script)
    if rc:
        return {"exec": f"rc={rc} {err}"}
    res = {}
    for ln in out.splitlines():
        k, _, v = ln.partition("=")
        res[k] = v.strip() or "<absent>"
    return res


def scenario(d: Daemon, key: str, flags: list[str]) -> dict[str, object]:
    name = f"cmp-{key}-{d.tag}"
    d.docker("rm", "-f", name)
    rc, out, err = d.docker("create", "--name", name, *flags, "busybox", "sleep", "600")
    res: dict[str, object] = {"warnings": warnings_of(err)}
    if rc:
        res["create_error"] = err
        return res
    cid = out.splitlines()[-1]
    ins = d.inspect(name)
    hc = ins["HostConfig"]
    for k in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod",
              "CpusetCpus", "PidsLimit", "BlkioWeight", "OomKillDisable", "MemorySwappiness", "KernelMemory",
              "BlkioDeviceReadBps", "BlkioDeviceWriteIOps", "CgroupnsMode", "CgroupParent"):
        res[f"inspect.{k}"] = hc.get(k)
    rc, _, err = d.docker("start", name)
    if rc:
        res["start_error"] = norm(err, cid)
        d.docker("rm", "-f", name)
        return res
    res.update({f"cg.{k}": v for k, v in cat_inside(d, name).items()})
    pid = d.inspect(name)["State"]["Pid"]
    res["host_cgroup"] = norm(host_cgroup(pid), cid)
    d.docker("rm", "-f", name)
    return res


def check_stats(d: Daemon) -> dict[str, object]:
    name = f"cmp-stats-{d.tag}"
    d.docker("rm", "-f", name)
    d.docker("run", "-d", "--name", name, "--memory", "64m", "--device-read-bps", "/dev/vda:1mb", "busybox",
             "sh", "-c", "dd if=/dev/zero of=/tmp/x bs=1k count=100 2>/dev/null; sleep 600")
    time.sleep(2)
    st, body = d.api("GET", f"/containers/{name}/stats?stream=0")
    res: dict[str, object] = {"status": st}
    if isinstance(body, dict):
        for t in key_tree(body):
            top = t.split(".")[0].split(":")[0].split("=")[0].split("[")[0]
            if top in ("read", "preread", "name", "id", "num_procs", "memory_stats", "cpu_stats",
                       "precpu_stats", "pids_stats", "blkio_stats", "storage_stats", "networks"):
                res[t] = "present"
        ms = body.get("memory_stats", {})
        res["memory_stats.limit==64m"] = ms.get("limit") == 64 << 20
        res["pids_stats.current>0"] = body.get("pids_stats", {}).get("current", 0) > 0
        res["pids_stats.limit"] = body.get("pids_stats", {}).get("limit")
        res["cpu_stats.online_cpus"] = body.get("cpu_stats", {}).get("online_cpus")
    rc, out, err = d.docker("stats", "--no-stream", "--format", "{{json .}}", name)
    if rc == 0:
        row = json.loads(out)
        res["cli_stats_keys"] = sorted(row)
        res["cli_stats.MemUsage_limit"] = row.get("MemUsage", "").split("/")[-1].strip()
        res["cli_stats.BlockIO_nonzero"] = row.get("BlockIO", "") not in ("0B / 0B", "")
    else:
        res["cli_stats_error"] = err
    d.docker("rm", "-f", name)
    return res


def check_info(d: Daemon) -> dict[str, object]:
    info = d.api("GET", "/info")[1]
    assert isinstance(info, dict)
    res: dict[str, object] = {}
    for k in ("CgroupDriver", "CgroupVersion", "MemoryLimit", "SwapLimit", "KernelMemory", "KernelMemoryTCP",
              "CpuCfsPeriod", "CpuCfsQuota", "CPUShares", "CPUSet", "PidsLimit", "OomKillDisable",
              "IPv4Forwarding", "BridgeNfIptables", "BridgeNfIp6tables", "NCPU", "Warnings"):
        res[k] = info.get(k)
    res["SecurityOptions"] = [o for o in info.get("SecurityOptions") or [] if not o.startswith("name=seccomp")]
    return res


def check_update(d: Daemon) -> dict[str, object]:
    name = f"cmp-update-{d.tag}"
    d.docker("rm", "-f", name)
    d.docker("run", "-d", "--name", name, "--memory", "64m", "--cpus", "1", "--pids-limit", "50", "busybox", "sleep", "600")
    res: dict[str, object] = {"before": cat_inside(d, name)}
    for label, args in (("mem", ["--memory", "100m"]), ("mem-over-swap", ["--memory", "200m"]),
                        ("mem+swap", ["--memory", "100m", "--memory-swap", "300m"]),
                        ("cpus", ["--cpus", "0.5"]), ("pids", ["--pids-limit", "70"]),
                        ("pids-unlimited", ["--pids-limit", "-1"]), ("shares", ["--cpu-shares", "256"]),
                        ("cpuset", ["--cpuset-cpus", "0"]), ("blkio", ["--blkio-weight", "400"]),
                        ("reservation", ["--memory-reservation", "20m"]), ("kmem", ["--kernel-memory", "60m"])):
        rc, out, err = d.docker("update", *args, name)
        res[f"{label}.rc"] = rc
        if rc:
            res[f"{label}.err"] = err
        res[f"{label}.warnings"] = warnings_of(err)
        after = cat_inside(d, name)
        res[f"{label}.changed"] = {k: v for k, v in after.items() if res["before"].get(k) != v}  # type: ignore[union-attr]
        res["before"] = after
    hc = d.inspect(name)["HostConfig"]
    res["inspect_after"] = {k: hc.get(k) for k in ("Memory", "MemorySwap", "NanoCpus", "PidsLimit", "CpuShares",
                                                      "CpusetCpus", "BlkioWeight", "MemoryReservation", "KernelMemory")}
    del res["before"]
    d.docker("rm", "-f", name)
    return res


def check_oom(d: Daemon) -> dict[str, object]:
    name = f"cmp-oom-{d.tag}"
    d.docker("rm", "-f", name)
    rc, out, err = d.docker("run", "--name", name, "--memory", "16m", "--memory-swap", "16m", "busybox",
                            "sh", "-c", "tail /dev/zero", timeout=600)
    st = d.inspect(name)["State"]
    res = {"run_rc": rc, "OOMKilled": st["OOMKilled"], "ExitCode": st["ExitCode"], "Status": st["Status"],
           "Error": st["Error"]}
    d.docker("rm", "-f", name)
    return res


def check_pause_top(d: Daemon) -> dict[str, object]:
    name = f"cmp-pause-{d.tag}"
    d.docker("rm", "-f", name)
    rc, cid, _ = d.docker("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 600 & sleep 601")
    time.sleep(1)
    res: dict[str, object] = {}
    rc, out, err = d.docker("top", name)
    lines = out.splitlines()
    res["top.rc"] = rc
    res["top.header"] = lines[0].split() if lines else err
    res["top.rows"] = len(lines) - 1
    res["top.cmds"] = sorted(re.split(r"\s+", ln, maxsplit=7)[-1] for ln in lines[1:])
    st, body = d.api("GET", f"/containers/{name}/top?ps_args=-o+pid,comm")
    res["top_ps_args.titles"] = body.get("Titles") if isinstance(body, dict) else body
    pid = d.inspect(name)["State"]["Pid"]
    cg = "/sys/fs/cgroup" + host_cgroup(pid)
    rc, _, err = d.docker("pause", name)
    st = d.inspect(name)["State"]
    res.update({"pause.rc": rc, "paused.Status": st["Status"], "paused.Paused": st["Paused"],
                "paused.cgroup.freeze": read(cg + "/cgroup.freeze"),
                "paused.frozen": "frozen 1" in read(cg + "/cgroup.events")})
    rc, out, err = d.docker("exec", name, "true")
    res["exec_while_paused"] = norm(err, cid) if rc else "ok"
    rc, out, err = d.docker("top", name)
    res["top_while_paused.rc"] = rc
    rc, out, err = d.docker("pause", name)
    res["pause_again"] = norm(err, cid)
    rc, _, err = d.docker("unpause", name)
    st = d.inspect(name)["State"]
    res.update({"unpause.rc": rc, "unpaused.Status": st["Status"], "unpaused.Paused": st["Paused"],
                "unpaused.cgroup.freeze": read(cg + "/cgroup.freeze")})
    rc, out, err = d.docker("unpause", name)
    res["unpause_again"] = norm(err, cid)
    d.docker("rm", "-f", name)
    return res


CHECKS = {"info": check_info, "stats": check_stats, "update": check_update, "oom": check_oom,
          "pause-top": check_pause_top}


def canon(v: object) -> dict:
    """Ids, the names this script gave each side and the scope prefix made alike."""
    s = json.dumps(v, default=str)
    s = re.sub(r"[0-9a-f]{64}", "<id>", s)
    s = re.sub(r"(cmp-[a-z0-9-]+?)-[rc]\b", r"\1", s)
    s = re.sub(r"\b(docker|berth)-<id>", "<engine>-<id>", s)
    return json.loads(s)


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        p = f"{prefix}{k}"
        if isinstance(v, dict) and v and not p.endswith(".changed"):
            out.update(flatten(v, p + " "))
        else:
            out[p] = v
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("cand")
    ap.add_argument("--json")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    ref, cand = Daemon(a.ref, "r"), Daemon(a.cand, "c")
    results: dict[str, dict] = {"ref": {}, "cand": {}}
    # the most used first: under emulation a whole run takes long
    first = ("memory", "cpus", "pids", "memory-swap")
    todo: list[tuple[str, object]] = [("info", check_info)] + [(f"run {k}", SCENARIOS[k]) for k in first]
    todo += [(k, v) for k, v in CHECKS.items() if k != "info"]
    todo += [(f"run {k}", v) for k, v in SCENARIOS.items() if k not in first]
    for key, what in todo:
        if only and key.split()[-1] not in only:
            continue
        for side, d in (("ref", ref), ("cand", cand)):
            try:
                r = scenario(d, key.split()[-1], what) if isinstance(what, list) else what(d)  # type: ignore[operator]
            except Exception as e:  # a check that breaks is a difference, not the end of the run
                r = {"exception": f"{type(e).__name__}: {e}"}
            results[side][key] = r
        # each check's differences as soon as known: under emulation a whole run is slow
        fr1, fc1 = flatten(canon({key: results["ref"][key]})), flatten(canon({key: results["cand"][key]}))
        n = sum(fr1.get(k, "<absent>") != fc1.get(k, "<absent>") for k in set(fr1) | set(fc1))
        print(f"... {key}: {n} differ", file=sys.stderr, flush=True)
        for k in set(fr1) | set(fc1):
            if fr1.get(k, "<absent>") != fc1.get(k, "<absent>"):
                print(f"    {k}: dockerd {json.dumps(fr1.get(k, '<absent>'))} berth {json.dumps(fc1.get(k, '<absent>'))}",
                      file=sys.stderr, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    fr, fc = flatten(canon(results["ref"])), flatten(canon(results["cand"]))
    diffs = [(k, fr.get(k, "<absent>"), fc.get(k, "<absent>")) for k in list(fr) + [k for k in fc if k not in fr]
             if fr.get(k, "<absent>") != fc.get(k, "<absent>")]
    print(f"\n{len(fr)} observations, {len(diffs)} differ\n")
    if diffs:
        print("| check | dockerd | Berth |\n|---|---|---|")
        for k, r, c in diffs:
            print(f"| {k} | {json.dumps(r, default=str)} | {json.dumps(c, default=str)} |")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
