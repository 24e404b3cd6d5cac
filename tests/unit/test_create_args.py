"""A start order -> docker's create arguments (taskorg/slave/runner/create_args.py), without dockerd.

Proves: the container carries the cluster's, node's and instance's labels
and the task's environment (order env over spec env, taskorg's own last);
ports bind to the node's own address only; resources become docker limits;
the job's shared directory is mounted at /shared only when the cluster has
one; a spec docker could not take is an OrderError naming the spec.
"""

from __future__ import annotations

from typing import Any

import pytest

from taskorg import labels
from taskorg.slave.runner import OrderError
from taskorg.slave.runner.create_args import SHARED_TARGET, Site, create_args, shared_job_dir

SITE = Site("unit", "node2", "127.0.9.2")


def order(**spec: Any) -> dict[str, Any]:
    return {"epoch": 4, "task_id": "t-1", "index": 2, "attempt": 3, "job": "j-7", "env": {"B": "order"},
            "spec": {"image": "img:1", "env": {"A": True, "B": "spec", "C": None}, **spec}}


def test_labels_and_environment() -> None:
    args = create_args(order(), "tk-x", SITE)
    assert args["labels"] == {labels.CLUSTER: "unit", labels.NODE: "node2", labels.TASK: "t-1",
                              labels.INSTANCE: "t-1/2", labels.EPOCH: "4", labels.ATTEMPT: "3", labels.JOB: "j-7"}
    env = args["environment"]
    assert (env["A"], env["B"], env["C"]) == ("true", "order", "")
    assert (env["TASKORG_TASK_ID"], env["TASKORG_INDEX"], env["TASKORG_NODE"], env["TASKORG_ATTEMPT"]) == \
        ("t-1", "2", "node2", "3")
    assert (args["name"], args["image"], args["network_mode"], args["init"]) == ("tk-x", "img:1", "bridge", True)
    assert "nano_cpus" not in args and "mem_limit" not in args and "ports" not in args


def test_ports_bind_to_the_node_address_and_resources_become_limits() -> None:
    args = create_args(order(ports=[{"host": 8080, "container": 80}, {"container": 53, "protocol": "udp"}],
                             resources={"cpus": 0.5, "memory": 64 * 2**20}), "tk-x", SITE)
    assert args["ports"] == {"80/tcp": ("127.0.9.2", 8080), "53/udp": ("127.0.9.2",)}
    assert (args["nano_cpus"], args["mem_limit"]) == (500_000_000, 64 * 2**20)
    assert "ports" not in create_args(order(network="host", ports=[{"container": 80}]), "tk-x", SITE)


def test_the_shared_directory_only_when_the_cluster_has_one() -> None:
    assert shared_job_dir(SITE, order()) is None
    shared = Site("unit", "node2", "127.0.9.2", shared_dir="/srv/shared")
    args = create_args(order(), "tk-x", shared)
    assert [(m["Target"], m["Source"]) for m in args["mounts"]] == [(SHARED_TARGET, "/srv/shared/j-7")]
    assert args["environment"]["TASKORG_SHARED"] == SHARED_TARGET
    with pytest.raises(OrderError, match="job id '../x' cannot name a directory"):
        create_args({**order(), "job": "../x"}, "tk-x", shared)


@pytest.mark.parametrize("spec", [{"ports": [{"host": 1}]}, {"volumes": [{"source": "v"}]},
                                  {"resources": {"cpus": "lots"}}])
def test_a_spec_docker_could_not_take_is_an_order_error(spec: dict[str, Any]) -> None:
    with pytest.raises(OrderError, match="^order field 'spec': cannot use it: "):
        create_args(order(**spec), "tk-x", SITE)
