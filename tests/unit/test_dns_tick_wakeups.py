"""What wakes a real DNS service's tick (a lone voter, its own arbiter; taskorg.dns.due decides when):
a change applied to the replica, a heartbeat from a node after a silence, and not a steady heartbeat;
and the tick's answer is the time to the next deadline (the holder's lease), never more than IDLE_TICK."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from serviceapps import dns_service

from taskorg.dns import due
from taskorg.dns.service import DnsService
from tests.helpers import wait_until


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[DnsService]:
    with dns_service(tmp_path) as dns:
        yield dns


def test_a_registration_wakes_the_tick_and_a_steady_heartbeat_does_not(service: DnsService) -> None:
    service.tick()
    service.wake.clear()
    service.register("aa:01@127.0.0.2", "127.0.0.2", {})
    wait_until(service.wake.is_set, 5, "the applied registration to wake the tick", interval=0.01)
    service.tick()
    service.heartbeat("node1", "127.0.0.2", (1, 0))  # (publishing the election may have taken a while)
    service.wake.clear()
    service.heartbeat("node1", "127.0.0.2", (1, 0))
    assert not service.wake.is_set()  # heard from just now: it only moves a deadline later


def test_a_heartbeat_after_a_silence_wakes_the_tick(service: DnsService) -> None:
    service.register("aa:01@127.0.0.2", "127.0.0.2", {})
    assert service.arbiter is not None
    service.arbiter.members["node1"].last_heartbeat -= service.config.lease_timeout + 0.1  # a silent spell
    service.wake.clear()
    service.heartbeat("node1", "127.0.0.2", (1, 0))
    assert service.wake.is_set()


def test_the_tick_sleeps_until_the_holders_lease_runs_out(service: DnsService) -> None:
    service.register("aa:01@127.0.0.2", "127.0.0.2", {})
    service.heartbeat("node1", "127.0.0.2", (1, 0))
    wait = service.tick()
    assert service.arbiter is not None and service.arbiter.master == "node1"
    config = service.config
    assert 0 < wait <= min(config.lease_timeout + due.PAST, due.IDLE_TICK)  # node1's span, then its lease
