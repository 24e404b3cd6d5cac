"""Ticks that skip planning while nothing that could change a decision changed (taskorg/master/quiet.py):
the rule itself, and whole ticks (tickharness) in which a task that fits nowhere is placed as soon
as a node grows, a new submission is placed at once, and a restart delay is honoured to the tick."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import pytest
from tickharness import GiB, TickHarness

from taskorg.master import state
from taskorg.master.plan import Membership
from taskorg.master.plan import node_views
from taskorg.master.quiet import (CAPACITY_FIELDS, RANKING_FIELDS, RESYNC_SECONDS, QuietTicks, TickInputs,
                                  capacity_key, next_due)
from taskorg.protocol import Telemetry

MEMBERS = [{"node": "node1", "address": "10.0.0.1", "labels": {"zone": "a"}}]
INPUTS = TickInputs((1, 10), Membership(frozenset({"node1"}), frozenset()),
                    capacity_key(MEMBERS, {"node1": {"cpu_count": 4, "memory_total": 8}}))


def test_a_tick_that_decided_nothing_lets_the_next_skip_until_the_resync() -> None:
    quiet = QuietTicks()
    assert not quiet.may_skip(INPUTS, 100.0)  # nothing known yet
    quiet.planned(INPUTS, decided_nothing=True, due=math.inf, now=100.0)
    assert quiet.may_skip(INPUTS, 100.2)
    assert not quiet.may_skip(INPUTS, 100.0 + RESYNC_SECONDS)  # a full plan now and then, whatever


def test_a_tick_that_decided_something_never_lets_the_next_skip() -> None:
    quiet = QuietTicks()
    quiet.planned(INPUTS, decided_nothing=False, due=math.inf, now=100.0)
    assert not quiet.may_skip(INPUTS, 100.2)


def test_any_changed_input_or_a_due_restart_means_planning() -> None:
    quiet = QuietTicks()
    quiet.planned(INPUTS, decided_nothing=True, due=100.5, now=100.0)
    assert not quiet.may_skip(TickInputs((1, 11), INPUTS.membership, INPUTS.capacity), 100.2)
    assert not quiet.may_skip(TickInputs(INPUTS.position, Membership(frozenset(), frozenset()), INPUTS.capacity),
                              100.2)
    assert quiet.may_skip(INPUTS, 100.4) and not quiet.may_skip(INPUTS, 100.5)
    quiet.forget()
    assert not quiet.may_skip(INPUTS, 100.1)


def test_capacity_counts_what_placement_reads_and_not_the_load_of_the_moment() -> None:
    base = {"cpu_count": 4, "memory_total": 8, "cpu_percent": 3.0}
    assert capacity_key(MEMBERS, {"node1": base}) == capacity_key(MEMBERS, {"node1": {**base, "cpu_percent": 90.0}})
    assert capacity_key(MEMBERS, {"node1": base}) != capacity_key(MEMBERS, {"node1": {**base, "cpu_count": 8}})
    assert capacity_key(MEMBERS, {}) != capacity_key(MEMBERS, {"node1": base})  # telemetry arrived
    relabelled = [{**MEMBERS[0], "labels": {"zone": "b"}}]
    assert capacity_key(MEMBERS, {"node1": base}) != capacity_key(relabelled, {"node1": base})


class ReadFields(dict):  # type: ignore[type-arg]
    """A node's telemetry that notes which fields are read."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key: str, default: object = None) -> object:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> object:
        self.read.add(key)
        return super().__getitem__(key)


def test_the_key_names_every_telemetry_field_the_node_views_read() -> None:
    """A field placement reads to decide a fit but the key leaves out would wait for the resync: the
    resync can be long (RESYNC_SECONDS) only because no such field exists."""
    sample = Telemetry(cpu_count=4, memory_total=8 * GiB)
    telemetry = ReadFields({name: getattr(sample, name) for name in Telemetry.__struct_fields__})
    node_views(MEMBERS, {"node1": telemetry})
    assert telemetry.read, "the node views read no telemetry: this test no longer looks where placement reads"
    unnamed = telemetry.read - set(CAPACITY_FIELDS) - set(RANKING_FIELDS)
    assert not unnamed, f"placement reads {sorted(unnamed)}, which the quiet ticks' key does not name"


