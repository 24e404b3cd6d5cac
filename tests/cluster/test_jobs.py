"""Jobs as graphs on a real local cluster: fan-out, merge, shared storage, results, events.

The two examples run as they are and their outputs are checked for real (pi
within a tolerance; the merged gzip decompresses to the input byte for byte);
the chunk job survives losing the master and then a slave in its middle; the
event stream of a job arrives in order and resumes after a failover with no
gap.
"""

from __future__ import annotations

import gzip
import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from taskorg.devtools.localcluster import LocalCluster
from taskorg.net.client import ServiceError
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]


def job_tasks(cluster: LocalCluster, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    client = cluster.client()
    return {t["name"]: client.task(t["id"]) for t in job["tasks"]}


def wait_job(cluster: LocalCluster, job: dict[str, Any], timeout: float = 90) -> dict[str, dict[str, Any]]:
    def finished() -> dict[str, dict[str, Any]] | None:
        tasks = job_tasks(cluster, job)
        failed = [t for t in tasks.values() if t["status"] in ("failed", "cancelled")]
        assert not failed, f"{failed[0]['name']} {failed[0]['status']}: {failed[0]['history'][-3:]}"
        return tasks if all(t["status"] == "succeeded" for t in tasks.values()) else None

    return wait_until(finished, timeout, f"job {job['name']} to succeed")


def test_montecarlo_pi_fans_out_and_merges(cluster: LocalCluster) -> None:
    job = cluster.client().submit((REPO / "examples" / "montecarlo-pi.yaml").read_text(), source="pi.yaml")
    tasks = wait_job(cluster, job)
    result = tasks["merge"]["result"]
    assert result["parts"] == 11 and result["samples"] == 11 * 200000
    assert math.isclose(result["pi"], math.pi, abs_tol=0.01)
    parts = tasks["sample"]["result"]
    assert len(parts) == 11 and all(p["samples"] == 200000 for p in parts)
    assert len({i["node"] for i in tasks["sample"]["instances"]}) > 1  # spread over nodes


def check_chunk_output(cluster: LocalCluster, job: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> None:
    shared = cluster.workdir / "shared" / job["job"]
    data = (shared / "input.dat").read_bytes()
    assert gzip.decompress((shared / "output.gz").read_bytes()) == data  # byte for byte
    assert gzip.decompress(gzip.compress(data)) == data
    split = tasks["split"]["result"]
    assert split["bytes"] == len(data) and split["chunks"] == math.ceil(len(data) / 2**20)
    done = sorted(c for r in tasks["compress"]["result"] for c in r["chunks"])
    assert done == [f"chunk-{i:03d}" for i in range(split["chunks"])]  # every chunk, once
    assert tasks["merge"]["result"]["input_bytes"] == len(data)


def test_chunk_compress_merges_to_the_input(cluster: LocalCluster) -> None:
    job = cluster.client().submit((REPO / "examples" / "chunk-compress.yaml").read_text(), source="chunks.yaml")
    tasks = wait_job(cluster, job)
    check_chunk_output(cluster, job, tasks)
    assert len({i["node"] for i in tasks["compress"]["instances"]}) > 1


def test_chunk_job_survives_losing_the_master_then_a_slave(cluster_factory: Any) -> None:
    cluster: LocalCluster = cluster_factory(3)
    # The example, with each chunk taking a while, so the failures land mid-job.
    text = (REPO / "examples" / "chunk-compress.yaml").read_text().replace(
        'gzip -c "$chunk"', 'sleep 2; gzip -c "$chunk"')
    client = cluster.client()
    job = client.submit(text, source="slow-chunks.yaml")
    compress = next(t["id"] for t in job["tasks"] if t["name"] == "compress")
    wait_until(lambda: client.task(compress)["status"] == "running", 60, "compress to run")
    master = cluster.index_of(cluster.wait_master())
    cluster.kill_node(master)
    time.sleep(1.5)
    cluster.start_node(master)
    new_master = cluster.index_of(cluster.wait_master())
    victim = next(i for i in (1, 2, 3) if i not in (new_master, master))
    cluster.kill_node(victim)
    time.sleep(2)
    cluster.start_node(victim)
    tasks = wait_job(cluster, job, timeout=120)
    check_chunk_output(cluster, job, tasks)


def test_cycles_and_unknown_dependencies_are_refused_by_name(cluster: LocalCluster) -> None:
    cycle = ("job: loop\ntasks:\n  - {name: a, image: i, after: [b]}\n  - {name: b, image: i, after: [a]}\n")
    with pytest.raises(ServiceError) as refused:
        cluster.client().submit(cycle, source="loop.yaml")
    assert refused.value.status == 400 and ("a -> b -> a" in refused.value.message
                                            or "b -> a -> b" in refused.value.message)
    unknown = "job: j\ntasks:\n  - {name: a, image: i, after: [ghost]}\n"
    with pytest.raises(ServiceError) as refused:
        cluster.client().submit(unknown, source="ghost.yaml")
    assert refused.value.status == 400 and "ghost" in refused.value.message


def test_failed_dependency_fails_its_dependants_with_the_reason(cluster: LocalCluster) -> None:
    spec = ("job: doomed\ntasks:\n"
            "  - {name: first, image: taskorg/busybox:latest, command: 'false', restart: never}\n"
            "  - {name: second, image: taskorg/busybox:latest, command: 'true', after: [first]}\n")
    job = cluster.client().submit(spec, source="doomed.yaml")
    second = next(t["id"] for t in job["tasks"] if t["name"] == "second")
    task = wait_until(lambda: (t := cluster.client().task(second))["status"] == "failed" and t, 30,
                      "the dependant to fail")
    assert "dependency first failed" in task["instances"][0]["error"]
    assert task["instances"][0]["attempt"] == 0  # it never ran


def test_event_stream_is_ordered_and_resumes_after_failover(cluster_factory: Any) -> None:
    cluster: LocalCluster = cluster_factory(3)
    client = cluster.client(failover_wait=15)
    start = client.status()["last_event"]
    seen: list[dict[str, Any]] = []
    stop = threading.Event()

    def follow() -> None:
        since = start
        while not stop.is_set():
            try:
                events = client.events(since, wait=1.0)
            except Exception:
                continue  # a failover under way: ask again from the same id
            for event in events:
                seen.append(event)
                since = event["id"]

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    spec = ("job: steps\ntasks:\n"
            "  - {name: one, image: taskorg/busybox:latest, command: sh -c 'sleep 1', restart: never}\n"
            "  - {name: two, image: taskorg/busybox:latest, command: sh -c 'sleep 3', restart: never, after: [one]}\n"
            "  - {name: three, image: taskorg/busybox:latest, command: 'true', restart: never, after: [two]}\n")
    job = client.submit(spec, source="steps.yaml")
    ids = {t["name"]: t["id"] for t in job["tasks"]}
    wait_until(lambda: client.task(ids["two"])["status"] == "running", 30, "step two to run")
    master = cluster.index_of(cluster.wait_master())
    cluster.kill_node(master)
    time.sleep(1.0)
    cluster.start_node(master)
    wait_job(cluster, job, timeout=60)
    time.sleep(1.5)
    stop.set()
    reader.join(10)

    everything = client.events(start, wait=0)
    received = [e["id"] for e in seen]
    assert received == sorted(received) and len(received) == len(set(received))  # in order, no repeats
    assert received == [e["id"] for e in everything]  # no gap across the failover
    kinds = {(e["name"], e["kind"]) for e in seen if e["job"] == job["job"]}
    for name in ("one", "two", "three"):
        for kind in ("task_submitted", "task_started", "task_finished"):
            assert (name, kind) in kinds, f"missing {kind} for {name}"
    order = [(e["name"], e["kind"]) for e in seen if e["kind"] in ("task_started", "task_finished")
             and e["job"] == job["job"]]
    assert order.index(("one", "task_finished")) < order.index(("two", "task_started"))
    assert order.index(("two", "task_finished")) < order.index(("three", "task_started"))
    assert any(e["kind"] == "master_changed" for e in seen)


def test_a_scheduler_reacts_to_events_and_finishes(cluster: LocalCluster) -> None:
    from taskorg.scheduler import Scheduler

    def step(name: str, script: str) -> str:
        # JSON is YAML: no quoting trouble with the shell script inside.
        return json.dumps({"name": name, "image": "taskorg/busybox:latest", "restart": "never",
                           "command": ["sh", "-c", script]})

    class Chain(Scheduler):
        """Runs step 1, then step 2 with step 1's result, then finishes."""

        done: list[tuple[str, Any]] = []

        def start(self) -> None:
            self.submit(step("step1", 'echo \'{"n": 20}\' > $TASKORG_RESULT'))

        def on_task_done(self, event: dict[str, Any], task: dict[str, Any]) -> None:
            self.done.append((task["name"], task["result"]))
            if task["name"] == "step1":
                n = task["result"]["n"]
                self.submit(step("step2", f'echo "{{\\"n\\": $(({n} * 2))}}" > $TASKORG_RESULT'))
            else:
                self.finish()

    chain = Chain(cluster.client())
    assert chain.run(timeout=60)
    assert chain.done == [("step1", {"n": 20}), ("step2", {"n": 40})]
