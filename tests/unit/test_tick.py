"""Whole master ticks with no network (tests/unit/tickharness.py): submission to running, a dead
node's instances placed again, a dependency released with its results, a task that fits nowhere."""

from __future__ import annotations

import json

from tickharness import TickHarness

from taskorg.master.engine import UNREACHABLE_REST
from taskorg.master.reasons import PendingReasons
from taskorg.net.client import ServiceUnavailable
from taskorg.protocol import ContainerState, StartOrder


def test_a_submission_is_placed_spread_started_and_running_after_one_tick(harness: TickHarness) -> None:
    task_id = harness.submit("name: web\nimage: busybox\nreplicas: 2\n")["tasks"][0]["id"]
    harness.tick()
    instances = harness.instances(task_id)
    assert [i.status for i in instances] == ["running", "running"]
    assert sorted(i.node for i in instances) == ["node1", "node2"]  # replicas spread
    orders = [order for _, order in harness.slaves.orders]
    assert [(o.task_id, o.index, o.attempt, o.epoch) for o in orders] == [(task_id, 0, 1, 1), (task_id, 1, 1, 1)]
    assert orders[0].spec.image == "busybox" and orders[0].env["TASKORG_COUNT"] == "2"
    assert harness.task(task_id).status == "running"
    assert harness.events().count("placed") == 2 and "task_running" in harness.events()
    assert harness.engine.starts_in_flight == set()


def test_instances_of_a_dead_node_are_placed_again_on_a_living_one(harness: TickHarness) -> None:
    task_id = harness.submit("name: solo\nimage: busybox\nconstraints: {nodes: [node1, node2]}\n")["tasks"][0]["id"]
    harness.tick()  # the first tick remembers the membership
    first = harness.instances(task_id)[0]
    harness.set_members({"node1": "active", "node2": "active"}, dead=(first.node,))
    harness.tick()
    again = harness.instances(task_id)[0]
    assert again.status == "running" and again.node != first.node and again.attempt == 2
    assert "node_dead" in harness.events() and "rescheduled" in harness.events()


def test_a_dependant_waits_then_runs_with_the_results_of_what_it_ran_after(harness: TickHarness) -> None:
    answer = harness.submit("job: chain\ntasks:\n  - name: a\n    image: busybox\n"
                            "  - name: b\n    image: busybox\n    after: [a]\n")
    ids = {t["name"]: t["id"] for t in answer["tasks"]}
    harness.tick()
    assert harness.task(ids["b"]).status == "waiting" and len(harness.slaves.orders) == 1
    a = harness.instances(ids["a"])[0]
    harness.report(str(a.node), [ContainerState(task_id=ids["a"], index=0, attempt=1, status="exited", exit_code=0,
                                                container_id=a.container_id, result={"answer": 42})])
    assert harness.task(ids["a"]).status == "succeeded"
    harness.tick()  # released: pending
    harness.tick()  # placed
    order = harness.slaves.orders[-1][1]
    assert order.task_id == ids["b"] and json.loads(order.env["TASKORG_RESULTS"]) == {"a": {"answer": 42}}


def test_a_task_that_fits_nowhere_says_why(harness: TickHarness) -> None:
    task_id = harness.submit("name: big\nimage: busybox\nresources: {cpus: 64}\n")["tasks"][0]["id"]
    position_after_submit = harness.engine.store.position()[1]
    harness.tick()
    task = harness.task(task_id)
    reason = harness.engine.reasons.get(task_id)
    assert task.status == "pending" and reason is not None and reason.startswith("no node fits")
    assert harness.slaves.orders == []
    # Said by the plan, not committed: a reason is derived and moves with the nodes' free room.
    assert task.reason is None and harness.engine.store.position()[1] == position_after_submit


def test_a_pending_task_s_reason_goes_once_it_is_placed_and_a_backed_off_one_keeps_its_own() -> None:
    reasons = PendingReasons()
    reasons.planned({"a", "b"}, set(), {"a": "no node fits: x", "b": "no node fits: y"}, full=True)
    reasons.planned({"c"}, set(), {"c": "no node fits: z"}, full=False)  # only a new job's tasks
    assert (reasons.get("a"), reasons.get("c")) == ("no node fits: x", "no node fits: z")
    reasons.planned({"a", "b", "c"}, {"a"}, {}, full=True)  # a placed; b and c backing off, not weighed
    assert (reasons.get("a"), reasons.get("b"), reasons.get("c")) == (None, "no node fits: y", "no node fits: z")
    reasons.planned(set(), set(), {}, full=True)  # nothing to plan: cancelled or finished
    assert reasons.by_task == {}
    reasons.planned({"b", "c"}, {"b"}, {"b": "host port(s) in use", "c": "no node fits: z"}, full=False)
    rows = [{"id": "b", "status": "running"}, {"id": "c", "status": "cancelled"}, {"id": "d", "status": "pending"}]
    reasons.on(rows)  # b: one replica placed, one waiting for room; c: cancelled since the last plan
    assert [r["reason"] for r in rows] == ["host port(s) in use", None, None]


