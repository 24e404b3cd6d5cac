"""The settings that replace the benchmarks' patches: `runner`, `advertise_cpus`, `master_service`.

Proves: their defaults leave a node as it was (docker runner, the machine's
CPU count, a master service); bad values are errors naming the setting;
`advertise_cpus` is what the telemetry (the reporter's and the endpoint's
function) reports as the CPU count; a node without a master service says
so in the labels it registers, users cannot set taskorg's own labels, and
the master's replicator does not stream to such a node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskorg.config import Config, ConfigError, load_config
from taskorg.labels import NO_MASTER_SERVICE, machine_labels
from taskorg.master.replication import Replicator
from taskorg.slave import telemetry
from taskorg.slave.fence import EpochFence
from taskorg.slave.reporter import Reporter
from taskorg.slave.standin import StandInRunner


def load(**overrides: Any) -> Config:
    return load_config(overrides=overrides, environ={})


def test_defaults_leave_a_node_as_it_was() -> None:
    config = load()
    assert (config.runner, config.advertise_cpus, config.master_service) == ("docker", 0.0, True)
    assert config.node_labels == machine_labels()


def test_values_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "taskorg.yaml"
    path.write_text("runner: standin\nadvertise_cpus: 0.3\nmaster_service: false\n")
    config = load_config(path, environ={})
    assert (config.runner, config.advertise_cpus, config.master_service) == ("standin", 0.3, False)
    from_env = load_config(environ={"TASKORG_RUNNER": "standin", "TASKORG_ADVERTISE_CPUS": "2",
                                    "TASKORG_MASTER_SERVICE": "no"})
    assert (from_env.runner, from_env.advertise_cpus, from_env.master_service) == ("standin", 2.0, False)


@pytest.mark.parametrize("name, value, message", [
    ("runner", "podman", "setting 'runner': one of docker, standin; got 'podman'"),
    ("runner", "", "setting 'runner': one of docker, standin; got ''"),
    ("advertise_cpus", -1, "setting 'advertise_cpus': must not be negative, got -1"),
    ("advertise_cpus", "many", "setting 'advertise_cpus': expected a number, got 'many'"),
    ("master_service", "sometimes", "setting 'master_service': expected true or false, got 'sometimes'"),
    ("labels", {"taskorg.no-master-service": "true"},
     "setting 'labels': the prefix 'taskorg.' is taskorg's own, got taskorg.no-master-service"),
])
def test_bad_values_name_the_setting(name: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**{name: value})
    assert str(info.value) == message


def test_a_node_without_a_master_service_says_so_in_its_labels() -> None:
    config = load(master_service=False, labels={"gpu": "true"})
    assert config.node_labels == {**machine_labels(), "gpu": "true", NO_MASTER_SERVICE: "true"}
    assert load(labels={"gpu": "true"}).node_labels == {**machine_labels(), "gpu": "true"}


def test_every_node_labels_its_machine_and_a_configured_label_wins() -> None:
    import platform
    import socket

    labels = load().node_labels
    assert (labels["arch"], labels["hostname"], labels["os"]) == (platform.machine(), socket.gethostname(), "linux")
    assert load(labels={"hostname": "pi3"}).node_labels["hostname"] == "pi3"


def test_advertised_cpus_are_the_reported_cpu_count() -> None:
    assert telemetry.collect("node2", cpus=0.3)["cpu_count"] == 0.3
    assert telemetry.collect("node2")["cpu_count"] >= 1  # 0: the machine's
    assert telemetry.collector(1.5)("node2")["cpu_count"] == 1.5


def test_the_reporter_reports_the_advertised_cpus(tmp_path: Path) -> None:
    config = load(advertise_cpus=0.4, state_dir=str(tmp_path))
    reporter = Reporter(config, "s" * 32, StandInRunner("unit", "node2"), EpochFence(tmp_path / "epoch"))
    assert reporter.collect("node2")["cpu_count"] == 0.4


class Members:
    """The master's member view as the DNS service gives it (pure data, no service)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def members(self) -> list[dict[str, Any]]:
        return self.rows


def member(node: str, address: str, alive: bool = True, state: str = "active",
           labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"node": node, "address": address, "alive": alive, "state": state, "labels": labels or {}}


def test_the_master_streams_only_to_living_members_with_a_master_service() -> None:
    config = load(address="127.0.9.1")
    rows = [member("node1", "127.0.9.1"),  # this node
            member("node2", "127.0.9.2"),
            member("node3", "127.0.9.3", labels={"gpu": "true"}),
            member("node4", "127.0.9.4", labels={NO_MASTER_SERVICE: "true"}),
            member("node5", "127.0.9.5", alive=False),
            member("node6", "127.0.9.6", state="left")]
    replicator = Replicator(config, "s" * 32, store=None, members=Members(rows))  # type: ignore[arg-type]
    assert replicator.standbys() == {"node2": "127.0.9.2", "node3": "127.0.9.3"}
