#!/usr/bin/env python3
"""Berth's own Engine API conformance runner: request scenarios ("cases") whose
observations must equal dockerd 20.10's.

    conform.py diff REF_SOCK CAND_SOCK [--cases F ...] [--only S] [-v]
        run every case on a reference dockerd and on a candidate, print the differences
    conform.py record REF_SOCK [--cases F] [--golden G] [--only S]
        run every case on the reference dockerd (twice: a case whose observations differ
        between the runs is unstable and refused) and save them as the golden file
    conform.py check CAND_SOCK [--cases F] [--golden G] [--only S] [-v]
        compare a candidate with the golden file (what tests/integration/test_conformance.py does)

Golden files are recorded from the reference only; CI never needs one running.

Case format (the same as the shared differential runner's): a JSON list of
`{"name", "phase", "steps": [...], "host_specific"?}`. A step is
`{"method"="GET", "url", "body"? | "raw"?, "headers"?, "save"?, "save_short"?,
"fields"?, "keys"?, "shape"?, "headers_seen"?, "body_text"?, "sorted_json"?,
"since_start"?, "accept_status"?, "accept_messages"?}`. `{u}` in a URL or body is
replaced by a name unique to the run; `{<save>}` by an ID saved from an earlier step's
`Id`; `{since}`/`{until}` (with `since_start`) by the case's start time and now + 2 s.
Unversioned URLs are sent as `/v1.41/...` (except `/_ping` and `/version`).
The observation of a step is its status, the error message (status >= 400), and the
listed JSON paths / key lists / type skeletons / headers / body text, after IDs, the
unique name, times, IPv4 and MAC addresses are replaced by placeholders.
`host_specific` cases depend on the host (CPU count, cgroup version, architecture):
they are recorded but not checked against a golden file made elsewhere.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import socket
import sys
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CASES = os.path.join(HERE, "cases_create.json")
DEFAULT_GOLDEN = os.path.join(HERE, "golden_create.json")
API = "1.41"

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
HEX12 = re.compile(r"\b[0-9a-f]{12}\b")
IPV4 = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
MAC = re.compile(r"\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b")
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")

Observation = dict[str, Any]


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.upath = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self.upath)


def call(sock: str, method: str, url: str, body: Any = None, raw: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any, bytes]:
    if not re.match(r"^/v\d", url) and not url.startswith(("/_ping", "/version")):
        url = f"/v{API}{url}"
    conn = UnixConn(sock)
    hdr = dict(headers or {})
    data = raw.encode() if isinstance(raw, str) else raw
    if body is not None:
        data = json.dumps(body).encode()
        hdr.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, url, body=data, headers=hdr)
        r = conn.getresponse()
        text = r.read()
    finally:
        conn.close()
    try:
        js = json.loads(text) if text.strip()[:1] in (b"{", b"[") else None
    except ValueError:
        js = None
    if js is None and text.strip().startswith(b"{"):
        try:  # a stream of JSON lines (events)
            js = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            js = None
    return r.status, {k.lower(): v for k, v in r.getheaders()}, js, text


def get_path(js: Any, path: str) -> Any:
    cur = js
    for part in path.split("."):
        if isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError):
                return "<absent>"
        elif isinstance(cur, dict):
            if part not in cur:
                return "<absent>"
            cur = cur[part]
        else:
            return "<absent>"
    return cur


def normalise(v: Any, uniq: str) -> Any:
    s = json.dumps(v, sort_keys=True).replace(uniq, "<U>")
    s = HEX64.sub("<ID>", s)
    s = HEX12.sub("<SID>", s)
    s = TS.sub("<TS>", s)
    s = IPV4.sub("<IP>", s)
    s = MAC.sub("<MAC>", s)
    return json.loads(s)


def shape(v: Any) -> Any:
    """Type skeleton of a JSON value: keys and kinds, not values."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


def _subst(text: str, uniq: str, ctx: dict[str, str]) -> str:
    text = text.replace("%7Bu%7D", "{u}").replace("{u}", uniq)
    for k, v in ctx.items():
        text = text.replace("{" + k + "}", v)
    return text


def run_case(sock: str, case: dict[str, Any], uniq: str | None = None) -> list[Observation]:
    """Run a case's steps on one daemon; remove the containers it made; return its observations."""
    uniq = uniq or "c" + uuid.uuid4().hex[:10]
    t0 = int(time.time() - 1)
    ctx: dict[str, str] = {}
    seen: list[Observation] = []
    made: list[str] = []
    try:
        for step in case["steps"]:
            url = _subst(step["url"], uniq, ctx)
            if step.get("since_start"):
                url = url.replace("{since}", str(t0)).replace("{until}", str(int(time.time()) + 2))
            body = step.get("body")
            if body is not None:
                body = json.loads(_subst(json.dumps(body), uniq, ctx))
            st, hdr, js, text = call(sock, step.get("method", "GET"), url, body=body, raw=step.get("raw"),
                                     headers=step.get("headers"))
            if step.get("save_short") and isinstance(js, dict) and "Id" in js:
                ctx[step["save_short"]] = js["Id"].split(":")[-1][:12]
            if step.get("save") and isinstance(js, dict) and "Id" in js:
                ctx[step["save"]] = js["Id"]
                made.append(js["Id"])
            obs: Observation = {"status": st}
            if st >= 400:
                obs["message"] = js.get("message") if isinstance(js, dict) else text.decode(errors="replace")
            for f in step.get("fields", []):
                obs[f] = get_path(js, _subst(f, uniq, ctx))
            for f in step.get("shape", []):
                obs["shape:" + f] = shape(js if f == "." else get_path(js, f))
            for f in step.get("keys", []):
                v = js if f == "." else get_path(js, f)
                obs["keys:" + f] = sorted(v) if isinstance(v, dict) else type(v).__name__
            for h in step.get("headers_seen", []):
                hv = hdr.get(h.lower(), "<absent>")
                if h.lower() == "x-docker-container-path-stat" and hv != "<absent>":
                    hv = json.loads(base64.b64decode(hv))
                    hv.pop("mtime", None)
                obs["header:" + h] = hv
            if step.get("sorted_json") and isinstance(js, list):
                obs["sorted"] = sorted(json.dumps(x, sort_keys=True) for x in js)
            if step.get("body_text"):
                obs["text"] = text.decode(errors="replace")
            seen.append(normalise(obs, uniq))
    finally:
        for cid in made:
            try:
                call(sock, "DELETE", f"/containers/{cid}?force=1&v=1")
            except OSError:
                pass
    return seen


