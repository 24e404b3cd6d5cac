"""A rolling update through the real engine and store (fake slaves, fake clock): submitting a running
job's name again updates it batch by batch; a rollback goes back; an engine started afresh on the same
state (as a new master on its replica) carries an update on; the API answers say what happened."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from taskorg.master import state
from taskorg.master.api import create_app
from taskorg.master.engine import Engine
from taskorg.protocol import ContainerState
from taskorg.spec import parse_spec_text
from tickharness import TickHarness

HEADERS = {"Authorization": "Bearer secret"}


def web(version: str, replicas: int = 3, order: str = "stop-first") -> str:
    return (f"job: web\ntasks:\n  - name: web\n    image: busybox\n    replicas: {replicas}\n"
            f"    restart: always\n    env: {{VERSION: '{version}'}}\n"
            f"    update_config: {{parallelism: 1, monitor: 1s, order: {order}}}\n")


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[TickHarness]:
    h = TickHarness(tmp_path, nodes=3)
    yield h
    h.close()


def submit(harness: TickHarness, yaml: str, update_only: bool = False) -> dict:
    return harness.engine.submit(parse_spec_text(yaml, source="web.yaml"), "web.yaml", None, update_only)


def revisions(harness: TickHarness, task_id: str) -> list[tuple[int, str, int | None]]:
    return [(i.idx, i.status, i.revision) for i in harness.instances(task_id)]


def run_until_done(harness: TickHarness, job_id: str, ticks: int = 100) -> list[list[int | None]]:
    """Tick (with the slaves' answers) until the update ends; the revisions seen after each tick."""
    seen = []
    for _ in range(ticks):
        harness.tick(0.5)
        rollouts = state.rollouts_of_job(harness.store, job_id)
        seen.append([i.revision for i in harness.instances(rollouts[0].task_id) if i.status == "running"])
        if all(r.state in ("completed", "rolled_back", "paused") for r in rollouts):
            break
    return seen


def test_submitting_a_running_job_again_rolls_it_to_the_new_spec_one_at_a_time(harness: TickHarness) -> None:
    first = submit(harness, web("1"))
    harness.tick()
    task_id = first["tasks"][0]["id"]
    assert [s for _, s, _ in revisions(harness, task_id)] == ["running"] * 3
    answer = submit(harness, web("2"))
    assert answer["job"] == first["job"] and answer["update"] == "rolling"
    assert answer["tasks"][0]["revision"] == 2
    seen = run_until_done(harness, first["job"])
    assert all(len(running) >= 2 for running in seen)  # stop-first, parallelism 1: never two down at once
    assert revisions(harness, task_id) == [(0, "running", 2), (1, "running", 2), (2, "running", 2)]
    assert len(harness.slaves.stopped_containers) == 3
    orders = [o for _, o in harness.slaves.orders if o.task_id == task_id]
    assert [o.spec.env["VERSION"] for o in orders[-3:]] == ["2", "2", "2"]
    assert "update_completed" in harness.events()
    again = submit(harness, web("2"))
    assert again["update"] == "unchanged"


def test_start_first_runs_the_new_instance_before_the_old_one_goes(harness: TickHarness) -> None:
    first = submit(harness, web("1", order="start-first"))
    harness.tick()
    task_id = first["tasks"][0]["id"]
    submit(harness, web("2", order="start-first"))
    seen = run_until_done(harness, first["job"])
    assert all(len(running) >= 3 for running in seen)
    live = [(s, r) for _, s, r in revisions(harness, task_id)]
    assert live == [("running", 2)] * 3


def test_a_rollback_goes_back_and_a_job_never_updated_has_none(harness: TickHarness) -> None:
    first = submit(harness, web("1"))
    harness.tick()
    app = create_app(harness.engine).test_client()
    refused = app.post(f"/v1/jobs/{first['job']}/rollback", headers=HEADERS)
    assert refused.status_code == 409 and "never updated" in refused.get_json()["error"]
    submit(harness, web("2"))
    run_until_done(harness, first["job"])
    answer = app.post(f"/v1/jobs/{first['job']}/rollback", headers=HEADERS).get_json()
    assert answer["tasks"][0]["from"] == 2 and answer["tasks"][0]["to"] == 1
    run_until_done(harness, first["job"])
    task_id = first["tasks"][0]["id"]
    assert {r for _, _, r in revisions(harness, task_id)} == {1}
    detail = app.get(f"/v1/jobs/{first['job']}", headers=HEADERS).get_json()
    assert detail["update"]["state"] == "rolled_back"
    assert detail["update"]["tasks"][0]["revision"] == 1 and detail["update"]["tasks"][0]["previous"] == 2


def test_update_only_and_refusals_answer_clearly(harness: TickHarness) -> None:
    harness.engine.replicator.wait_for = lambda seq, timeout: True  # type: ignore[method-assign]  # no standbys
    app = create_app(harness.engine).test_client()
    missing = app.post("/v1/jobs?update=1", data=web("1"), headers={**HEADERS, "Content-Type": "application/yaml"})
    assert missing.status_code == 404 and "no job named web runs" in missing.get_json()["error"]
    created = app.post("/v1/jobs", data=web("1"), headers={**HEADERS, "Content-Type": "application/yaml"})
    assert created.status_code == 201
    other = web("2").replace("name: web\n", "name: api\n")
    refused = app.post("/v1/jobs", data=other, headers={**HEADERS, "Content-Type": "application/yaml"})
    assert refused.status_code == 409 and "adds api; drops web" in refused.get_json()["error"]
    updated = app.post("/v1/jobs", data=web("2"), headers={**HEADERS, "Content-Type": "application/yaml"})
    assert updated.status_code == 200 and updated.get_json()["update"] == "rolling"
    progress = app.get(f"/v1/jobs/{created.get_json()['job']}", headers=HEADERS).get_json()["update"]
    assert progress["state"] == "updating" and progress["tasks"][0]["batches"] == 3


def test_a_new_engine_on_the_same_state_carries_the_update_on(harness: TickHarness, tmp_path: Path) -> None:
    first = submit(harness, web("1"))
    harness.tick()
    submit(harness, web("2"))
    for _ in range(3):
        harness.tick(0.5)
    task_id = first["tasks"][0]["id"]
    assert {r for _, _, r in revisions(harness, task_id)} == {1, 2}  # midway
    old = harness.engine
    harness.engine = Engine(old.config, "secret", harness.store, clock=lambda: harness.now, slaves=harness.slaves)
    harness.engine.pool.shutdown(wait=False)
    harness.engine.pool = old.pool
    harness.engine.telemetry_book = old.telemetry_book
    harness.engine.telemetry = old.telemetry
    harness.engine.role, harness.engine.activated_epoch = old.role, 1
    harness.engine.members = old.members
    harness.engine.relister = harness.relists  # type: ignore[assignment]
    old.close()
    run_until_done(harness, first["job"])
    assert revisions(harness, task_id) == [(0, "running", 2), (1, "running", 2), (2, "running", 2)]
    assert state.rollouts_of_job(harness.store, first["job"])[0].state == "completed"


def test_a_new_instance_turning_unhealthy_rolls_the_update_back(harness: TickHarness) -> None:
    first = submit(harness, web("1"))
    harness.tick()
    task_id = first["tasks"][0]["id"]
    submit(harness, web("2").replace("order: stop-first", "order: stop-first, failure_action: rollback"))
    for _ in range(3):
        harness.tick(0.5)
    (new,) = [i for i in harness.instances(task_id) if i.revision == 2 and i.status == "running"]
    harness.report(new.node, [ContainerState(task_id=task_id, index=new.idx, attempt=new.attempt, status="running",
                                             container_id=new.container_id, health="unhealthy")], listed=None)
    run_until_done(harness, first["job"])
    (found,) = state.rollouts_of_job(harness.store, first["job"])
    assert (found.state, found.revision, found.previous) == ("rolled_back", 1, 2)
    assert {r for _, s, r in revisions(harness, task_id) if s == "running"} == {1}
    assert "update_failed" in harness.events() and "rollback_completed" in harness.events()
