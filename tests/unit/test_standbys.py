"""The standby set (issue 14): bounded by the setting `standbys`, sticky, filled freshest first."""

from __future__ import annotations

from typing import Any

import pytest

from taskorg.config import ConfigError, load_config
from taskorg.labels import NO_MASTER_SERVICE
from taskorg.master.replication import Replicator
from taskorg.master.standbys import choose_standbys, eligible, fill_order


def member(node: str, replica: tuple[int, int] | None = (1, 10), alive: bool = True, state: str = "active",
           labels: dict[str, str] | None = None) -> dict[str, Any]:
    number = int(node.removeprefix("node"))
    return {"node": node, "address": f"127.0.9.{number}", "alive": alive, "state": state, "labels": labels or {},
            "replica": list(replica) if replica is not None else None}


def test_a_gap_is_filled_freshest_replica_first_then_by_node_number() -> None:
    candidates = [member("node5", (2, 7)), member("node3", (2, 9)), member("node10", (3, 1)),
                  member("node4", (2, 9)), member("node6", None)]
    assert fill_order(candidates) == ["node10", "node3", "node4", "node5", "node6"]
    assert choose_standbys((), candidates, 2) == ("node10", "node3")
    assert choose_standbys((), candidates, 9) == ("node10", "node3", "node4", "node5", "node6")


def test_living_standbys_are_kept_even_when_fresher_nodes_exist() -> None:
    candidates = [member("node2", (1, 5)), member("node3", (1, 50)), member("node4", (1, 60))]
    assert choose_standbys(("node2", "node3"), candidates, 2) == ("node2", "node3")
    # One died (no longer a candidate): only its place is filled, with the freshest of the others.
    assert choose_standbys(("node2", "node9"), candidates, 2) == ("node2", "node4")
    # Fewer wanted than held: the first chosen stay.
    assert choose_standbys(("node3", "node2"), candidates, 1) == ("node3",)
    assert choose_standbys(("node2",), [], 2) == ()
    assert choose_standbys(("node2",), candidates, 0) == ()


def test_the_same_inputs_give_the_same_set() -> None:
    candidates = [member(f"node{n}", (1, 10)) for n in (7, 2, 9, 4)]
    assert choose_standbys((), candidates, 2) == choose_standbys((), list(reversed(candidates)), 2) == ("node2", "node4")


def test_only_living_active_members_with_a_master_service_other_than_this_one_are_eligible() -> None:
    rows = [member("node1"), member("node2"), member("node3", alive=False), member("node4", state="draining"),
            member("node5", state="left"), member("node6", labels={NO_MASTER_SERVICE: "true"}),
            member("node7", labels={"gpu": "true"})]
    assert [m["node"] for m in eligible(rows, "127.0.9.1")] == ["node2", "node7"]


class Members:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def members(self) -> list[dict[str, Any]]:
        return self.rows

    def refresh(self) -> bool:
        return True


def test_the_replicator_streams_to_the_set_only_and_replaces_a_dead_standby() -> None:
    config = load_config(environ={}, overrides={"address": "127.0.9.1", "standbys": 2})
    rows = [member("node1", (1, 100)), member("node2", (1, 100)), member("node3", (1, 100)),
            member("node4", (1, 40))]
    replicator = Replicator(config, "s" * 32, store=None, members=Members(rows))  # type: ignore[arg-type]
    replicator.running = True
    assert replicator.standbys() == {"node2": "127.0.9.2", "node3": "127.0.9.3"}
    assert replicator.standby_set() == ["node2", "node3"]
    rows[1]["alive"] = False
    assert replicator.standbys() == {"node3": "127.0.9.3", "node4": "127.0.9.4"}
    rows[1]["alive"] = True  # back: node4 keeps its place (sticky), node2 is a spare now
    assert replicator.standbys() == {"node3": "127.0.9.3", "node4": "127.0.9.4"}
    # Lag (alerts, Prometheus) is only for the set; a standby not yet caught up counts for nothing.
    replicator.acked = {"node3": 7}
    assert set(replicator.lag(7)) == {"node3", "node4"}
    assert replicator.wait_for(7, 0.0)  # replication_acks 1: node3 holds it
    config2 = load_config(environ={}, overrides={"address": "127.0.9.1", "standbys": 2, "replication_acks": 2})
    replicator.config = config2
    assert not replicator.wait_for(7, 0.05)  # node4 is still catching up: it does not count


@pytest.mark.parametrize("settings, message", [
    ({"standbys": 0}, "setting 'standbys': how many standby masters"),
    ({"standbys": 10}, "from 1 to 9, got 10"),
    ({"standbys": 2, "replication_acks": 3}, "cannot wait for more standbys than the master streams to"),
])
def test_the_standby_count_is_checked(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=settings, environ={})


def test_the_default_is_two_standbys_one_ack() -> None:
    config = load_config(overrides={}, environ={})
    assert (config.standbys, config.replication_acks) == (2, 1)


def test_the_cli_refuses_to_hand_the_master_role_to_a_spare() -> None:
    from taskorg.cli.node_commands import spare_warning

    view = {"members": [{"node": "node1", "role": "master"}, {"node": "node2", "role": "standby"},
                        {"node": "node3", "role": "standby"}, {"node": "node4", "role": "spare"}]}
    assert spare_warning(view, "node2") is None
    assert spare_warning({}, "node4") is None  # no master view: the arbiter's freshest-first stands
    warning = spare_warning(view, "node4")
    assert warning and "node4 is a spare" in warning and "standbys: node2, node3" in warning


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_arbiter_elects_a_standby_while_one_lives_then_the_freshest_spare() -> None:
    """The election side (taskorg.dns.arbiter, unchanged): the standbys hold the freshest replica, a spare
    the position it last had, a node that never had a replica (0, 0)."""
    from taskorg.dns.arbiter import Arbiter

    clock = Clock()
    arbiter = Arbiter(lease_timeout=0.5, margin=0.15, clock=clock)

    def beat(standbys_alive: bool) -> None:
        arbiter.heartbeat("node4", (2, 40))  # a spare since change 40
        arbiter.heartbeat("node5", (0, 0))   # a spare that never had a replica
        if standbys_alive:
            arbiter.heartbeat("node2", (2, 100))
            arbiter.heartbeat("node3", (2, 98))

    arbiter.master, arbiter.epoch = "node1", 2
    beat(standbys_alive=True)
    clock.now += 1.0  # node1 silent: its lease ran out
    beat(standbys_alive=True)
    assert arbiter.candidates() == ["node2", "node3", "node4", "node5"]
    assert arbiter.tick().master == "node2"  # type: ignore[union-attr]
    clock.now += 1.0  # node2 and node3 die too: only spares live
    beat(standbys_alive=False)
    assert arbiter.candidates() == ["node4", "node5"]
    assert arbiter.tick().master == "node4"  # type: ignore[union-attr]
