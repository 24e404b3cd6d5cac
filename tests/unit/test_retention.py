"""Finished jobs are kept by age and by count, then removed with everything under them (issue 14).

The decision is pure (`retention`); the removal runs through the real engine and store (the tick
harness) and replicates as delete changes: a replica that applies the log ends identical.
"""

from __future__ import annotations

from pathlib import Path

from taskorg.master import state
from taskorg.master.retention import KEEP_CLUSTER_EVENTS, cluster_events_to_remove, jobs_to_remove
from taskorg.master.store import Store
from taskorg.protocol import ContainerState
from tickharness import TickHarness

DAY = 24 * 3600.0


def test_a_finished_job_is_kept_for_its_retention_then_removed() -> None:
    finished = [("j-old", 1000.0), ("j-new", 1000.0 + DAY)]
    assert jobs_to_remove(finished, now=1000.0 + DAY, retain_for=DAY, keep=1000) == []
    assert jobs_to_remove(finished, now=1001.0 + DAY, retain_for=DAY, keep=1000) == ["j-old"]


def test_only_the_newest_finished_jobs_are_kept_whatever_their_age() -> None:
    finished = [(f"j-{n}", float(n)) for n in range(10)]
    assert jobs_to_remove(finished, now=10.0, retain_for=DAY, keep=3) == [f"j-{n}" for n in range(7)]
    assert jobs_to_remove(finished, now=10.0, retain_for=DAY, keep=0) == [f"j-{n}" for n in range(10)]


def test_the_newest_cluster_events_stay_whatever_their_age() -> None:
    events = [(n, 0.0) for n in range(1, KEEP_CLUSTER_EVENTS + 11)]
    assert cluster_events_to_remove(events, now=2 * DAY, retain_for=DAY) == list(range(1, 11))
    assert cluster_events_to_remove(events, now=DAY / 2, retain_for=DAY) == []


def replicate_all(source: Store, target: Store) -> None:
    while entries := source.changes_since(target.position()[1]):
        target.apply_replicated(entries)


def test_prune_removes_a_finished_job_with_its_tasks_instances_and_history(tmp_path: Path) -> None:
    harness = TickHarness(tmp_path)
    replica = Store(tmp_path / "replica.db")
    try:
        done = harness.submit("job: done\ntasks:\n  - name: a\n    image: busybox\n")
        alive = harness.submit("job: alive\ntasks:\n  - name: b\n    image: busybox\n    restart: always\n")
        harness.tick()
        task_id = done["tasks"][0]["id"]
        inst = harness.instances(task_id)[0]
        harness.report(str(inst.node), [ContainerState(task_id=task_id, index=0, attempt=inst.attempt,
                                                       status="exited", exit_code=0, container_id="c1")],
                       listed=None)
        assert harness.task(task_id).status == "succeeded"
        replicate_all(harness.store, replica)

        assert harness.engine.prune() == {"jobs": 0, "events": 0}  # within its 24 h
        harness.now += DAY + 1
        assert harness.engine.prune()["jobs"] == 1
        for table, column in (("jobs", "id"), ("tasks", "job")):
            assert harness.store.rows(f"SELECT * FROM {table} WHERE {column} = ?", (done["job"],)) == []
        for table in ("instances", "history"):
            assert harness.store.rows(f"SELECT * FROM {table} WHERE task_id = ?", (task_id,)) == []
        assert state.task(harness.store, alive["tasks"][0]["id"]).status == "running"  # untouched

        replicate_all(harness.store, replica)
        assert replica.snapshot()["tables"] == harness.store.snapshot()["tables"]
    finally:
        replica.close()
        harness.close()
