"""Placement: which node runs an instance, and why none does.

Proves the rules of taskorg/master/placement.py on specs in their canonical
form (parsed from YAML by taskorg.spec, as the master stores them): node and
label constraints, CPU and memory fit (with the default reservation when a
spec sets none), host-port clashes per protocol, spreading the replicas of a
task, preferring measured-faster and less loaded nodes, and a "no node fits"
reason that names every node and what stops it.
"""

from __future__ import annotations

from typing import Any

import pytest

from taskorg.master.placement import (DEFAULT_CPUS, DEFAULT_MEMORY, MiB, NodeView, choose, host_ports,
                                      reservation, score, why_not)
from taskorg.spec import TaskSpec, parse_spec_text

GiB = 1024 * MiB


def spec(text: str = "") -> TaskSpec:
    """A task's spec from YAML lines (name and image filled in)."""
    job = parse_spec_text(f"name: t\nimage: busybox\n{text}", source="test.yaml")
    return job.tasks[0]


def node(number: int, cpus: float = 4, memory: int = 4 * GiB, **kwargs: Any) -> NodeView:
    return NodeView(name=f"node{number}", address=f"127.0.1.{number + 1}", labels=kwargs.pop("labels", {}),
                    cpus=cpus, memory=memory, **kwargs)


def place_all(task_id: str, task: TaskSpec, nodes: list[NodeView], count: int) -> list[str | None]:
    chosen = []
    for _ in range(count):
        best, reason = choose(task_id, task, nodes)
        chosen.append(best.name if best else None)
    return chosen


# ---- constraints -------------------------------------------------------------------------
def test_a_node_constraint_allows_only_the_named_nodes() -> None:
    task = spec("constraints: {nodes: [node3]}")
    nodes = [node(1), node(2), node(3)]
    assert why_not(nodes[0], task) == "not one of the nodes node3"
    assert why_not(nodes[2], task) is None
    assert place_all("t-1", task, nodes, 3) == ["node3"] * 3


def test_a_label_constraint_needs_the_exact_value() -> None:
    task = spec("constraints: {labels: {gpu: true, arch: arm64}}")  # YAML true becomes "true"
    good = node(1, labels={"gpu": "true", "arch": "arm64", "zone": "a"})
    wrong_value = node(2, labels={"gpu": "false", "arch": "arm64"})
    missing = node(3, labels={"arch": "arm64"})
    assert why_not(good, task) is None
    assert why_not(wrong_value, task) == "label gpu=true wanted, node has gpu=false"
    assert why_not(missing, task) == "no label gpu=true"
    best, reason = choose("t-1", task, [wrong_value, missing, good])
    assert best is good and reason == ""


def test_nodes_and_labels_must_both_hold() -> None:
    task = spec("constraints: {nodes: [node1, node2], labels: {gpu: 'true'}}")
    nodes = [node(1), node(2, labels={"gpu": "true"}), node(3, labels={"gpu": "true"})]
    assert place_all("t-1", task, nodes, 2) == ["node2", "node2"]


# ---- resources -----------------------------------------------------------------------------
def test_a_spec_without_resources_reserves_the_defaults() -> None:
    assert reservation(spec()) == (DEFAULT_CPUS, DEFAULT_MEMORY)
    assert reservation(spec("resources: {cpus: 1.5, memory: 256M}")) == (1.5, 256 * MiB)
    target = node(1)
    target.reserve("t-1", spec())
    assert (target.cpus_used, target.memory_used, target.tasks["t-1"]) == (DEFAULT_CPUS, DEFAULT_MEMORY, 1)


def test_cpu_must_fit_in_what_is_left() -> None:
    task = spec("resources: {cpus: 0.5}")
    target = node(1, cpus=1, cpus_used=0.75)
    assert why_not(target, task) == "not enough CPU (needs 0.5, 0.25 free)"
    target.cpus_used = 0.5
    assert why_not(target, task) is None  # exactly what is left is enough


def test_many_small_reservations_fill_a_node_exactly_despite_float_sums() -> None:
    task = spec("resources: {cpus: 0.1, memory: 8M}")
    target = node(1, cpus=1)
    assert place_all("t-1", task, [target], 11) == ["node1"] * 10 + [None]
    assert target.cpus_used == pytest.approx(1.0)


