"""What a slave's containers mean (taskorg/master/reconcile.py), as a pure function of records and a clock."""

from __future__ import annotations

from taskorg.master.reconcile import RUNNING_GRACE, START_GRACE, Listing, reconcile
from taskorg.master.state import HistoryEvent, Instance
from taskorg.protocol import ContainerState
from taskorg.spec import TaskSpec

NOW = 1000.0
SPEC = TaskSpec(name="t", image="busybox")


def inst(status: str = "running", node: str | None = "node1", attempt: int = 1, updated: float = NOW,
         desired: str = "running", restarts: int = 0, container: str | None = "c1") -> Instance:
    return Instance(task_id="t-1", idx=0, status=status, node=node, attempt=attempt, restarts=restarts,
                    container_id=container, updated_at=updated, desired=desired, spec="{}")


def state(status: str = "running", attempt: int = 1, container: str = "c1", **extra: object) -> ContainerState:
    return ContainerState(task_id="t-1", index=0, attempt=attempt, status=status, container_id=container,
                          **extra)  # type: ignore[arg-type]


def run(instances: list[Instance], containers: list[ContainerState], node: str = "node1", complete: bool = True,
        listed: float | None = None, in_flight: set = frozenset(), answers: dict | None = None):  # type: ignore[type-arg]
    return reconcile(Listing(node, containers, complete, listed), {i.key: i for i in instances}, lambda i: SPEC,
                     in_flight, answers or {}, NOW)


def test_a_container_of_an_unknown_or_cancelled_task_is_stopped() -> None:
    assert run([], [state()]).stop == ["c1"]
    assert run([inst(desired="cancelled")], [state()]).stop == ["c1"]


def test_a_duplicate_on_another_node_and_an_older_attempt_are_stopped() -> None:
    assert run([inst(node="node2")], [state()]).stop == ["c1"]
    assert run([inst(attempt=2)], [state(attempt=1)]).stop == ["c1"]


def test_a_started_container_makes_its_instance_running() -> None:
    result = run([inst(status="starting", container=None)], [state()])
    row, event = result.records
    assert isinstance(row, Instance) and (row.status, row.container_id, row.started_at) == ("running", "c1", NOW)
    assert isinstance(event, HistoryEvent) and event.event == "running" and result.stop == []


def test_a_failed_exit_is_restarted_after_a_back_off_and_a_clean_one_succeeds() -> None:
    restarting = run([inst(restarts=1)], [state("exited", exit_code=1)]).records[0]
    assert isinstance(restarting, Instance)
    assert (restarting.status, restarting.node, restarting.restarts) == ("pending", None, 2)
    assert restarting.not_before is not None and restarting.not_before > NOW
    done = run([inst()], [state("exited", exit_code=0, result=[1, 2])]).records[0]
    assert isinstance(done, Instance) and (done.status, done.result) == ("succeeded", "[1, 2]")


def test_a_missing_container_is_lost_only_after_its_grace() -> None:
    assert run([inst(updated=NOW - RUNNING_GRACE / 2)], []).records == []
    lost = run([inst(updated=NOW - RUNNING_GRACE - 1)], []).records
    assert isinstance(lost[0], Instance) and lost[0].status == "pending" and lost[1].event == "lost"  # type: ignore[union-attr]
    assert run([inst("starting", updated=NOW - RUNNING_GRACE - 1)], []).records == []  # START_GRACE for starts
    assert run([inst("starting", updated=NOW - START_GRACE - 1)], []).records != []


def test_a_start_in_flight_or_an_incomplete_listing_loses_nothing() -> None:
    old = inst(updated=NOW - 2 * RUNNING_GRACE)
    assert run([old], [], in_flight={("t-1", 0, 1)}).records == []
    assert run([old], [], complete=False).records == []


def test_a_report_listed_before_the_start_answer_says_nothing_about_it() -> None:
    old = inst(updated=NOW - 2 * RUNNING_GRACE)
    before = run([old], [], listed=99.0, answers={("t-1", 0, 1): 100.0})
    assert before.records == [] and before.settled == []
    after = run([old], [], listed=101.0, answers={("t-1", 0, 1): 100.0})
    assert after.settled == [("t-1", 0, 1)] and after.records[1].event == "lost"  # type: ignore[union-attr]


# ---- health (issue 16) ------------------------------------------------------------------------------
def test_a_health_change_of_a_running_container_is_stored() -> None:
    started = run([inst(status="starting", container=None)], [state(health="starting")]).records[0]
    assert isinstance(started, Instance) and (started.status, started.health) == ("running", "starting")
    healthy = run([inst()], [state(health="healthy")]).records
    assert len(healthy) == 1 and isinstance(healthy[0], Instance) and healthy[0].health == "healthy"
    assert run([inst().but(health="healthy")], [state(health="healthy")]).records == []  # no news, no write


def test_an_unhealthy_container_is_stopped_and_its_instance_restarted_under_its_policy() -> None:
    result = run([inst().but(health="healthy")], [state(health="unhealthy")])
    row, event = result.records
    assert isinstance(row, Instance) and (row.status, row.node, row.restarts, row.health) == (
        "pending", None, 1, "unhealthy")
    assert isinstance(event, HistoryEvent) and event.event == "unhealthy"
    assert event.detail == "its health check failed; restart 1 of 3 (on-failure)"
    assert result.stop == ["c1"]


def test_an_unhealthy_container_of_a_task_that_never_restarts_fails_it() -> None:
    never = TaskSpec.from_dict({"name": "t", "image": "busybox", "restart": {"policy": "never"}})
    result = reconcile(Listing("node1", [state(health="unhealthy")]), {inst().key: inst()}, lambda i: never,
                       (), {}, NOW)
    assert isinstance(result.records[0], Instance) and result.records[0].status == "failed"
    assert result.stop == ["c1"]


def test_the_unhealthy_container_being_replaced_is_stopped_again_if_a_report_still_lists_it() -> None:
    replaced = inst(status="pending", node=None).but(health="unhealthy")
    assert run([replaced], [state(health="unhealthy")]).stop == ["c1"]


def test_the_restart_window_counts_from_when_the_attempt_was_seen_running() -> None:
    windowed = TaskSpec.from_dict({"name": "t", "image": "busybox",
                                   "restart": {"policy": "on-failure", "max_attempts": 2, "window": 60}})
    long_run = inst(restarts=2).but(started_at=NOW - 61)
    result = reconcile(Listing("node1", [state("exited", exit_code=1)]), {long_run.key: long_run},
                       lambda i: windowed, set(), {}, NOW)
    row = result.records[0]
    assert isinstance(row, Instance) and (row.status, row.restarts) == ("pending", 1)  # counted afresh
    short_run = inst(restarts=2).but(started_at=NOW - 5)
    result = reconcile(Listing("node1", [state("exited", exit_code=1)]), {short_run.key: short_run},
                       lambda i: windowed, set(), {}, NOW)
    assert result.records[0].status == "failed"  # type: ignore[union-attr]
    never_seen_running = inst("starting", restarts=2).but(started_at=NOW - 600)  # an earlier attempt's start
    result = reconcile(Listing("node1", [state("exited", exit_code=1)]), {never_seen_running.key: never_seen_running},
                       lambda i: windowed, set(), {}, NOW)
    assert result.records[0].status == "failed"  # type: ignore[union-attr]
