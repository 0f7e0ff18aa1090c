"""Restart policies with back-off (moby/restartmanager/restartmanager.go): a container's
state, below the daemon that consults it when the container exits."""
from __future__ import annotations

import asyncio
import contextlib

BACKOFF_MULTIPLIER = 2
DEFAULT_TIMEOUT = 0.1  # 100 ms
MAX_RESTART_TIMEOUT = 60.0


class RestartCanceled(Exception):
    """restartmanager.ErrRestartCanceled"""


class RestartManager:
    """restartmanager.RestartManager: policy, back-off (100 ms doubling to 1 min, reset
    after 10 s of running) and a cancel that stops any pending or future restart."""

    def __init__(self, policy_name: str, max_retry: int, restart_count: int) -> None:
        self.policy = policy_name
        self.max_retry = max_retry
        self.restart_count = restart_count
        self.timeout = 0.0
        self.active = False
        self.canceled = False
        self._cancel = asyncio.Event()

    def should_restart(self, exit_code: int, manually_stopped: bool, duration: float) -> bool:
        if self.canceled or self.active:
            return False
        if duration >= 10:
            self.timeout = 0.0
        if self.timeout == 0:
            self.timeout = DEFAULT_TIMEOUT
        elif self.timeout < MAX_RESTART_TIMEOUT:
            self.timeout *= BACKOFF_MULTIPLIER
        self.timeout = min(self.timeout, MAX_RESTART_TIMEOUT)
        restart = False
        if self.policy == "always" or self.policy == "unless-stopped" and not manually_stopped:
            restart = True
        elif self.policy == "on-failure" and (self.max_retry == 0 or self.restart_count < self.max_retry):
            restart = exit_code != 0
        if not restart:
            self.active = False
            return False
        self.restart_count += 1
        self.active = True
        return True

    async def wait(self) -> None:
        """Sleep the back-off; raises RestartCanceled if cancelled meanwhile."""
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._cancel.wait(), self.timeout)
            if self.canceled:
                raise RestartCanceled("restart canceled")
        finally:
            self.active = False

    def cancel(self) -> None:
        self.canceled = True
        self._cancel.set()
