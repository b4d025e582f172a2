"""Presence says when it is degraded: the gauge, and one log line on entering and one on leaving."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from services.presence.application.input_health import InputHealth


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gauge() -> float | None:
    return REGISTRY.get_sample_value("podium_presence_degraded")


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.endswith("input_health")]


def test_one_line_on_entering_and_one_on_leaving_however_many_checks(caplog):
    caplog.set_level(logging.INFO)
    clock = Clock()
    health = InputHealth(stalled_after=2.0, clock=clock)
    health.checked(0, None)
    assert gauge() == 0 and lines(caplog) == []
    for _ in range(5):
        health.checked(0, "behind its input by 4.0 s")
    assert gauge() == 1
    health.checked(1, "no heartbeats for 3.0 s")
    health.checked(0, None)
    assert gauge() == 1  # partition 1 still is
    health.checked(1, None)
    assert gauge() == 0
    assert lines(caplog) == [
        "presence degraded: no time-outs until its input is current again "
        "(partition 0: behind its input by 4.0 s)",
        "presence no longer degraded: time-outs on evidence resume",
    ]


def test_a_partition_whose_ticks_are_not_read_counts_and_one_no_longer_assigned_does_not():
    clock = Clock()
    health = InputHealth(stalled_after=2.0, clock=clock)
    health.review({0, 1})
    health.checked(0, None)
    health.checked(1, None)
    clock.now += 3.0
    health.checked(0, None)  # partition 1's ticks stopped coming (the broker, or presence, stopped)
    health.review({0, 1})
    assert health.degraded and health.summary() == "partition 1: no tick read for 3.0 s"
    health.review({0})  # partition 1 went to another replica
    assert not health.degraded and gauge() == 0
