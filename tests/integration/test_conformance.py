"""Every case of tests/conformance/cases_create.json and cases_run_more.json, run against a
real berthd, must observe exactly what dockerd 20.10 observed when the golden files were
recorded (golden_create.json, golden_run_more.json; re-record with
`conform.py record [--cases F --golden G] REF_SOCK`).

Cases marked `host_specific` depend on the recording host (CPU count, cgroup version,
architecture) and are skipped here.
"""
from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import pytest
from berthd_harness import Berthd

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "berth_conform", os.path.join(HERE, os.pardir, "conformance", "conform.py")
)
assert _spec is not None and _spec.loader is not None
conform = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conform)

_SETS = [(None, conform.DEFAULT_GOLDEN)] + [
    (os.path.join(HERE, os.pardir, "conformance", f"cases_{n}.json"),
     os.path.join(HERE, os.pardir, "conformance", f"golden_{n}.json")) for n in ("run_more",)
]
CASES: list[dict[str, Any]] = []
GOLDEN: dict[str, list[dict[str, Any]]] = {}
for _cases, _golden in _SETS:
    CASES += conform.load_cases([_cases] if _cases else None)
    GOLDEN.update(conform.load_golden(_golden))


# Where Berth answers otherwise on purpose: log drivers dockerd accepts but Berth would not
# ship to are refused at create (issue 13) instead of accepted and dropped.
INTENDED = {name: [{"status": 400, "message": f'logging driver "{drv}" is not supported by Berth: its logs would '
                                              "not be shipped (available: json-file, local, none, syslog, gelf, "
                                              "fluentd, journald)"},
                   {"HostConfig.LogConfig": "<absent>", "message": "No such container: {c}", "status": 404}]
            for name, drv in (("log-splunk-ok", "splunk"), ("log-logentries-any", "logentries"))}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case_matches_dockerd(berthd: Berthd, case: dict[str, Any]) -> None:
    if case.get("host_specific"):
        pytest.skip("observations depend on the recording host")
    want = GOLDEN.get(case["name"])
    assert want is not None, f"no golden observations for {case['name']}: re-record"
    if case["name"] in INTENDED:
        want = INTENDED[case["name"]]
    got = conform.accept(case, want, conform.run_case(berthd.sock, case))
    assert got == want, "\n".join(conform.differences(want, got)) + "\n" + json.dumps(case)[:2000]


def test_every_golden_case_exists() -> None:
    """A golden entry without a case is stale: the files were edited apart."""
    names = {c["name"] for c in CASES}
    assert sorted(set(GOLDEN) - names) == []
    assert len(names) == len(CASES), "duplicate case names"
