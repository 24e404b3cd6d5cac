"""Group commit (issue 14): submissions waiting at the same moment share one transaction, so one fsync
and one replication round, on the real engine and store. Each still gets its own job and answer; the
same request sent twice in one group makes one job; a refused group answers every submitter."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


from taskorg.master.engine import NotMaster
from taskorg.master.role import Role
from taskorg.spec import parse_spec_text
from tickharness import TickHarness

JOB = parse_spec_text("job: one\ntasks:\n  - name: x\n    image: busybox\n", source="t.yaml")


def submit_together(harness: TickHarness, request_ids: list[str | None]) -> list[Any]:
    """Submit from one thread each while the engine lock is held, release it once all are queued."""
    engine = harness.engine
    with ThreadPoolExecutor(len(request_ids)) as pool:
        with engine.lock:
            futures = [pool.submit(engine.submit, JOB, "t.yaml", rid) for rid in request_ids]
            deadline = time.monotonic() + 10
            while len(engine.submissions) < len(request_ids):
                assert time.monotonic() < deadline, "submissions never queued"
                time.sleep(0.005)
        return [f.exception() or f.result() for f in futures]


def test_submissions_waiting_together_share_one_commit(harness: TickHarness) -> None:
    before = harness.store.position()[1]
    commits: list[int] = []
    real_commit = harness.store.commit
    harness.store.commit = lambda changes, epoch: commits.append(1) or real_commit(changes, epoch)  # type: ignore
    answers = submit_together(harness, [f"r-{n}" for n in range(8)])
    assert len(commits) == 1
    assert len({a["job"] for a in answers}) == 8
    assert {a["seq"] for a in answers} == {harness.store.position()[1]} and harness.store.position()[1] > before
    assert len(harness.store.rows("SELECT id FROM jobs")) == 8


def test_the_same_request_twice_in_one_group_is_one_job(harness: TickHarness) -> None:
    answers = submit_together(harness, ["same", "same", None])
    assert answers[0]["job"] == answers[1]["job"] and answers[1]["repeated"] is True
    assert len(harness.store.rows("SELECT id FROM jobs")) == 2
    again = harness.engine.submit(JOB, "t.yaml", "same")  # and later, as before
    assert again["job"] == answers[0]["job"] and again["repeated"] is True


def test_a_group_refused_answers_every_submitter(harness: TickHarness) -> None:
    harness.engine.role = Role(active=False, epoch=1)
    answers = submit_together(harness, [None, None, None])
    assert all(isinstance(a, NotMaster) for a in answers)
    assert harness.store.rows("SELECT id FROM jobs") == []
    assert harness.engine.submissions == []


def test_a_lone_submission_is_not_held_back(harness: TickHarness) -> None:
    started = time.monotonic()
    for _ in range(20):
        harness.engine.submit(JOB, "t.yaml")
    assert time.monotonic() - started < 5  # no beat to gather a group: each commits at once
    assert threading.active_count() < 50
