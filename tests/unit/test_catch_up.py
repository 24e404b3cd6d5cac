"""A standby catches up from empty at 100,000 finished tasks (issue 14): in size-bounded parts.

How long it takes is a figure for bench/, not a limit here (a slow machine must not fail it).

Real SQLite on both ends and the standby's real `POST /v1/replica/apply` (its Flask app): the master's
state is sent as snapshot parts of about a MiB, each request far under the 16 MiB body cap that made
catching up impossible past ~8,000 tasks; then the live log streams on, in size-bounded batches too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from taskorg.master import store as store_module
from taskorg.master.api import create_app
from taskorg.master.role import Role
from taskorg.master.store import Store
from taskorg.protocol import ChangeEntry, ReplicationBatch, Snapshot, encode
from tickharness import TickHarness

TASKS = 100_000
PER_JOB = 100
SPEC = json.dumps({"name": "t", "image": "busybox", "command": ["sh", "-c", "echo " + "x" * 300]})
BODY_CAP = 16 * 1024 * 1024


def fill(store: Store) -> None:
    """100,000 finished tasks: 1,000 jobs, each task with an instance and two history rows."""
    store.db.execute("PRAGMA synchronous=OFF")  # speed only
    changes: list[store_module.Change] = []
    history = 0
    for j in range(TASKS // PER_JOB):
        changes.append(("jobs", {"id": f"j-{j}", "name": f"job{j}", "seed": j, "source": "x.yaml",
                                 "submitted_at": 1.0, "request_id": None}))
        for t in range(PER_JOB):
            task_id = f"t-{j}-{t}"
            changes.append(("tasks", {"id": task_id, "job": f"j-{j}", "name": f"t{t}", "spec": SPEC,
                                      "desired": "running", "status": "succeeded", "reason": None,
                                      "result": "0", "created_at": 1.0, "updated_at": 2.0}))
            changes.append(("instances", {"task_id": task_id, "idx": 0, "node": "node1", "status": "succeeded",
                                          "attempt": 1, "restarts": 0, "exit_code": 0, "container_id": "c",
                                          "error": None, "started_at": 1.0, "finished_at": 2.0,
                                          "not_before": None, "updated_at": 2.0, "result": "0"}))
            for event in ("placed", "succeeded"):
                history += 1
                changes.append(("history", {"id": history, "task_id": task_id, "idx": 0, "time": 2.0,
                                            "event": event, "node": "node1", "detail": "x"}))
    store.commit(changes, epoch=1)


def test_a_standby_catches_up_from_empty_at_100000_finished_tasks(tmp_path: Path) -> None:
    master = Store(tmp_path / "master.db")
    fill(master)
    standby = TickHarness(tmp_path / "standby")
    standby.engine.role = Role(active=False, epoch=1)
    standby.store.raise_fence(1)  # it has seen epoch 1 (a heartbeat told it); no arbiter needed
    client = create_app(standby.engine).test_client()
    headers = {"Authorization": "Bearer secret", "Content-Type": "application/json"}

    started = time.monotonic()
    parts, largest = 0, 0
    for part in master.snapshot_parts():
        body = encode(ReplicationBatch(epoch=1, snapshot=Snapshot(**part)))
        largest = max(largest, len(body))
        answer = client.post("/v1/replica/apply", data=body, headers=headers)
        assert answer.status_code == 200, answer.get_json()
        parts += 1
    caught_up_in = time.monotonic() - started
    assert standby.store.position() == master.position()
    assert standby.store.row("SELECT COUNT(*) AS n FROM tasks")["n"] == TASKS
    assert parts > 20 and largest < BODY_CAP / 4
    print(f"caught up from empty at {TASKS} finished tasks in {caught_up_in:.1f} s ({parts} parts)")  # a figure, not a limit

    # Then it follows the live stream: a prune of everything, as batches of bounded size.
    master.commit([store_module.Delete("jobs", {"id": f"j-{j}"}) for j in range(TASKS // PER_JOB)], epoch=1)
    while entries := master.changes_since(standby.store.position()[1], limit=100_000):
        body = encode(ReplicationBatch(epoch=1, entries=[ChangeEntry(**e) for e in entries]))
        assert len(body) < BODY_CAP
        assert client.post("/v1/replica/apply", data=body, headers=headers).status_code == 200
    assert standby.store.position() == master.position()
    assert standby.store.row("SELECT COUNT(*) AS n FROM history")["n"] == 0
    print(f"catch-up of {TASKS} finished tasks: {parts} parts, largest {largest // 1024} KiB, "
          f"{caught_up_in:.1f} s")
    master.close()
    standby.close()