def test_next_due_is_the_earliest_restart_delay_still_running() -> None:
    pending = state.Instance(task_id="t-1", idx=0, job="j-1", status="pending", not_before=105.0)
    later = state.Instance(task_id="t-1", idx=1, job="j-1", status="pending", not_before=109.0)
    past = state.Instance(task_id="t-1", idx=2, job="j-1", status="pending", not_before=99.0)
    assert next_due([later, pending, past], now=100.0) == 105.0
    assert next_due([past], now=100.0) == math.inf


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[TickHarness]:
    harness = TickHarness(tmp_path, nodes=1)
    yield harness
    harness.close()


def test_a_task_that_fits_nowhere_is_placed_on_the_tick_after_a_node_grows(harness: TickHarness) -> None:
    task_id = harness.submit("name: big\nimage: busybox\nresources: {cpus: 6}\n")["tasks"][0]["id"]
    for _ in range(3):
        harness.tick()
    assert harness.task(task_id).status == "pending" and harness.slaves.orders == []
    assert harness.engine.quiet.inputs is not None  # the ticks now skip planning
    harness.engine.telemetry_book.store("node1", Telemetry(cpu_count=8, memory_total=4 * GiB))
    harness.tick()
    assert harness.instances(task_id)[0].status in ("starting", "running")


def test_a_submission_after_quiet_ticks_is_placed_on_the_next_tick(harness: TickHarness) -> None:
    harness.submit("name: big\nimage: busybox\nresources: {cpus: 64}\n")
    for _ in range(3):
        harness.tick()
    small = harness.submit("name: small\nimage: busybox\n")["tasks"][0]["id"]
    harness.tick()
    assert harness.instances(small)[0].status in ("starting", "running")


def test_only_the_position_moved_within_the_quiet_time_and_a_partial_plan_keeps_the_deadline() -> None:
    quiet = QuietTicks()
    assert not quiet.only_position_moved(INPUTS, 100.0)  # no quiet tick yet
    quiet.planned(INPUTS, decided_nothing=True, due=math.inf, now=100.0)
    moved = TickInputs((1, 12), INPUTS.membership, INPUTS.capacity)
    assert quiet.only_position_moved(moved, 100.5)
    assert not quiet.only_position_moved(TickInputs((1, 12), Membership(frozenset(), frozenset()), INPUTS.capacity),
                                         100.5)
    quiet.moved_on(moved)
    assert quiet.may_skip(moved, 100.6)
    assert not quiet.only_position_moved(moved, 100.0 + RESYNC_SECONDS)  # the full plan still comes


def test_after_quiet_ticks_a_submission_is_planned_alone_and_anything_else_plans_everything(
        harness: TickHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    planned: list[int] = []
    real = state.instances_to_plan

    def counting(store, usable, only_tasks=None):  # type: ignore[no-untyped-def]
        rows = real(store, usable, only_tasks)
        planned.append(len(rows))
        return rows

    monkeypatch.setattr(state, "instances_to_plan", counting)
    for n in range(5):
        harness.submit(f"name: big{n}\nimage: busybox\nresources: {{cpus: 16}}\n")
    harness.tick()
    harness.tick()
    assert planned[0] == 5
    planned.clear()
    small = harness.submit("name: small\nimage: busybox\n")["tasks"][0]["id"]
    harness.tick()
    assert planned == [1]  # the new one alone: the five still fit nowhere
    assert harness.instances(small)[0].status in ("starting", "running")
    planned.clear()
    harness.engine.telemetry_book.store("node1", Telemetry(cpu_count=128, memory_total=64 * GiB))
    harness.tick()
    assert planned and planned[0] >= 5  # a node grew: everything is weighed again, and the big ones fit
    assert all(harness.instances(t["id"])[0].status in ("starting", "running")
               for t in harness.engine.store.rows("SELECT id FROM tasks WHERE name LIKE 'big%'"))
