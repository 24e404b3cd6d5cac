"""The master's tick wakes just after a silent node is due to be declared dead, not up to a beat later.

Pure logic: a members view as the DNS service gives it (ages of the last
heartbeat), and the wait the tick loop derives from it.
"""

from __future__ import annotations

import time

import pytest

from taskorg.config import load_config
from taskorg.master.members import MemberCache
from taskorg.master.service import TICK_SECONDS, next_tick_in


def cache(ages: list[float | None], alive: list[bool] | None = None, fetched_ago: float = 0.0) -> MemberCache:
    config = load_config(overrides={"node_dead_after": 1.0}, environ={})
    members = MemberCache(config, "secret")
    alive = alive or [True] * len(ages)
    members.view = {"members": [{"node": f"n{i}", "alive": a, "last_seen_ago": age, "state": "active"}
                                for i, (age, a) in enumerate(zip(ages, alive))], "master": "n0", "epoch": 1}
    members.fetched_at = time.monotonic() - fetched_ago
    return members


def test_healthy_members_keep_the_beat() -> None:
    assert next_tick_in(cache([0.05, 0.1]).next_death_in()) == TICK_SECONDS


def test_a_silent_member_brings_the_tick_forward_to_its_death() -> None:
    death_in = cache([0.05, 0.9]).next_death_in()
    assert death_in == pytest.approx(0.1, abs=0.02)
    assert next_tick_in(death_in) == pytest.approx(0.11, abs=0.02)


def test_dead_members_and_missing_ages_do_not_count() -> None:
    assert cache([0.95, None], alive=[False, True]).next_death_in() is None


def test_an_old_view_falls_back_to_the_beat() -> None:
    """The DNS service unreachable: the view ages, and must not make the tick spin every 10 ms."""
    assert cache([0.9], fetched_ago=5.0).next_death_in() is None
    assert next_tick_in(None) == TICK_SECONDS


def test_an_overdue_death_waits_at_least_10_ms() -> None:
    assert next_tick_in(-0.5) == pytest.approx(0.01)
