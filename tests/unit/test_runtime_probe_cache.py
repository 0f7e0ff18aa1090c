"""The default-runtime probe's answer is remembered in the exec root for the same boot and
the same binaries (runtime/oci.py), so a restart after a crash runs no probe container."""
from __future__ import annotations

import asyncio
import os

from berth.runtime import oci


def _fake_runtime(tmp_path, name: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_probe_answer_is_remembered_and_forgotten_when_a_binary_changes(tmp_path, monkeypatch) -> None:
    crun, runc = _fake_runtime(tmp_path, "crun"), _fake_runtime(tmp_path, "runc")
    calls: list[str] = []

    async def probe(path: str, name: str, workdir: str) -> str | None:
        calls.append(name)
        return "hybrid cgroups" if name == "crun" else None

    monkeypatch.setattr(oci, "probe_runtime", probe)
    monkeypatch.setattr(oci, "_probe_cache", {})
    work = str(tmp_path / "exec")
    os.mkdir(work)
    assert asyncio.run(oci.probe_default_runtime((crun, runc), workdir=work)) == runc
    assert calls == ["crun", "runc"]

    monkeypatch.setattr(oci, "_probe_cache", {})  # a new daemon process
    assert asyncio.run(oci.probe_default_runtime((crun, runc), workdir=work)) == runc
    assert calls == ["crun", "runc"]  # no probe container this time

    with open(crun, "a") as f:  # crun upgraded: ask again
        f.write("# 1.9\n")
    monkeypatch.setattr(oci, "_probe_cache", {})
    assert asyncio.run(oci.probe_default_runtime((crun, runc), workdir=work)) == runc
    assert calls == ["crun", "runc", "crun", "runc"]
