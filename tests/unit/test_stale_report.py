"""A slave's report listed before a start finished must not make the master call that start "lost".

Under load, a full report can reach the master seconds after it was listed,
later than the start answer it predates and past the running grace. Both carry
the slave's own clock (`listed`, `answered`), so the master can tell the report
says nothing about that container. Real SQLite store and engine; no services.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest

from taskorg.config import load_config
from taskorg.master.engine import RUNNING_GRACE, Engine, Role
from taskorg.master.store import Store

KEY = ("t-1", 0, 1)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    config = load_config(overrides={"state_dir": str(tmp_path), "cluster": "unit"}, environ={})
    store = Store(tmp_path / "master.db")
    engine = Engine(config, "secret", store)
    engine.role = Role(active=True, epoch=1, lease_until=time.monotonic() + 600, node="node1")
    engine.activated_epoch = 1
    old = time.time() - 2 * RUNNING_GRACE  # past the grace: only the clocks can save it
    engine.commit([
        ("jobs", {"id": "j-1", "name": "demo", "seed": 1, "source": "demo.yaml", "submitted_at": old,
                  "request_id": None}),
        ("tasks", {"id": "t-1", "job": "j-1", "name": "demo", "spec": json.dumps({"image": "busybox"}),
                   "desired": "running", "status": "running", "reason": None, "result": None,
                   "created_at": old, "updated_at": old}),
        ("instances", {"task_id": "t-1", "idx": 0, "node": "node1", "status": "running", "attempt": 1,
                       "restarts": 0, "exit_code": None, "container_id": "c1", "error": None,
                       "started_at": old, "finished_at": None, "not_before": None, "updated_at": old}),
    ])
    yield engine
    engine.pool.shutdown(wait=False)
    store.close()


def status(engine: Engine) -> str:
    return engine.store.row("SELECT status FROM instances WHERE task_id = 't-1' AND idx = 0")["status"]


def test_report_listed_before_the_start_answer_is_ignored_for_it(engine: Engine) -> None:
    engine.start_answers[KEY] = 100.0
    engine.on_report("node1", [], None, listed=99.5)
    assert status(engine) == "running"
    assert KEY in engine.start_answers  # still guarding until a report listed after the start


def test_report_listed_after_the_start_answer_finds_it_lost(engine: Engine) -> None:
    engine.start_answers[KEY] = 100.0
    engine.on_report("node1", [], None, listed=100.5)
    assert status(engine) == "pending"
    assert KEY not in engine.start_answers


def test_report_without_clock_falls_back_to_the_grace(engine: Engine) -> None:
    engine.start_answers[KEY] = 100.0  # an older slave sends no `listed`
    engine.on_report("node1", [], None)
    assert status(engine) == "pending"
