"""Compute accounting of a replica: reserved resources x engine time, shared among concurrent requests."""

from __future__ import annotations

import pytest

from deployments.cost import ComputeMeter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lone_request_is_charged_all_the_replicas_resources_for_its_time():
    clock = Clock()
    meter = ComputeMeter({"CPU": 4, "GPU": 1, "memory": 0}, clock=clock)
    token = meter.start()
    clock.now += 2.5
    assert meter.stop(token) == {"CPU": 10.0, "GPU": 2.5}


def test_overlapping_requests_share_each_moment_and_sum_to_busy_time():
    clock = Clock()
    meter = ComputeMeter({"GPU": 1}, clock=clock)
    a = meter.start()
    clock.now += 1.0  # a alone: 1.0
    b = meter.start()
    clock.now += 2.0  # a and b: 1.0 each
    cost_a = meter.stop(a)
    clock.now += 3.0  # b alone: 3.0
    cost_b = meter.stop(b)
    assert cost_a["GPU"] == pytest.approx(2.0) and cost_b["GPU"] == pytest.approx(4.0)
    assert cost_a["GPU"] + cost_b["GPU"] == pytest.approx(6.0)  # the replica was busy 6 s


def test_idle_time_is_charged_to_nobody():
    clock = Clock()
    meter = ComputeMeter({"CPU": 1}, clock=clock)
    clock.now += 50
    token = meter.start()
    clock.now += 1
    assert meter.stop(token) == {"CPU": pytest.approx(1.0)}
    assert ComputeMeter({}, clock=clock).resources == {}
