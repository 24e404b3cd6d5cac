"""Who the DNS service's arbiter may elect: active nodes that run a master service, judged as they are
after each registration or change of state."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from serviceapps import dns_service

from taskorg.dns.service import DnsService
from taskorg.labels import NO_MASTER_SERVICE


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[DnsService]:
    with dns_service(tmp_path) as dns:
        yield dns


def test_a_drained_node_activated_again_is_on_the_ballot_again(service: DnsService) -> None:
    service.register("aa:01@127.0.0.2", "127.0.0.2", {})
    service.register("aa:02@127.0.0.3", "127.0.0.3", {})
    assert service.arbiter is not None
    service.set_state("node2", "draining")
    assert "node2" in service.arbiter.ineligible
    service.set_state("node2", "active")
    assert "node2" not in service.arbiter.ineligible


def test_a_node_without_a_master_service_stays_off_the_ballot(service: DnsService) -> None:
    service.register("aa:01@127.0.0.2", "127.0.0.2", {})
    service.register("aa:02@127.0.0.3", "127.0.0.3", {NO_MASTER_SERVICE: "true"})
    assert service.arbiter is not None
    assert "node2" in service.arbiter.ineligible
    service.set_state("node2", "draining")
    service.set_state("node2", "active")
    assert "node2" in service.arbiter.ineligible
