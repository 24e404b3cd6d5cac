"""`POST /v1/replica/apply` cannot corrupt the state (issue 15): refused before any side effect.

Driven through the master's real Flask app on a real store (the tick harness's engine, active at
epoch 1): an epoch far past anything granted neither demotes the master nor raises its fence; a row
with a string where a number belongs, an unknown column or table, an empty or older snapshot are
refused with a message naming what is wrong, and the state, its position and `/v1/status` stay as
they were. The arbiter check itself is pure (`admit_epoch`) and is tested with the arbiter's answer.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from taskorg.master.api import create_app
from taskorg.master.replication import Refused, admit_epoch
from taskorg.master.role import Role
from taskorg.net.client import ServiceClient
from tickharness import TickHarness

HEADERS = {"Authorization": "Bearer secret"}
JOB = "job: demo\ntasks:\n  - name: a\n    image: busybox\n    replicas: 2\n"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[TickHarness]:
    h = TickHarness(tmp_path)
    # The DNS service is not running: the arbiter cannot be asked (a real refused connection).
    h.engine.members.client = ServiceClient(f"http://127.0.0.1:{closed_port()}", "secret", timeout=0.3)
    h.submit(JOB)
    yield h
    h.close()


def apply(harness: TickHarness, batch: dict[str, Any]) -> Any:
    client = create_app(harness.engine).test_client()
    return client.post("/v1/replica/apply", data=json.dumps(batch), headers=HEADERS,
                       content_type="application/json")


def unchanged(harness: TickHarness, before: dict[str, Any]) -> None:
    assert harness.store.snapshot() == before
    assert harness.engine.role.valid() and harness.engine.role.epoch == 1
    assert harness.store.fence_epoch() == 1
    status = create_app(harness.engine).test_client().get("/v1/status", headers=HEADERS)
    assert status.status_code == 200 and status.get_json()["active"] is True


def test_an_epoch_never_granted_neither_demotes_nor_fences(harness: TickHarness) -> None:
    before = harness.store.snapshot()
    answer = apply(harness, {"epoch": 10 ** 18, "entries": []})
    assert answer.status_code == 503
    assert "cannot be asked whether it was granted" in answer.get_json()["error"]
    unchanged(harness, before)


def test_an_epoch_past_what_the_store_holds_is_refused_at_the_door(harness: TickHarness) -> None:
    before = harness.store.snapshot()
    answer = apply(harness, {"epoch": 2 ** 64, "entries": []})
    assert answer.status_code == 400 and "'epoch'" in answer.get_json()["error"]
    unchanged(harness, before)


def test_a_string_seq_is_refused_and_status_still_answers(harness: TickHarness) -> None:
    before = harness.store.snapshot()
    entry = {"seq": "7", "epoch": 1, "table": "jobs", "row": {"id": "j-x"}}
    answer = apply(harness, {"epoch": 1, "entries": [entry]})
    assert answer.status_code == 400 and "'entries'" in answer.get_json()["error"]
    unchanged(harness, before)


@pytest.mark.parametrize("row, table, complaint", [
    ({"id": "j-x", "name": "x", "seed": "many"}, "jobs", "column 'seed' must be a whole number"),
    ({"id": "j-x", "colour": "red"}, "jobs", "unknown column 'colour'"),
    ({"name": "x"}, "jobs", "key column 'id' is missing"),
    ({"id": 1}, "sqlite_master", "unknown table 'sqlite_master'"),
    ({"task_id": "t", "idx": 0, "status": "running", "updated_at": "soon"}, "instances",
     "column 'updated_at' must be a number"),
])
def test_rows_are_checked_against_their_table_before_anything_is_written(
        harness: TickHarness, row: dict[str, Any], table: str, complaint: str) -> None:
    harness.engine.role = Role(active=False, epoch=1)  # a standby of epoch 1: the batch's epoch is admitted
    before = harness.store.snapshot()
    seq = harness.store.position()[1]
    good = {"seq": seq + 1, "epoch": 1, "table": "jobs", "row": {"id": "j-ok", "name": "ok"}}
    bad = {"seq": seq + 2, "epoch": 1, "table": table, "row": row}
    answer = apply(harness, {"epoch": 1, "entries": [good, bad]})
    assert answer.status_code == 400
    assert complaint in answer.get_json()["error"]
    assert harness.store.snapshot() == before  # not even the good entry before it


def test_an_empty_snapshot_does_not_wipe_the_state(harness: TickHarness) -> None:
    harness.engine.role = Role(active=False, epoch=1)
    before = harness.store.snapshot()
    epoch, seq = harness.store.position()
    for position in ((0, 0), (epoch, seq + 5)):
        answer = apply(harness, {"epoch": 1, "snapshot": {"epoch": position[0], "seq": position[1], "tables": {}}})
        assert answer.status_code == 400, answer.get_json()
        assert harness.store.snapshot() == before
    assert "older than this replica" in apply(harness, {"epoch": 1, "snapshot": {
        "epoch": 0, "seq": 0, "tables": {}}}).get_json()["error"]
    assert "an empty snapshot" in apply(harness, {"epoch": 1, "snapshot": {
        "epoch": epoch, "seq": seq + 5, "tables": {}}}).get_json()["error"]


def test_an_older_snapshot_never_replaces_a_newer_state(harness: TickHarness) -> None:
    old = harness.store.snapshot()
    harness.submit(JOB.replace("job: demo", "job: demo-2"))  # a new job (the same name would be an update)
    harness.engine.role = Role(active=False, epoch=1)
    before = harness.store.snapshot()
    answer = apply(harness, {"epoch": 1, "snapshot": old})
    assert answer.status_code == 400 and "older than this replica" in answer.get_json()["error"]
    assert harness.store.snapshot() == before


def test_a_fenced_epoch_is_refused(harness: TickHarness) -> None:
    before = harness.store.snapshot()
    answer = apply(harness, {"epoch": 0, "entries": []})
    assert answer.status_code == 409 and "fenced" in answer.get_json()["error"]
    unchanged(harness, before)


# ---- the arbiter's word (pure) -----------------------------------------------------------------
def active(epoch: int) -> Role:
    return Role(active=True, epoch=epoch, lease_until=time.monotonic() + 60)


def test_admit_epoch_asks_the_arbiter_only_for_a_new_epoch() -> None:
    asked: list[int] = []

    def granted() -> int:
        asked.append(1)
        return 5

    admit_epoch(3, fence=3, role=Role(epoch=3), granted=granted)
    assert asked == []  # an epoch this replica has seen: no question
    admit_epoch(5, fence=3, role=active(3), granted=granted)
    assert asked == [1]  # a newer master was granted epoch 5: admitted (the caller demotes)


def test_admit_epoch_refuses_what_was_never_granted() -> None:
    with pytest.raises(Refused, match="epoch 1000000000000000000 was never granted: the DNS service's epoch is 5"):
        admit_epoch(10 ** 18, fence=3, role=active(3), granted=lambda: 5)
    with pytest.raises(Refused, match="fenced"):
        admit_epoch(3, fence=3, role=active(3), granted=lambda: 5)
    with pytest.raises(Refused) as caught:
        admit_epoch(4, fence=3, role=Role(epoch=3), granted=lambda: None)
    assert caught.value.status == 503


def test_a_report_with_nonsense_telemetry_is_refused_and_scheduling_goes_on(harness: TickHarness) -> None:
    client = create_app(harness.engine).test_client()
    answer = client.post("/v1/reports", headers=HEADERS, json={"node": "node1", "containers": [],
                                                               "telemetry": {"cpu_count": "x"}})
    assert answer.status_code == 400 and "'telemetry' (at telemetry.cpu_count)" in answer.get_json()["error"]
    harness.tick()
    assert {i.status for i in harness.instances(harness.store.rows("SELECT id FROM tasks")[0]["id"])} == {"running"}
