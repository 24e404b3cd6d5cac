"""The master's state on a real cluster: jobs listed and cancelled whole, finished jobs pruned as a
replicated change (a new master after a failover no longer has them), and a standby that refuses an
epoch the DNS service never granted without the active master losing anything."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskorg.devtools.localcluster import LocalCluster
from taskorg.net.client import ServiceClient, ServiceError
from tests.helpers import wait_task_succeeded, wait_until

pytestmark = pytest.mark.cluster


def job_text(name: str, image: str, command: str, restart: str = "never") -> str:
    return (f"job: {name}\ntasks:\n  - name: a\n    image: {image}\n    command: {json.dumps(command)}\n"
            f"    restart: {restart}\n")


def test_jobs_are_listed_cancelled_and_pruned_across_a_failover(cluster_factory: Any, busybox_image: str) -> None:
    cluster: LocalCluster = cluster_factory(3, settings={"retain_finished_jobs": 1, "tls": False})  # state, not TLS: plain calls
    client = cluster.client()
    done = [client.submit(job_text(f"done{n}", busybox_image, "true")) for n in range(3)]
    sleeper = client.submit(job_text("sleeper", busybox_image, "sleep 600", "always"))
    for job in done:
        wait_task_succeeded(client, job["tasks"][0]["id"], 60)
    jobs = client.call("GET", "/v1/jobs")["jobs"]
    assert [j["name"] for j in jobs][:1] == ["sleeper"]
    assert {j["name"]: j["status"] for j in jobs}["done0"] == "succeeded"

    removed = client.prune()["removed"]
    assert removed["jobs"] == 2  # only the finished job that ended last is kept
    left = {j["name"] for j in client.call("GET", "/v1/jobs")["jobs"]}
    # Which of the three ended last is the master's call (they may end within the same moment).
    assert "sleeper" in left and len(left - {"sleeper"}) == 1 and left - {"sleeper"} <= {"done0", "done1", "done2"}

    # A standby refuses an epoch nobody granted; the master keeps its role and its state.
    master = cluster.index_of(cluster.wait_master())
    standby = next(i for i in (1, 2, 3) if i != master)
    address = cluster.node_address(standby)
    other = ServiceClient(f"http://{address}:{cluster.config.master_port}", cluster.secret)
    with pytest.raises(ServiceError) as refused:
        other.post("/v1/replica/apply", json={"epoch": 10 ** 18, "entries": []})
    assert refused.value.status == 409 and "never granted" in refused.value.message
    other.close()

    cluster.kill_node(master)
    new_master = cluster.index_of(cluster.wait_master())
    assert new_master != master
    after = wait_until(lambda: {j["name"] for j in cluster.client().call("GET", "/v1/jobs")["jobs"]}, 30,
                       "the new master to list jobs")
    assert after == left  # the prune was replicated
    cancelled = cluster.client().call("DELETE", f"/v1/jobs/{sleeper['job']}", write=True)
    assert {t["status"] for t in cancelled["tasks"]} == {"cancelled"}
    cluster.start_node(master)


def test_a_pruned_jobs_directory_on_the_shared_storage_is_removed(cluster_factory: Any, busybox_image: str) -> None:
    """Issue 15: job directories are removed when the job is pruned (the slaves hear of it in the answer
    to their next report)."""
    cluster: LocalCluster = cluster_factory(2, settings={"retain_finished_jobs": 1})
    client = cluster.client()
    shared = cluster.workdir / "shared"
    first = client.submit(job_text("writer", busybox_image, "sh -c 'mkdir -p /shared/out && echo hi > /shared/out/a'"))
    wait_task_succeeded(client, first["tasks"][0]["id"], 60)
    directory = shared / first["job"]
    assert (directory / "out" / "a").read_text() == "hi\n"  # the last finished job is kept
    second = client.submit(job_text("later", busybox_image, "true"))
    wait_task_succeeded(client, second["tasks"][0]["id"], 60)
    client.prune()  # the writer is no longer the newest finished job: pruned (now or by the automatic prune)
    assert first["job"] not in {j["id"] for j in client.call("GET", "/v1/jobs")["jobs"]}
    wait_until(lambda: not directory.exists(), 20, f"{directory} to be removed after its job was pruned")
