"""A process pool whose workers die with the daemon (prctl PR_SET_PDEATHSIG): spawned, not
forked (the daemon has threads), and shut down at exit."""
from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def _init_worker() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def new_pool(workers: int) -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)
    atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool
