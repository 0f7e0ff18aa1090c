"""The classic builder's step lines and history texts as dockerd 20.10's, through the real
CLI (`DOCKER_BUILDKIT=0 docker build`), and the `--tmpfs` option message.

The expected hashes are the ones the reference dockerd 20.10.24 shows in
`docker history --no-trunc` for the same context (same names, contents and modes):
tarsums of the context's tar headers and contents (`file:`/`dir:`/`multi:`), and for
`COPY --from` the lazy source's, from lstat.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import uuid

import pytest
from berthd_harness import Berthd

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="integration tests need root")

F_TXT = "99dab1a7a2dd5d9f985450ffe99777fca12ef0bdae5ec5e071c7846d31930e6d"
D_DIR = "40e886135bcbbcff5cef0b70e14be57ef31a227b3d857859d6c78e49709bb7d3"
MULTI = "2230dd3778c10a2fd21e6026b9d5a50f1e61d35d2d265ce21c34c47bf386045b"
FROM_FILE = "f773b2eeb77adc5328ba18b4939172b8c9edac0afafb43bac7700dbecb1b88ed"
FROM_DIR = "8b2d56356c2bcf6ab7d62e40636b5b7465ad636ab3fdb1451640458dea02ad78"


def context(tmp: pathlib.Path, dockerfile: str) -> str:
    (tmp / "f.txt").write_text("hello\n")
    (tmp / "d" / "sub").mkdir(parents=True)
    (tmp / "d" / "a").write_text("a\n")
    (tmp / "d" / "sub" / "b").write_text("b\n")
    for p, mode in (("f.txt", 0o644), ("d", 0o755), ("d/sub", 0o755), ("d/a", 0o644), ("d/sub/b", 0o644)):
        os.chmod(tmp / p, mode)
    (tmp / "Dockerfile").write_text(dockerfile)
    return str(tmp)


def build(b: Berthd, ctx: str, tag: str) -> str:
    env = dict(b.env(), DOCKER_BUILDKIT="0")
    r = subprocess.run(["docker", "build", "--no-cache", "-t", tag, ctx], env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def history(b: Berthd, tag: str) -> list[str]:
    out = b.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout.decode()
    return out.splitlines()


def test_global_arg_step_copy_hashes_and_chown_text(berthd: Berthd, tmp_path: pathlib.Path) -> None:
    tag = "h" + uuid.uuid4().hex[:10]
    ctx = context(tmp_path, "ARG BASE=busybox\nFROM ${BASE}\nCOPY f.txt /f.txt\nCOPY --chown=1:2 f.txt /g.txt\n"
                            "COPY d /d/\nADD --chown=5 d /e/\nCOPY f.txt d /multi/\n")
    try:
        out = build(berthd, ctx, tag)
        steps = re.findall(r"^Step (\d+)/(\d+) : (.*)$", out, re.M)
        assert steps[:3] == [("1", "7", "ARG BASE=busybox"), ("2", "7", "FROM ${BASE}"),
                             ("3", "7", "COPY f.txt /f.txt")], out
        assert len(steps) == 7
        # the ARG step has no " ---> " line of its own
        assert out.index("Step 2/7") < out.index(" ---> ")
        assert history(berthd, tag)[:5] == [
            f"/bin/sh -c #(nop) COPY multi:{MULTI} in /multi/ ",
            f"/bin/sh -c #(nop) ADD --chown=5dir:{D_DIR} in /e/ ",
            f"/bin/sh -c #(nop) COPY dir:{D_DIR} in /d/ ",
            f"/bin/sh -c #(nop) COPY --chown=1:2file:{F_TXT} in /g.txt ",
            f"/bin/sh -c #(nop) COPY file:{F_TXT} in /f.txt ",
        ]
    finally:
        berthd.docker("rmi", tag, check=False)


def test_copy_from_stage_hashes(berthd: Berthd, tmp_path: pathlib.Path) -> None:
    tag = "h" + uuid.uuid4().hex[:10]
    ctx = context(tmp_path, "FROM busybox AS a\nCOPY f.txt /f.txt\nCOPY d/a /d/a\nFROM busybox\n"
                            "COPY --from=a /f.txt /y\nCOPY --from=a /d /e\n")
    stage = ""
    try:
        out = build(berthd, ctx, tag)
        stage = re.findall(r" ---> ([0-9a-f]{12})\n", out.split("Step 4/6")[0])[-1]
        assert history(berthd, tag)[:2] == [f"/bin/sh -c #(nop) COPY dir:{FROM_DIR} in /e ",
                                            f"/bin/sh -c #(nop) COPY file:{FROM_FILE} in /y "]
    finally:
        berthd.docker("rmi", tag, check=False)
        if stage:
            berthd.docker("rmi", stage, check=False)


def test_tmpfs_invalid_option_message(berthd: Berthd) -> None:
    r = berthd.docker("run", "--rm", "--network", "none", "--tmpfs", "/t:bogus", "busybox", "true", check=False)
    assert r.returncode != 0
    assert 'Error response from daemon: invalid tmpfs option ["bogus"]' in r.stderr.decode()
