"""daemon/health.py decisions: probe command, interval (StartInterval), result handling and
the timeout message (moby daemon/health.go)."""
from __future__ import annotations

from types import SimpleNamespace

from berth.container.state import Health
from berth.daemon import health
from berth.types.container import Config, HealthConfig


def _ctr(test: list[str] | None, shell: list[str] | None = None) -> SimpleNamespace:
    cfg = Config(Healthcheck=HealthConfig(Test=test) if test is not None else None)
    if shell is not None:
        cfg.Shell = shell
    return SimpleNamespace(Config=cfg)


def test_probe_command() -> None:
    assert health.probe_command(_ctr(["CMD", "true", "x"])) == ["true", "x"]
    assert health.probe_command(_ctr(["CMD-SHELL", "exit 1"])) == ["/bin/sh", "-c", "exit 1"]
    assert health.probe_command(_ctr(["CMD-SHELL", "a", "b"], shell=["/bin/ash", "-e", "-c"])) == [
        "/bin/ash", "-e", "-c", "a", "b"]
    assert health.probe_command(_ctr(["NONE"])) is None
    assert health.probe_command(_ctr([])) is None
    assert health.probe_command(_ctr(None)) is None


def test_next_interval_uses_start_interval_while_starting() -> None:
    hc = HealthConfig(Interval=10 * 10**9, StartPeriod=60 * 10**9, StartInterval=2 * 10**9)
    assert health.next_interval(hc, "starting", 5) == 2
    assert health.next_interval(hc, "healthy", 5) == 10
    assert health.next_interval(hc, "starting", 61) == 10
    # no StartInterval: the 5s default inside the start period
    assert health.next_interval(HealthConfig(StartPeriod=60 * 10**9), "starting", 1) == 5
    # no start period: always Interval (default 30s)
    assert health.next_interval(HealthConfig(StartInterval=10**9), "starting", 0) == 30


def _d() -> SimpleNamespace:
    events: list[str] = []
    return SimpleNamespace(events=events, log_container_event=lambda ctr, action: events.append(action))


def test_handle_probe_result_streak_and_start_period() -> None:
    d = _d()
    ctr = SimpleNamespace(State=SimpleNamespace(Health=Health(Status="starting", Log=[])), to_disk=lambda: None)
    health.handle_probe_result(d, ctr, 0, 1, "no", 2, in_start_period=True)
    assert (ctr.State.Health.Status, ctr.State.Health.FailingStreak) == ("starting", 0)
    health.handle_probe_result(d, ctr, 0, 1, "no", 2, in_start_period=False)
    health.handle_probe_result(d, ctr, 0, -1, "Health check exceeded timeout (1s)", 2, in_start_period=False)
    assert (ctr.State.Health.Status, ctr.State.Health.FailingStreak) == ("unhealthy", 2)
    for _ in range(5):
        health.handle_probe_result(d, ctr, 0, 0, "ok\n", 2, in_start_period=False)
    h = ctr.State.Health
    assert (h.Status, h.FailingStreak, len(h.Log)) == ("healthy", 0, 5)
    assert h.Log[-1]["ExitCode"] == 0 and h.Log[-1]["Output"] == "ok\n"
    assert d.events == ["health_status: unhealthy", "health_status: healthy"]


def test_go_duration() -> None:
    assert health.go_duration(1) == "1s"
    assert health.go_duration(1.5) == "1.5s"
    assert health.go_duration(0.5) == "500ms"
    assert health.go_duration(90) == "1m30s"
    assert health.go_duration(3600) == "1h0m0s"
    assert health.go_duration(30) == "30s"


def test_probe_output_is_limited() -> None:
    import asyncio

    async def go() -> str:
        out = health._ProbeOutput()
        await out.write(b"a" * 4000)
        await out.write(b"b" * 200)
        return out.text()

    assert asyncio.run(go()) == "a" * 4000 + "b" * 96 + "..."