def test_memory_must_fit_in_what_is_left() -> None:
    task = spec("resources: {memory: 64M}")
    target = node(1, memory=128 * MiB)
    assert place_all("t-1", task, [target], 3) == ["node1", "node1", None]
    assert why_not(target, task) == "not enough memory (needs 64 MiB, 0 MiB free)"


def test_a_node_fuller_than_its_size_reports_zero_free() -> None:
    task = spec("resources: {cpus: 1, memory: 64M}")
    assert why_not(node(1, cpus=2, cpus_used=3), task) == "not enough CPU (needs 1, 0 free)"
    assert why_not(node(1, memory=64 * MiB, memory_used=100 * MiB), task) == \
        "not enough memory (needs 64 MiB, 0 MiB free)"


# ---- host ports ------------------------------------------------------------------------------
def test_host_ports_are_reserved_per_protocol() -> None:
    web = spec("ports: ['8080:80', '5353:53/udp', '9000']")  # "9000": a container port, no host port
    assert host_ports(web) == {(8080, "tcp"), (5353, "udp")}
    target = node(1)
    target.reserve("t-1", web)
    assert why_not(target, spec("ports: ['8080:81']")) == "host port(s) in use: 8080/tcp"
    assert why_not(target, spec("ports: ['8080:80/udp']")) is None  # another protocol
    assert why_not(target, spec("ports: ['5353:53/udp', '8080:80']")) == \
        "host port(s) in use: 5353/udp, 8080/tcp"
    assert why_not(target, spec("ports: ['9000']")) is None


def test_replicas_with_a_host_port_land_on_different_nodes_until_none_is_left() -> None:
    task = spec("ports: ['8080:80']\nreplicas: 4")
    nodes = [node(1), node(2), node(3)]
    assert sorted(filter(None, place_all("t-1", task, nodes, 3))) == ["node1", "node2", "node3"]
    best, reason = choose("t-1", task, nodes)
    assert best is None
    assert reason == ("no node fits: node1: host port(s) in use: 8080/tcp; node2: host port(s) in use: "
                      "8080/tcp; node3: host port(s) in use: 8080/tcp")


# ---- preferences ----------------------------------------------------------------------------
def test_replicas_spread_over_nodes_before_doubling_up() -> None:
    nodes = [node(1, speed=5.0), node(2), node(3)]  # node1 much faster, still only its share
    chosen = place_all("t-1", spec("replicas: 6"), nodes, 6)
    assert sorted(chosen) == ["node1", "node1", "node2", "node2", "node3", "node3"]  # type: ignore[type-var]
    assert chosen[0] == "node1"  # the fastest first


def test_spread_counts_replicas_of_the_same_task_only() -> None:
    nodes = [node(1, speed=2.0), node(2)]
    for _ in range(3):
        nodes[0].reserve("t-other", spec())
    assert place_all("t-1", spec(), nodes, 1) == ["node1"]  # other tasks do not push t-1 away


def test_the_faster_node_is_preferred() -> None:
    nodes = [node(1, speed=1.0), node(2, speed=1.8), node(3, speed=1.2)]
    assert place_all("t-1", spec(), nodes, 1) == ["node2"]


def test_the_less_loaded_node_is_preferred() -> None:
    nodes = [node(1, load=0.9), node(2, load=0.1), node(3, load=0.5)]
    assert place_all("t-1", spec(), nodes, 1) == ["node2"]


def test_a_busy_fast_node_loses_to_an_idle_slower_one() -> None:
    nodes = [node(1, speed=2.0, load=0.8), node(2, speed=1.0, load=0.0)]
    assert place_all("t-1", spec(), nodes, 1) == ["node2"]


def test_more_free_cpu_is_preferred_and_overload_counts_as_full() -> None:
    roomy, tight = node(1, cpus=8), node(2, cpus=8, cpus_used=6)
    assert place_all("t-1", spec("resources: {cpus: 1}"), [tight, roomy], 1) == ["node1"]
    assert score(node(3, load=1.7), "t", spec())[1] == 0.0  # load above 100% counts as 100%


def test_equal_nodes_go_to_the_lowest_number() -> None:
    nodes = [node(12), node(3), node(7)]
    assert place_all("t-1", spec(), nodes, 1) == ["node3"]


def test_choosing_reserves_on_the_chosen_node() -> None:
    nodes = [node(1), node(2)]
    best, reason = choose("t-1", spec("resources: {cpus: 1, memory: 1G}\nports: ['80:80']"), nodes)
    assert best is nodes[0] and reason == ""
    assert (best.cpus_used, best.memory_used, best.ports_used, dict(best.tasks)) == \
        (1.0, GiB, {(80, "tcp")}, {"t-1": 1})
    assert (nodes[1].cpus_used, nodes[1].memory_used) == (0.0, 0)


