"""runtime/oci.py start_by_exec_fifo: runc's `start` protocol, against a stand-in init that
does what runc init does with the fifo (open for writing, write a byte, exec = close)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from berth.runtime.oci import start_by_exec_fifo

INIT = "import os, sys, time; fd = os.open(sys.argv[1], os.O_WRONLY); os.write(fd, b'0'); time.sleep(0.2); os.close(fd)"


def _state(d: str, pid: int) -> None:
    with open(os.path.join(d, "state.json"), "w") as f:
        json.dump({"init_process_pid": pid}, f)


def test_reads_the_fifo_to_its_end_and_removes_it(tmp_path: object) -> None:
    d = str(tmp_path)
    fifo = os.path.join(d, "exec.fifo")
    os.mkfifo(fifo, 0o622)
    init = subprocess.Popen([sys.executable, "-c", INIT, fifo])
    try:
        _state(d, init.pid)
        t = time.monotonic()
        assert start_by_exec_fifo(d)
        assert time.monotonic() - t >= 0.15  # not before the writer closed its end (the exec)
        assert not os.path.exists(fifo)
    finally:
        init.wait(5)


def test_no_fifo_or_a_dead_init_reads_nothing(tmp_path: object) -> None:
    d = str(tmp_path)
    assert not start_by_exec_fifo(d)  # no fifo: not created, or started already
    fifo = os.path.join(d, "exec.fifo")
    os.mkfifo(fifo, 0o622)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(5)
    _state(d, dead.pid)
    assert not start_by_exec_fifo(d)
    assert os.path.exists(fifo)  # left for `runc start`, which says what is wrong
