"""A cluster from before the replicated state keeps its names and epoch (docs/architecture.md).

The DNS node's old SQLite registry is carried into the replicated state by
the first arbiter: every member keeps its number and state, the epoch and
master go on from where they were.
"""

from __future__ import annotations

from pathlib import Path

from taskorg.config import load_config
from taskorg.dns.store import Registry
from taskorg.dns.service import DnsService
from tests.helpers import free_loopback_block, wait_until


def test_the_first_arbiter_carries_the_sqlite_registry_over(tmp_path: Path) -> None:
    old = Registry(tmp_path / "dns" / "registry.db")
    for n in (1, 2, 3):
        old.register(f"aa:0{n}@10.0.0.{n}", f"10.0.0.{n}", {"n": str(n)})
    old.set_state("node2", "left")
    old.record_election(7, "node3", "lease of node1 expired", "node1")
    old.close()
    address = free_loopback_block(start=170)
    config = load_config(overrides={"dns_address": address, "state_dir": str(tmp_path), "raft_port": 24421},
                         environ={})
    service = DnsService(config, "secret")
    try:
        def took_over() -> bool:
            service.tick()
            return service.is_arbiter()

        wait_until(took_over, 10, "the lone voter to take over as arbiter", interval=0.05)
        members = service.registry.members(include_left=True)
        assert [(m.node, m.identity, m.state, m.labels) for m in members] == [
            ("node1", "aa:01@10.0.0.1", "active", {"n": "1"}),
            ("node2", "aa:02@10.0.0.2", "left", {"n": "2"}),
            ("node3", "aa:03@10.0.0.3", "active", {"n": "3"})]
        assert service.registry.election() == (7, "node3")
        assert service.arbiter is not None and (service.arbiter.epoch, service.arbiter.master) == (7, "node3")
    finally:
        service.registry.close()