# ---- when nothing fits ------------------------------------------------------------------------
def test_no_node_fits_names_every_node_and_why() -> None:
    task = spec("resources: {cpus: 2, memory: 1G}\nconstraints: {labels: {gpu: 'true'}}\nports: ['443:443']")
    busy = node(4, labels={"gpu": "true"})
    busy.reserve("t-web", spec("ports: ['443:8443']"))
    nodes = [
        node(1, labels={"gpu": "false"}),
        node(2, cpus=1, labels={"gpu": "true"}),
        node(3, memory=512 * MiB, labels={"gpu": "true"}),
        busy,
        node(5),
    ]
    best, reason = choose("t-1", task, nodes)
    assert best is None
    assert reason == (
        "no node fits: "
        "node1: label gpu=true wanted, node has gpu=false; "
        "node2: not enough CPU (needs 2, 1 free); "
        "node3: not enough memory (needs 1024 MiB, 512 MiB free); "
        "node4: host port(s) in use: 443/tcp; "
        "node5: no label gpu=true"
    )
    for view in nodes:  # nothing was reserved anywhere
        assert view.tasks["t-1"] == 0


def test_no_living_node() -> None:
    assert choose("t-1", spec(), []) == (None, "no node fits: no living node")


def test_a_node_constraint_reason_lists_the_wanted_nodes() -> None:
    best, reason = choose("t-1", spec("constraints: {nodes: [node7, node9]}"), [node(1)])
    assert best is None
    assert reason == "no node fits: node1: not one of the nodes node7, node9"


# ---- rules, machine labels, GPUs ------------------------------------------------------------
def test_rules_read_the_machine_labels_as_swarm_does() -> None:
    pi = node(1, labels={"arch": "aarch64", "hostname": "pi3", "os": "linux", "zone": "a"})
    box = node(2, labels={"arch": "x86_64", "hostname": "box", "os": "linux"})
    assert why_not(pi, spec("constraints: {rules: ['node.platform.arch == x86_64']}")) == \
        "node.platform.arch == x86_64 wanted, node has arch=aarch64"
    assert why_not(box, spec("constraints: {rules: ['node.labels.arch == x86_64']}")) is None
    assert why_not(pi, spec("constraints: {rules: ['node.hostname != pi3']}")) == \
        "node.hostname != pi3 wanted, node has hostname=pi3"
    # `!=` holds on a node without the label; `==` does not
    assert why_not(box, spec("constraints: {rules: ['node.labels.zone != a']}")) is None
    assert why_not(box, spec("constraints: {rules: ['node.labels.zone == a']}")) == \
        "node.labels.zone == a wanted, node has zone=(none)"
    assert place_all("t-1", spec("constraints: {rules: ['node.hostname == pi3']}"), [box, pi], 2) == ["node1"] * 2


def test_a_gpu_task_goes_only_to_a_node_with_a_free_gpu() -> None:
    task = spec("gpus: 1")
    plain, one, two = node(1), node(2, gpus=1), node(3, gpus=2)
    assert why_not(plain, task) == "no GPU (its telemetry reports none)"
    assert sorted(place_all("t-1", task, [plain, one, two], 3)) == ["node2", "node3", "node3"]
    best, reason = choose("t-1", task, [plain, one, two])
    assert best is None
    assert reason == ("no node fits: node1: no GPU (its telemetry reports none); "
                      "node2: not enough free GPUs (needs 1, 0 of 1 free); "
                      "node3: not enough free GPUs (needs 1, 0 of 2 free)")
    assert choose("t-2", spec(), [plain, one, two])[0] is not None  # a task without GPUs still fits


def test_all_gpus_or_listed_ids_take_that_many() -> None:
    every, ids = spec("gpus: all"), spec("gpus: {device_ids: ['0', '1']}")
    four = node(1, gpus=4)
    assert why_not(four, every) is None and why_not(four, ids) is None
    four.reserve("t-1", ids)
    assert four.gpus_used == 2
    assert why_not(four, every) == "not enough free GPUs (needs 4, 2 of 4 free)"
    four.reserve("t-2", ids)
    assert why_not(four, ids) == "not enough free GPUs (needs 2, 0 of 4 free)"
