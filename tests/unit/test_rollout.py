"""Rolling updates decided (taskorg/master/rollout.py): batches, order, waiting for health and for the
delay, completion, failure actions, rollbacks, scaling, refused updates. Pure: records in, records out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskorg.master import rollout
from taskorg.master.rollout import UpdateRefused, step
from taskorg.master.state import HistoryEvent, Instance, Rollout, Task
from taskorg.master.store import Delete
from taskorg.spec import TaskSpec, parse_spec_text

NOW = 1000.0


def spec(version: str = "1", replicas: int = 3, **update: Any) -> TaskSpec:
    config = {"parallelism": 1, "monitor": "1s", **update}
    text = json.dumps({"job": "web", "tasks": [{"name": "web", "image": "busybox", "replicas": replicas,
                                                "env": {"VERSION": version}, "update_config": config,
                                                "rollback_config": {"parallelism": 0, "monitor": "0s"}}]})
    return parse_spec_text(text, source="t.json").tasks[0]


def text(s: TaskSpec) -> str:
    return json.dumps(s.to_dict())


def task(target: TaskSpec, revision: int = 2) -> Task:
    return Task("t-1", "j-1", "web", text(target), "running", "running", None, None, 0.0, 0.0, revision)


def record(state: str = "updating", revision: int = 2, previous: int = 1, previous_spec: TaskSpec | None = None,
           **fields: Any) -> Rollout:
    return Rollout("t-1", "j-1", state, revision, previous, text(previous_spec or spec("1")), started_at=NOW - 10,
                   updated_at=NOW - 10, **fields)


def inst(idx: int, revision: int = 1, status: str = "running", health: str | None = None, started: float = 0.0,
         restarts: int = 0, node: str | None = "node1") -> Instance:
    return Instance(task_id="t-1", idx=idx, status=status, node=node if status in ("starting", "running") else None,
                    attempt=1, restarts=restarts, container_id=f"c-{idx}-{revision}" if node else None,
                    started_at=started, health=health, revision=revision)


def rollout_of(result: rollout.Step) -> Rollout | None:
    found = [r for r in result.records if isinstance(r, Rollout)]
    return found[-1] if found else None


def instances_of(result: rollout.Step) -> list[Instance]:
    return [r for r in result.records if isinstance(r, Instance)]


def events(result: rollout.Step) -> list[str]:
    return [r.event for r in result.records if isinstance(r, HistoryEvent)]


# ---- batches -----------------------------------------------------------------------------------
def test_stop_first_replaces_one_instance_at_a_time_and_stops_its_container() -> None:
    new = spec("2")
    result = step(record(), task(new), new, spec("1"), [inst(0), inst(1), inst(2)], NOW)
    assert [i.idx for i in result.stop] == [0]
    (replaced,) = instances_of(result)
    assert (replaced.idx, replaced.status, replaced.revision, replaced.node, replaced.restarts) == (0, "pending", 2,
                                                                                                   None, 0)
    assert replaced.not_before == NOW + spec("1").stop_grace_period + rollout.STOP_GUARD  # until the stop answers
    assert rollout_of(result).batch == 1 and "batch 1 of 3" in rollout_of(result).detail
    assert events(result) == ["update_batch"]


def test_parallelism_takes_that_many_and_zero_takes_all() -> None:
    olds = [inst(i) for i in range(5)]
    two = spec("2", replicas=5, parallelism=2)
    assert [i.idx for i in step(record(), task(two), two, spec("1"), olds, NOW).stop] == [0, 1]
    every = spec("2", replicas=5, parallelism=0)
    assert [i.idx for i in step(record(), task(every), every, spec("1"), olds, NOW).stop] == [0, 1, 2, 3, 4]


def test_a_batch_waits_for_health_then_for_the_monitor_time() -> None:
    new = spec("2")
    with_check = TaskSpec.from_dict({**new.to_dict(), "healthcheck": {"test": ["CMD", "true"], "interval": 1.0}})
    batch = [inst(0, revision=2, health="starting", started=NOW - 5), inst(1), inst(2)]
    ongoing = record(batch=1)
    assert step(ongoing, task(with_check), with_check, spec("1"), batch, NOW).records == []  # not healthy yet
    batch[0] = batch[0].but(health="healthy", started_at=NOW - 0.5)
    assert step(ongoing, task(with_check), with_check, spec("1"), batch, NOW).records == []  # monitor: 1 s
    batch[0] = batch[0].but(started_at=NOW - 1.5)
    result = step(ongoing, task(with_check), with_check, spec("1"), batch, NOW)
    assert [i.idx for i in result.stop] == [1] and rollout_of(result).batch == 2


def test_pending_and_starting_new_instances_hold_the_next_batch() -> None:
    new = spec("2")
    for first in (inst(0, revision=2, status="pending"), inst(0, revision=2, status="starting")):
        assert step(record(batch=1), task(new), new, spec("1"), [first, inst(1), inst(2)], NOW).records == []


def test_the_delay_between_batches_is_waited_out() -> None:
    new = spec("2", delay="10s")
    done = [inst(0, revision=2, started=NOW - 5), inst(1), inst(2)]
    first = step(record(batch=1), task(new), new, spec("1"), done, NOW)
    assert first.stop == [] and rollout_of(first).next_at == NOW + 10
    waiting = rollout_of(first)
    assert step(waiting, task(new), new, spec("1"), done, NOW + 5).records == []
    later = step(waiting, task(new), new, spec("1"), done, NOW + 10)
    assert [i.idx for i in later.stop] == [1]


def test_start_first_adds_a_new_instance_and_retires_an_old_one_once_it_is_ready() -> None:
    new = spec("2", order="start-first")
    olds = [inst(0), inst(1), inst(2)]
    begun = step(record(), task(new), new, spec("1"), olds, NOW)
    assert begun.stop == []
    (surge,) = instances_of(begun)
    assert (surge.idx, surge.status, surge.revision) == (3, "pending", 2)
    ready = olds + [inst(3, revision=2, started=NOW - 2)]
    retired = step(rollout_of(begun), task(new), new, spec("1"), ready, NOW)
    assert [i.idx for i in retired.stop] == [0]
    assert Delete("instances", {"task_id": "t-1", "idx": 0}) in retired.records


def test_an_update_completes_when_no_old_instance_runs() -> None:
    new = spec("2")
    result = step(record(batch=3), task(new), new, spec("1"),
                  [inst(i, revision=2, started=NOW - 5) for i in range(3)], NOW)
    assert rollout_of(result).state == "completed" and events(result) == ["update_completed"]
    assert step(rollout_of(result), task(new), new, spec("1"), [], NOW).records == []  # ended: nothing more


def test_old_instances_that_crash_come_back_on_the_new_spec_without_counting_as_failures() -> None:
    new = spec("2")
    crashed = inst(1, status="pending", restarts=2)  # placed later on the target (plan counts afresh)
    result = step(record(batch=1), task(new), new, spec("1"),
                  [inst(0, revision=2, started=NOW - 5), crashed, inst(2)], NOW)
    assert rollout_of(result) is None or rollout_of(result).state == "updating"
    assert result.stop == []  # the crashed one is in flight: it counts as part of this batch


# ---- failures ----------------------------------------------------------------------------------
def test_a_failing_new_instance_rolls_the_task_back() -> None:
    new = spec("2", failure_action="rollback")
    unhealthy = inst(0, revision=2, status="pending", restarts=1, health="unhealthy")
    result = step(record(batch=1), task(new), new, spec("1"), [unhealthy, inst(1), inst(2)], NOW)
    back = rollout_of(result)
    assert (back.state, back.revision, back.previous, back.batch) == ("rolling_back", 1, 2, 0)
    assert back.previous_spec == text(new)
    (task_after,) = [r for r in result.records if isinstance(r, Task)]
    assert task_after.spec == text(spec("1")) and task_after.revision == 1
    assert events(result) == ["update_failed", "rollback_started"]


def test_a_rollback_replaces_the_new_instances_with_the_rollback_config() -> None:
    failed_spec = spec("2")
    back = record(state="rolling_back", revision=1, previous=2, previous_spec=failed_spec)
    good = spec("1")
    mixed = [inst(0, revision=2, started=NOW - 5), inst(1, revision=1, started=NOW - 50), inst(2, started=NOW - 50)]
    result = step(back, task(good, revision=1), good, failed_spec, mixed, NOW)
    assert [i.idx for i in result.stop] == [0]  # rollback_config: parallelism 0, all the new ones at once
    assert "going back to revision 1" in rollout_of(result).detail
    done = step(back.but(batch=1), task(good, revision=1), good, failed_spec,
                [inst(i, revision=1, started=NOW - 5) for i in range(3)], NOW)
    assert rollout_of(done).state == "rolled_back" and events(done) == ["rollback_completed"]


def test_pause_stops_the_update_where_it_is() -> None:
    new = spec("2", failure_action="pause")
    failed = inst(0, revision=2, status="failed")
    result = step(record(batch=1), task(new), new, spec("1"), [failed, inst(1), inst(2)], NOW)
    assert rollout_of(result).state == "paused" and "failed" in rollout_of(result).detail
    assert result.stop == [] and events(result) == ["update_paused"]
    assert step(rollout_of(result), task(new), new, spec("1"), [failed, inst(1), inst(2)], NOW).records == []


def test_continue_goes_on_past_failures() -> None:
    new = spec("2", failure_action="continue")
    result = step(record(batch=1), task(new), new, spec("1"),
                  [inst(0, revision=2, status="failed"), inst(1), inst(2)], NOW)
    assert [i.idx for i in result.stop] == [1] and rollout_of(result).failures == 1


def test_max_failure_ratio_tolerates_that_share_of_failures() -> None:
    new = spec("2", failure_action="pause", max_failure_ratio=0.5, replicas=4)
    one_failed = [inst(0, revision=2, status="failed"), inst(1, revision=2, started=NOW - 5), inst(2), inst(3)]
    assert rollout_of(step(record(batch=2), task(new), new, spec("1", replicas=4), one_failed, NOW)).state == "updating"
    two_failed = [inst(0, revision=2, status="failed"), inst(1, revision=2, restarts=1, status="pending"),
                  inst(2), inst(3)]
    assert rollout_of(step(record(batch=2), task(new), new, spec("1", replicas=4), two_failed, NOW)).state == "updating"
    three = two_failed[:2] + [inst(2, revision=2, status="failed"), inst(3)]
    assert rollout_of(step(record(batch=3), task(new), new, spec("1", replicas=4), three, NOW)).state == "paused"


def test_a_failed_rollback_pauses_rather_than_rolling_back_again() -> None:
    failed_spec = spec("2")
    back = record(state="rolling_back", revision=1, previous=2, previous_spec=failed_spec)
    good = spec("1")
    result = step(back.but(batch=1), task(good, revision=1), good, failed_spec,
                  [inst(0, revision=1, status="failed"), inst(1, revision=2), inst(2, revision=2)], NOW)
    assert rollout_of(result).state == "paused"


# ---- starting a rollout ------------------------------------------------------------------------
def job_text(version: str, replicas: int = 3, names: tuple[str, ...] = ("web",)) -> Any:
    tasks = [{"name": n, "image": "busybox", "replicas": replicas, "env": {"VERSION": version}} for n in names]
    return parse_spec_text(json.dumps({"job": "web", "tasks": tasks}), source="t.json")


def test_an_update_gives_changed_tasks_a_new_revision_and_a_rollout() -> None:
    old = job_text("1").tasks[0]
    current = task(old, revision=1)
    records, answers = rollout.update_records("j-1", [current], {"t-1": [inst(i) for i in range(3)]}, {},
                                              job_text("2"), NOW)
    (changed,) = [r for r in records if isinstance(r, Task)]
    (started,) = [r for r in records if isinstance(r, Rollout)]
    assert changed.revision == 2 and json.loads(changed.spec)["env"] == {"VERSION": "2"}
    assert (started.state, started.revision, started.previous, started.previous_spec) == ("updating", 2, 1, text(old))
    assert answers == [{"id": "t-1", "name": "web", "revision": 2, "previous": 1, "update": "rolling"}]


def test_the_same_spec_again_changes_nothing() -> None:
    current = task(job_text("1").tasks[0], revision=1)
    records, answers = rollout.update_records("j-1", [current], {"t-1": []}, {}, job_text("1"), NOW)
    assert records == [] and answers[0]["update"] == "unchanged"


def test_revisions_only_go_up_even_after_a_rollback() -> None:
    current = task(job_text("1").tasks[0], revision=1)
    after_rollback = record(state="rolled_back", revision=1, previous=2)
    records, answers = rollout.update_records("j-1", [current], {"t-1": []}, {"t-1": after_rollback},
                                              job_text("3"), NOW)
    assert answers[0]["revision"] == 3


def test_an_update_that_adds_or_drops_tasks_is_refused_naming_them() -> None:
    current = task(job_text("1").tasks[0], revision=1)
    with pytest.raises(UpdateRefused, match="adds db; drops web"):
        rollout.update_records("j-1", [current], {}, {}, job_text("2", names=("db",)), NOW)


def test_an_update_scales_up_and_down() -> None:
    current = task(job_text("1").tasks[0], revision=1)
    olds = [inst(i) for i in range(3)]
    more, _ = rollout.update_records("j-1", [current], {"t-1": olds}, {}, job_text("2", replicas=5), NOW)
    added = [r for r in more if isinstance(r, Instance)]
    assert [(i.idx, i.status, i.revision) for i in added] == [(3, "pending", 2), (4, "pending", 2)]
    fewer, _ = rollout.update_records("j-1", [current], {"t-1": olds}, {}, job_text("2", replicas=1), NOW)
    assert [(i.idx, i.status) for i in fewer if isinstance(i, Instance)] == [(1, "cancelled"), (2, "cancelled")]


def test_a_user_rollback_turns_a_completed_update_round() -> None:
    new = spec("2")
    done = record(state="completed", batch=3)
    records = rollout.rollback_records(task(new), done, [inst(i, revision=2) for i in range(3)], NOW, "by a user")
    back = [r for r in records if isinstance(r, Rollout)][0]
    assert (back.state, back.revision, back.previous, back.previous_spec) == ("rolling_back", 1, 2, text(new))
    assert [r for r in records if isinstance(r, Task)][0].spec == text(spec("1"))


def test_a_rollback_brings_failed_instances_back_and_counts_restarts_afresh() -> None:
    new = spec("2")
    instances = [inst(0, revision=2, status="failed"), inst(1, revision=1, restarts=4), inst(2)]
    records = rollout.rollback_records(task(new), record(batch=1), instances, NOW, "update failed")
    changed = {i.idx: i for i in records if isinstance(i, Instance)}
    assert changed[0].status == "pending" and changed[0].restarts == 0
    assert changed[1].restarts == 0 and 2 not in changed
