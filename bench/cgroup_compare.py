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
difference) and every key whose value differs is printed. Both CLIs speak API 1.41
(dockerd 20.10's; Berth answers newer versions as newer dockerds, e.g. without
--kernel-memory's warnings). Differences explained in KNOWN (dockerd's own bugs, the
runtime's text) are listed apart; exit status 1 when any other differs. dockerd needs the
`crun` runtime configured (scripts/guest/compare.sh). Both daemons must hold
busybox:latest; everything made is removed.
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
    # the runtime dockerd would use if told to, on both sides (Berth's default here is crun)
    "crun-cpu-shares-tiny": ["--runtime", "crun", "--cpu-shares", "1"],
    "crun-cpu-shares-max": ["--runtime", "crun", "--cpu-shares", "262144"],
    "runc-cpu-shares-tiny": ["--runtime", "runc", "--cpu-shares", "1"],
}
# the Engine API version both CLIs speak (dockerd 20.10's; --api-version to change)
API_VERSION = "1.41"


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
        env = dict(os.environ, DOCKER_HOST="unix://" + self.sock, DOCKER_API_VERSION=API_VERSION)
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


def check_blockio_writeback(d: Daemon) -> dict[str, object]:
    """Bytes written to the page cache only (no fsync): io.stat counts them once written
    back, which both daemons leave to the kernel; BlockIO as `docker stats` shows it, over time."""
    name = f"cmp-wb-{d.tag}"
    d.docker("rm", "-f", name)
    d.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
             "dd if=/dev/zero of=/tmp/x bs=1k count=100 2>/dev/null; sleep 600")
    res: dict[str, object] = {}
    t0 = time.monotonic()
    for at in (2, 10, 40):
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        rc, out, err = d.docker("stats", "--no-stream", "--format", "{{.BlockIO}}", name)
        res[f"BlockIO_nonzero@{at}s"] = out not in ("0B / 0B", "") if rc == 0 else err
    d.docker("rm", "-f", name)
    return res


def check_stats(d: Daemon) -> dict[str, object]:
    name = f"cmp-stats-{d.tag}"
    d.docker("rm", "-f", name)
    # written through to the disk (the container's layer is on /scratch, a block device)
    d.docker("run", "-d", "--name", name, "--memory", "64m", "--device-read-bps", "/dev/vda:1mb", "busybox",
             "sh", "-c", "dd if=/dev/zero of=/tmp/x bs=4k count=256 conv=fsync 2>/dev/null; sync; sleep 600")
    time.sleep(4)
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
        res["blkio.entries"] = sorted(f"{e['major']}:{e['minor']} {e['op']} {'>0' if e['value'] else '0'}"
                                      for e in (body.get("blkio_stats", {}).get("io_service_bytes_recursive") or []))
    pid = d.inspect(name)["State"]["Pid"]
    cg = "/sys/fs/cgroup" + host_cgroup(pid)
    res["host.cgroup.controllers"] = read(cg + "/cgroup.controllers")
    res["host.io.stat_devices"] = sorted(ln.split()[0] for ln in read(cg + "/io.stat").splitlines() if ":" in ln)
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


def check_update(d: Daemon, runtime: str = "") -> dict[str, object]:
    name = f"cmp-update-{d.tag}"
    d.docker("rm", "-f", name)
    rt = ["--runtime", runtime] if runtime else []
    d.docker("run", "-d", "--name", name, *rt, "--memory", "64m", "--cpus", "1", "--pids-limit", "50", "busybox", "sleep", "600")
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


def check_oom(d: Daemon, runtime: str = "") -> dict[str, object]:
    name = f"cmp-oom-{d.tag}"
    d.docker("rm", "-f", name)
    rt = ["--runtime", runtime] if runtime else []
    rc, out, err = d.docker("run", "--name", name, *rt, "--memory", "16m", "--memory-swap", "16m", "busybox",
                            "sh", "-c", "tail /dev/zero", timeout=600)
    st = d.inspect(name)["State"]
    res = {"run_rc": rc, "OOMKilled": st["OOMKilled"], "ExitCode": st["ExitCode"], "Status": st["Status"],
           "Error": st["Error"]}
    d.docker("rm", "-f", name)
    return res


def check_oom_stress(d: Daemon, n: int = 6) -> dict[str, object]:
    """n OOM kills at once while two containers keep every CPU busy: how many the daemon
    reports (OOMKilled, the `oom` event), against the exit codes."""
    import concurrent.futures

    hogs = [f"cmp-hog{i}-{d.tag}" for i in range(2)]
    names = [f"cmp-oomst{i}-{d.tag}" for i in range(n)]
    for h in hogs:
        d.docker("run", "-d", "--name", h, "--network", "none", "busybox", "sh", "-c", "while :; do :; done")
    since = str(int(time.time()) - 1)
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        list(ex.map(lambda nm: d.docker("run", "--name", nm, "--network", "none", "--memory", "16m", "--memory-swap", "16m",
                                        "busybox", "sh", "-c", "tail /dev/zero", timeout=900), names))
    states = [d.inspect(nm)["State"] for nm in names]
    rc, out, _ = d.docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                          "--filter", "event=oom", "--format", "{{.Actor.Attributes.name}}")
    for nm in hogs + names:
        d.docker("rm", "-f", nm)
    return {"exit137": sum(s["ExitCode"] == 137 for s in states), "OOMKilled": sum(bool(s["OOMKilled"]) for s in states),
            "oom_events": len({ln for ln in out.splitlines() if ln in names})}


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