def test_a_cancelled_task_is_stopped_on_its_nodes(harness: TickHarness) -> None:
    task_id = harness.submit("name: web\nimage: busybox\n")["tasks"][0]["id"]
    harness.tick()
    assert harness.engine.cancel(task_id) == {"id": task_id, "status": "cancelled"}
    assert harness.slaves.stopped == [(harness.instances(task_id)[0].node, task_id)]


def test_a_service_healthy_dependant_starts_only_once_its_dependency_is_healthy(harness: TickHarness) -> None:
    answer = harness.submit("job: stack\ntasks:\n"
                            "  - name: db\n    image: busybox\n    replicas: 2\n"
                            "    healthcheck: {test: [CMD, 'true']}\n"
                            "  - name: web\n    image: busybox\n    depends_on: {db: healthy}\n")
    db, web = (t["id"] for t in answer["tasks"])
    harness.tick()
    assert harness.task(web).status == "waiting"

    def report(health: str) -> None:
        for inst in harness.instances(db):
            harness.report(str(inst.node), [ContainerState(
                task_id=db, index=inst.idx, attempt=inst.attempt, status="running", health=health,
                container_id=f"c-{db}-{inst.idx}-{inst.attempt}")], listed=None)

    report("starting")
    harness.tick()
    assert harness.task(web).status == "waiting"
    assert {i.health for i in harness.instances(db)} == {"starting"}
    report("healthy")
    harness.tick()  # released
    assert harness.task(web).status == "pending"
    harness.tick()  # placed
    assert harness.task(web).status in ("starting", "running")
    assert "health" in harness.instances(db)[0].row()


def test_a_container_missing_within_its_grace_is_listed_again_when_the_grace_ends(harness: TickHarness) -> None:
    """Slaves report on change and resync every few seconds: the master does not wait for the next report
    to call a vanished container lost."""
    from taskorg.master.reconcile import RUNNING_GRACE
    from taskorg.master.relist import SLACK

    task_id = harness.submit("name: web\nimage: busybox\nconstraints: {nodes: [node1]}\n")["tasks"][0]["id"]
    harness.tick()
    harness.now += 1.0
    harness.report("node1", [], listed=1e9)  # `docker rm -f` a second after it started: a report without it
    assert harness.instances(task_id)[0].status == "running"  # within its grace
    [(node, delay)] = harness.relists.asked
    assert node == "node1" and abs(delay - (RUNNING_GRACE - 1.0 + SLACK)) < 1e-6
    harness.now += RUNNING_GRACE  # the grace is over: the relister's listing (the fake slave runs nothing)
    harness.engine.relist("node1")
    assert harness.instances(task_id)[0].status == "pending" and "lost" in harness.events()


def test_a_node_alive_again_is_listed_at_once(harness: TickHarness) -> None:
    """After a false death its tasks run elsewhere too: its duplicates are stopped now, not at its resync."""
    harness.tick()
    harness.set_members({"node1": "active", "node2": "active"}, dead=("node2",))
    harness.tick()
    assert harness.relists.asked == []
    harness.set_members({"node1": "active", "node2": "active"})
    harness.tick()
    assert harness.relists.asked == [("node2", 0.0)]


def test_a_node_whose_slave_cannot_be_reached_is_passed_over_until_it_rests_or_reports(harness: TickHarness) -> None:
    """A revived node whose slave is not up yet must not draw every start to itself: the task runs on
    another node at its next try, and the node takes work again once its rest is over."""
    answer = harness.slaves.start

    def node2_down(address: str, order: StartOrder) -> ContainerState:
        if address == "127.0.9.3":  # node2's slave
            raise ServiceUnavailable("https://127.0.9.3:23334/v1/containers: connection refused")
        return answer(address, order)

    harness.slaves.start = node2_down  # type: ignore[method-assign]
    tasks = [harness.submit(f"name: t{n}\nimage: busybox\n")["tasks"][0]["id"] for n in range(2)]
    harness.tick()
    assert sorted(harness.instances(t)[0].status for t in tasks) == ["pending", "running"]  # node2's start failed
    assert "start_failed" in harness.events()
    harness.tick(advance=1.1)  # past the failed start's delay: placed again, and not on node2
    assert [(harness.instances(t)[0].status, harness.instances(t)[0].node) for t in tasks] == [("running", "node1")] * 2
    harness.slaves.start = answer  # type: ignore[method-assign]
    harness.tick(advance=UNREACHABLE_REST)
    later = harness.submit("name: later\nimage: busybox\n")["tasks"][0]["id"]
    harness.tick()
    assert harness.instances(later)[0].node == "node2"  # rested: the emptier node again