def accept(case: dict[str, Any], ref: list[Observation], cand: list[Observation]) -> list[Observation]:
    """The candidate's observations with the case's allowed alternatives mapped onto the
    reference's: `accept_status` (a later moby turned a 500 into a 400) and
    `accept_messages` (messages listing map keys in Go's random order)."""
    out = []
    for i, obs in enumerate(cand):
        if i < len(ref) and i < len(case["steps"]) and isinstance(obs, dict):
            step = case["steps"][i]
            if obs.get("status") in step.get("accept_status", []):
                obs = dict(obs, status=ref[i]["status"])
            same = step.get("accept_messages", [])
            if obs.get("message") in same and ref[i].get("message") in same:
                obs = dict(obs, message=ref[i]["message"])
        out.append(obs)
    return out


def differences(ref: list[Observation], cand: list[Observation]) -> list[str]:
    lines = []
    for i in range(max(len(ref), len(cand))):
        r = ref[i] if i < len(ref) else None
        c = cand[i] if i < len(cand) else None
        if r != c:
            lines.append(f"   step {i}: want {json.dumps(r)[:800]}")
            lines.append(f"   step {i}: got  {json.dumps(c)[:800]}")
    return lines


def load_cases(files: list[str] | None, only: str | None = None) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for f in files or [DEFAULT_CASES]:
        with open(f) as fh:
            cases += json.load(fh)
    return [c for c in cases if not only or only in c["name"]]


def load_golden(path: str = DEFAULT_GOLDEN) -> dict[str, list[Observation]]:
    with open(path) as f:
        return json.load(f)["cases"]


def _cmd_diff(a: argparse.Namespace) -> int:
    bad = 0
    cases = load_cases(a.cases, a.only)
    for case in cases:
        try:
            ref = run_case(a.ref, case)
        except Exception as e:  # the reference must answer every case
            print(f"REF-ERROR {case['name']}: {e}")
            bad += 1
            continue
        try:
            cand = accept(case, ref, run_case(a.cand, case))
        except Exception as e:
            cand = [{"error": f"{type(e).__name__}: {e}"}]
        if ref == cand:
            print(f"ok    {case['name']}")
            continue
        bad += 1
        print(f"DIFF  {case['name']}")
        if a.v:
            print("\n".join(differences(ref, cand)))
    print(f"{len(cases) - bad} passed, {bad} failed")
    return 0 if bad == 0 else 1


def _cmd_record(a: argparse.Namespace) -> int:
    cases = load_cases(a.cases, a.only)
    golden: dict[str, list[Observation]] = {}
    if a.only and os.path.exists(a.golden):
        golden = load_golden(a.golden)
    unstable = []
    for case in cases:
        first, second = run_case(a.ref, case), run_case(a.ref, case)
        if first != second:
            unstable.append(case["name"])
            print(f"UNSTABLE {case['name']}")
            print("\n".join(differences(first, second)))
            continue
        golden[case["name"]] = first
        print(f"recorded {case['name']}")
    known = {c["name"] for c in load_cases(a.cases)}
    golden = {k: v for k, v in sorted(golden.items()) if k in known}
    with open(a.golden, "w") as f:
        json.dump({"recorded_from": "dockerd 20.10.24 (API 1.41)", "cases": golden}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(golden)} recorded, {len(unstable)} unstable: {' '.join(unstable)}")
    return 0 if not unstable else 1


def _cmd_check(a: argparse.Namespace) -> int:
    golden = load_golden(a.golden)
    bad = 0
    cases = load_cases(a.cases, a.only)
    for case in cases:
        want = golden.get(case["name"])
        if want is None:
            print(f"NO-GOLDEN {case['name']}")
            bad += 1
            continue
        got = accept(case, want, run_case(a.cand, case))
        if got == want:
            print(f"ok    {case['name']}")
            continue
        bad += 1
        print(f"DIFF  {case['name']}" + ("  (host-specific)" if case.get("host_specific") else ""))
        if a.v:
            print("\n".join(differences(want, got)))
    print(f"{len(cases) - bad} passed, {bad} failed")
    return 0 if bad == 0 else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn in (("diff", _cmd_diff), ("record", _cmd_record), ("check", _cmd_check)):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        p.add_argument("--cases", action="append")
        p.add_argument("--only")
        p.add_argument("-v", action="store_true")
        if name == "diff":
            p.add_argument("ref")
            p.add_argument("cand")
        elif name == "record":
            p.add_argument("--golden", default=DEFAULT_GOLDEN)
            p.add_argument("ref")
        else:
            p.add_argument("--golden", default=DEFAULT_GOLDEN)
            p.add_argument("cand")
    a = ap.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
