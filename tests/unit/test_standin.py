"""The stand-in runner (taskorg/slave/standin.py): a runner that starts no container.

Proves: a start is answered `running` at once with the Docker runner's
fields, and the same attempt twice is the same instance; it refuses the
orders the Docker runner refuses (bad fields, a spec docker could not take);
it lists, stops (by id and by task) and answers logs like the Docker runner;
an instance told to finish is reported exited with its exit code and result,
and its death is fed to the reporter; a new attempt drops finished earlier
ones; closing the runner ends its death feeds; the slave's runner factory
builds it without touching docker.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from taskorg.config import load_config
from taskorg.slave.runner import OrderError
from taskorg.slave.service import open_runner
from taskorg.slave.standin import StandInRunner

STATE_FIELDS = {"task_id", "index", "attempt", "epoch", "job", "container_id", "name", "status", "exit_code",
                "started_at", "finished_at", "image", "error"}


def order(task_id: str = "t-0000aaaa", index: int = 0, attempt: int = 1, **spec: Any) -> dict[str, Any]:
    return {"epoch": 3, "task_id": task_id, "index": index, "attempt": attempt, "job": "j-1",
            "spec": {"image": "taskorg/busybox:latest", "command": ["sleep", "300"], **spec}}


@pytest.fixture
def runner() -> StandInRunner:
    return StandInRunner("unit", "node4", address="127.0.9.4")


def test_a_start_is_running_at_once_with_the_docker_runners_fields(runner: StandInRunner) -> None:
    state = runner.start(order())
    assert set(state) == STATE_FIELDS
    assert state["status"] == "running"
    assert (state["task_id"], state["index"], state["attempt"], state["epoch"], state["job"]) == \
        ("t-0000aaaa", 0, 1, 3, "j-1")
    assert state["name"] == "tk-unit-node4-t-0000aaaa-0-a1"
    assert state["started_at"].endswith("Z") and state["finished_at"] is None
    assert state["image"] == "taskorg/busybox:latest" and state["error"] is None
    assert len(state["container_id"]) == 64
    assert runner.list() == [state]


def test_the_same_attempt_twice_is_the_same_instance(runner: StandInRunner) -> None:
    first = runner.start(order())
    assert runner.start(order()) == first
    second_attempt = runner.start(order(attempt=2))
    assert second_attempt["container_id"] != first["container_id"]
    assert len(runner.list()) == 2  # a running earlier attempt stays until the master stops it


@pytest.mark.parametrize("bad, message", [
    ({"index": "zero"}, "order field 'index'"),
    ({"epoch": -1}, "order field 'epoch'"),
    ({"task_id": "t 1"}, "order field 'task_id'"),
    ({"spec": {"command": ["true"]}}, "order field 'spec': expected a task spec with an 'image'"),
    ({"env": ["A=1"]}, "order field 'env': expected a mapping"),
])
def test_malformed_orders_are_refused_naming_the_field(runner: StandInRunner, bad: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(OrderError, match=message):
        runner.start({**order(), **bad})
    assert runner.list() == []


def test_a_spec_docker_could_not_take_is_refused_as_the_docker_runner_refuses_it(runner: StandInRunner) -> None:
    with pytest.raises(OrderError, match="order field 'spec': cannot use it: KeyError"):
        runner.start(order(ports=[{"host": 1}]))  # no container port


def test_stop_by_id_and_by_task(runner: StandInRunner) -> None:
    a0 = runner.start(order(index=0))
    a1 = runner.start(order(index=1))
    keep = runner.start(order(task_id="t-0000cccc"))
    assert runner.stop([a0["container_id"], "not-there"]) == [a0["container_id"], "not-there"]
    assert runner.stop_task("t-0000aaaa") == [a1["container_id"]]
    assert [s["container_id"] for s in runner.list()] == [keep["container_id"]]


def test_logs_of_a_known_instance_and_lookup_error_for_an_unknown_one(runner: StandInRunner) -> None:
    runner.start(order())
    assert "stand-in" in runner.logs("t-0000aaaa", 0, 10)
    with pytest.raises(LookupError, match="no container for t-0000aaaa/9 on node4"):
        runner.logs("t-0000aaaa", 9)


def test_a_finished_instance_is_reported_exited_and_its_death_is_fed(runner: StandInRunner) -> None:
    state = runner.start(order())
    feed = runner.deaths()
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(feed))
    reader.start()
    finished = runner.finish(state["container_id"], exit_code=3, result={"rows": 7})
    assert finished["status"] == "exited" and finished["exit_code"] == 3
    assert finished["result"] == {"rows": 7} and finished["result_error"] is None
    assert finished["finished_at"] >= finished["started_at"]
    assert runner.list() == [finished]
    runner.close()  # ends every feed
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert seen == [state["container_id"]]


def test_finishing_an_unknown_instance_is_an_error(runner: StandInRunner) -> None:
    with pytest.raises(KeyError):
        runner.finish("nope")


def test_a_new_attempt_drops_finished_earlier_attempts(runner: StandInRunner) -> None:
    failed = runner.start(order(attempt=1))
    runner.finish(failed["container_id"], exit_code=1)
    other = runner.start(order(index=1, attempt=1))
    runner.finish(other["container_id"], exit_code=1)
    second = runner.start(order(attempt=2))
    ids = {s["container_id"] for s in runner.list()}
    assert ids == {other["container_id"], second["container_id"]}


def test_the_slave_builds_a_stand_in_without_touching_docker(tmp_path: Any) -> None:
    # A docker socket the Docker runner would refuse: the stand-in never looks at it.
    config = load_config(overrides={"runner": "standin", "docker_socket": "tcp://127.0.0.1:2375",
                                    "address": "127.0.9.4", "cluster": "unit"}, environ={})
    runner = open_runner(config, "node4")
    assert isinstance(runner, StandInRunner)
    assert (runner.cluster, runner.node) == ("unit", "node4")
    runner.close()
