"""The master's records and change builders (taskorg/master/state.py) on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from taskorg.master import state
from taskorg.master.state import HistoryEvent, Instance, NoSuchTask
from taskorg.master.store import Store
from taskorg.spec import parse_spec_text

NOW = 1000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "state.db")
    yield store
    store.close()


def commit(store: Store, records: list[state.Record]) -> None:
    store.commit(state.records_to_changes(store, records), epoch=1)


def submitted(store: Store, yaml: str = "name: web\nimage: busybox\nreplicas: 2\n") -> str:
    records, answer = state.job_records(parse_spec_text(yaml, source="t.yaml"), "t.yaml", "key-1", NOW)
    commit(store, records)
    return answer["tasks"][0]["id"]


def test_a_job_becomes_a_job_its_tasks_their_instances_and_a_history_row(store: Store) -> None:
    task_id = submitted(store)
    assert [(i.idx, i.status, i.attempt) for i in state.instances(store, task_id)] == [(0, "pending", 0),
                                                                                         (1, "pending", 0)]
    task = state.task(store, task_id)
    assert (task.name, task.status, json.loads(task.spec)["image"]) == ("web", "pending", "busybox")
    assert state.job_by_request(store, "key-1")["name"] == "web"  # type: ignore[index]
    assert [r["event"] for r in state.history_after(store, 0, 10)] == ["submitted"]


def test_history_rows_get_their_ids_in_commit_order(store: Store) -> None:
    events = [HistoryEvent(None, None, f"e{n}", None, "", NOW) for n in range(3)]
    changes = state.records_to_changes(store, events)
    assert [row["id"] for _, row in changes] == [1, 2, 3]


def test_an_unknown_task_is_no_such_task(store: Store) -> None:
    with pytest.raises(NoSuchTask) as raised:
        state.task(store, "t-nope")
    assert raised.value.task_id == "t-nope"


def test_task_status_rolls_up_from_changed_instances(store: Store) -> None:
    task_id = submitted(store)
    running = [i.but(status="running", attempt=1) for i in state.instances(store, task_id)]
    records = state.with_task_status(store, list(running), NOW)
    assert [r.status for r in records if isinstance(r, state.Task)] == ["running"]
    done = [i.but(status="succeeded", attempt=1, result=json.dumps(n)) for n, i in enumerate(running)]
    rolled = state.roll_up(state.task(store, task_id), done, NOW)
    assert rolled[0].result == "[0, 1]"  # type: ignore[union-attr]
    assert [r.event for r in rolled if isinstance(r, HistoryEvent)] == ["task_running", "task_succeeded"]


def test_cancel_and_restart_records(store: Store) -> None:
    task_id = submitted(store)
    task, instances = state.task(store, task_id), state.instances(store, task_id)
    records, status = state.cancel_records(task, instances, NOW)
    assert status == "cancelled" and [r.status for r in records if isinstance(r, Instance)] == ["cancelled"] * 2
    commit(store, records)
    spec = parse_spec_text("name: web\nimage: busybox\n", source="t.yaml").tasks[0]
    tried = [i.but(attempt=3) for i in state.instances(store, task_id)]
    records, status = state.restart_records(state.task(store, task_id), spec, tried, NOW)
    assert status == "pending"
    assert [(r.status, r.attempt) for r in records if isinstance(r, Instance)] == [("pending", 3)] * 2


def test_a_start_order_carries_the_spec_and_the_task_environment(store: Store) -> None:
    task_id = submitted(store)
    inst = state.instances_to_plan(store, [])[0].but(attempt=1, node="node1")
    spec = parse_spec_text("name: web\nimage: busybox\nreplicas: 2\n", source="t.yaml").tasks[0]
    order = state.start_order(store, inst, spec, epoch=4)
    assert (order.task_id, order.index, order.attempt, order.epoch) == (task_id, 0, 1, 4)
    assert order.spec == spec and order.env["TASKORG_COUNT"] == "2" and order.env["TASKORG_JOB_ID"] == inst.job
