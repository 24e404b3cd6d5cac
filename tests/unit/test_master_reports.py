"""What the master makes of what its slaves tell it (real SQLite store and engine; no services).

A slave's report listed before a start finished must not make the master
call that start "lost": under load, a full report can reach the master
seconds after it was listed, later than the start answer it predates and
past the running grace. Both carry the slave's own clock (`listed`,
`answered`), so the master can tell the report says nothing about that
container. And a placeable node whose telemetry the master lacks is asked
for it, rather than left out of placement until its next report.
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
from taskorg.protocol import Telemetry

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


def test_a_placeable_node_without_telemetry_is_asked_for_it_once_a_second(engine: Engine) -> None:
    """A new master that missed a node's telemetry at activation asks that node when it places,
    instead of leaving it out until its next report."""
    import threading

    asked: list[tuple[str, str]] = []
    answered = threading.Event()

    def telemetry(node: str) -> Telemetry:
        asked.append((node, "/v1/telemetry"))
        answered.set()
        return Telemetry(cpu_count=2, memory_total=1 << 30, speed=1.0, cpu_percent=0.0)

    engine.slaves.telemetry = telemetry  # type: ignore[method-assign]
    engine.members.view = {"members": [{"node": "node2", "address": "127.0.0.2", "alive": True, "state": "active",
                                        "labels": {}, "last_seen_ago": 0.1}], "master": "node1", "epoch": 1}
    assert engine.node_views() == []  # nothing known yet: not placeable this tick
    assert answered.wait(5)
    engine.pool.shutdown(wait=True)
    assert asked == [("node2", "/v1/telemetry")]
    assert [v.name for v in engine.node_views()] == ["node2"]
    assert engine.kick.is_set()
