"""Container state (moby/container/state.go).

`State` is the shape stored in config.v2.json; `ContainerState` is the one
`GET /containers/{id}/json` shows (with `Status`, without `RemovalInProgress`).
Times are kept as Go-formatted RFC 3339 strings, as they are on disk.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgspec import UNSET, Struct, UnsetType

ZERO_TIME = "0001-01-01T00:00:00Z"


class Health(Struct):
    Status: str = "starting"
    FailingStreak: int = 0
    Log: list[Any] | None = None


class State(Struct):
    Running: bool = False
    Paused: bool = False
    Restarting: bool = False
    OOMKilled: bool = False
    RemovalInProgress: bool = False
    Dead: bool = False
    Pid: int = 0
    ExitCode: int = 0
    Error: str = ""
    StartedAt: str = ZERO_TIME
    FinishedAt: str = ZERO_TIME
    Health: Health | None = None

    def state_string(self) -> str:
        """StateString: the `Status` word of inspect and the `State` of `docker ps`."""
        if self.Running:
            if self.Paused:
                return "paused"
            if self.Restarting:
                return "restarting"
            return "running"
        if self.RemovalInProgress:
            return "removing"
        if self.Dead:
            return "dead"
        if self.StartedAt == ZERO_TIME:
            return "created"
        return "exited"

    def is_running(self) -> bool:
        return self.Running


class ContainerState(Struct):
    """types.ContainerState, as inspect shows it."""

    Status: str
    Running: bool
    Paused: bool
    Restarting: bool
    OOMKilled: bool
    Dead: bool
    Pid: int
    ExitCode: int
    Error: str
    StartedAt: str
    FinishedAt: str
    Health: Health | UnsetType = UNSET

    @classmethod
    def from_state(cls, s: State) -> ContainerState:
        return cls(
            Status=s.state_string(),
            Running=s.Running,
            Paused=s.Paused,
            Restarting=s.Restarting,
            OOMKilled=s.OOMKilled,
            Dead=s.Dead,
            Pid=s.Pid,
            ExitCode=s.ExitCode,
            Error=s.Error,
            StartedAt=s.StartedAt,
            FinishedAt=s.FinishedAt,
            Health=s.Health if s.Health is not None else UNSET,
        )


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as `docker ps` prints ages."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = int(seconds / 60)
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = int(round(seconds / 3600))
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{int(h / 24 / 365)} years"


def state_status(s: State, now_ns: int, parse_time: Callable[[str], int]) -> str:
    """State.String: the `Status` column of `docker ps`."""
    if s.Running:
        if s.Paused:
            return f"Up {human_duration((now_ns - parse_time(s.StartedAt)) / 1e9)} (Paused)"
        if s.Restarting:
            return f"Restarting ({s.ExitCode}) {human_duration((now_ns - parse_time(s.FinishedAt)) / 1e9)} ago"
        health = ""
        if s.Health is not None:
            health = {"starting": " (health: starting)", "healthy": " (healthy)", "unhealthy": " (unhealthy)"}.get(
                s.Health.Status, ""
            )
        return f"Up {human_duration((now_ns - parse_time(s.StartedAt)) / 1e9)}{health}"
    if s.RemovalInProgress:
        return "Removal In Progress"
    if s.Dead:
        return "Dead"
    if s.StartedAt == ZERO_TIME:
        return "Created"
    if s.FinishedAt == ZERO_TIME:
        return ""
    return f"Exited ({s.ExitCode}) {human_duration((now_ns - parse_time(s.FinishedAt)) / 1e9)} ago"


VALID_STATES = {"paused", "restarting", "running", "removing", "dead", "created", "exited"}
VALID_HEALTH = {"starting", "healthy", "unhealthy", "none"}