def check_start_errors(d: Daemon) -> dict[str, object]:
    """A command that is missing or cannot be run: start's error, exit code and State.Error,
    under each runtime (dockerd's translateContainerdStartErr on runc's and crun's texts)."""
    res: dict[str, object] = {}
    for rt in ("runc", "crun"):
        for label, cmd in (("missing", "nosuchcmd"), ("dir", "/etc"), ("missing-path", "/no/such")):
            name = f"cmp-starterr-{rt}-{label}-{d.tag}"
            d.docker("rm", "-f", name)
            rc, out, err = d.docker("create", "--name", name, "--runtime", rt, "busybox", cmd)
            if rc:
                res[f"{rt}.{label}.create"] = err
                continue
            cid = out.splitlines()[-1]
            rc, _, err = d.docker("start", name)
            st = d.inspect(name)["State"]
            res[f"{rt}.{label}"] = {"rc": rc, "err": norm(err, cid), "ExitCode": st["ExitCode"],
                                    "Status": st["Status"], "Error": norm(st["Error"], cid)}
            d.docker("rm", "-f", name)
    return res


CHECKS = {"info": check_info, "stats": check_stats, "update": check_update, "oom": check_oom,
          "pause-top": check_pause_top, "start-errors": check_start_errors,
          "blockio-writeback": check_blockio_writeback,
          # with the runtime named on both sides (dockerd's default is runc, Berth's here crun);
          # run only when named in --only
          "update-crun": lambda d: check_update(d, "crun"), "oom-crun": lambda d: check_oom(d, "crun"),
          "oom-runc": lambda d: check_oom(d, "runc"), "oom-stress": check_oom_stress}
OPTIONAL = {"update-crun", "oom-crun", "oom-runc", "oom-stress"}


def _has(v: object, text: str) -> bool:
    return text in json.dumps(v)


# Differences explained and not Berth's to copy: (key pattern, test on the dockerd and Berth
# values, why). Each is matched on both values, so a change on either side shows again.
KNOWN: list[tuple[str, object, str]] = [
    (r"oom(-runc|-crun)? OOMKilled|oom-stress (OOMKilled|oom_events)",
     lambda r, c: (r is False and c is True) or (isinstance(r, int) and r < c == 6),
     "dockerd 20.10 + containerd 1.6 miss the kill under the systemd driver: the shim reads memory.events "
     "after systemd removed the emptied scope (moby#41929); Berth reads it in time"),
    (r"update reservation\.changed", lambda r, c: isinstance(r, dict) and isinstance(c, dict)
     and r.get("io.weight") == "default 100" and {k: v for k, v in r.items() if k != "io.weight"} == c,
     "runc's systemd driver re-applies the unit on a --memory-reservation update and loses --blkio-weight "
     "(io.weight back to 100 while HostConfig.BlkioWeight stays 400); Berth keeps the weight"),
    (r"run cpu-shares-tiny start_error", lambda r, c: _has(r, "runc create failed") and _has(c, "sd-bus call"),
     "the runtime's own text (dockerd's default runc, Berth's crun here); the same runtime says the same "
     "(run crun-cpu-shares-tiny, runc-cpu-shares-tiny)"),
    (r"run crun-cpu-shares-max (host_cgroup|cg\.pids\.max)",
     lambda r, c: (_has(r, "/container") and not _has(c, "/container")) or (r == "max" and c != "max"),
     "dockerd + crun: crun's own `container` sub-cgroup; Berth turns it off for runc's layout, dockerd's default"),
    (r"update-crun .*", lambda r, c: True,
     "dockerd 20.10 + crun cannot update on v2 at all ('cannot set kernel memory with cgroupv2', the "
     "container is gone after)"),
]


def known(key: str, r: object, c: object) -> str:
    for pat, test, why in KNOWN:
        if re.fullmatch(pat, key) and test(r, c):  # type: ignore[operator]
            return why
    return ""


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
    ap.add_argument("--api-version", default=API_VERSION)
    a = ap.parse_args()
    globals()["API_VERSION"] = a.api_version
    only = set(filter(None, a.only.split(",")))
    ref, cand = Daemon(a.ref, "r"), Daemon(a.cand, "c")
    results: dict[str, dict] = {"ref": {}, "cand": {}}
    # the most used first: under emulation a whole run takes long
    first = ("memory", "cpus", "pids", "memory-swap")
    todo: list[tuple[str, object]] = [("info", check_info)] + [(f"run {k}", SCENARIOS[k]) for k in first]
    todo += [(k, v) for k, v in CHECKS.items() if k != "info"]
    todo += [(f"run {k}", v) for k, v in SCENARIOS.items() if k not in first]
    for key, what in todo:
        if (only and key.split()[-1] not in only) or (not only and key in OPTIONAL):
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
    explained = [(k, r, c, known(k, r, c)) for k, r, c in diffs]
    unexplained = [(k, r, c) for k, r, c, why in explained if not why]
    print(f"\n{len(fr)} observations, {len(diffs)} differ: {len(unexplained)} unexplained, "
          f"{len(diffs) - len(unexplained)} explained (dockerd's or the runtime's, below)\n")
    if unexplained:
        print("| check | dockerd | Berth |\n|---|---|---|")
        for k, r, c in unexplained:
            print(f"| {k} | {json.dumps(r, default=str)} | {json.dumps(c, default=str)} |")
    if len(unexplained) < len(diffs):
        print("\nExplained:\n\n| check | dockerd | Berth | why |\n|---|---|---|---|")
        for k, r, c, why in explained:
            if why:
                print(f"| {k} | {json.dumps(r, default=str)} | {json.dumps(c, default=str)} | {why} |")
    return 1 if unexplained else 0

if __name__ == "__main__":
    sys.exit(main())
