"""Streams that follow, on a real local cluster: `taskorg logs -f` and `taskorg events -f` (the real CLI,
as subprocesses) while the master is killed and another elected."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from taskorg.devtools.localcluster import LocalCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

COUNT = 100  # numbered lines, one every 100 ms: ten seconds of output


def cli(cluster: LocalCluster, *argv: str) -> subprocess.Popen[str]:
    """The CLI as a person runs it, Ctrl-C included: a suite started in the background by a script
    (`cmd &`) inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt."""
    return subprocess.Popen([sys.executable, "-m", "taskorg", "--config", str(cluster.client_config_path), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def counter_spec(tmp_path: Path, node: str) -> Path:
    path = tmp_path / "counter.yaml"
    path.write_text("name: counter\nimage: taskorg/busybox:latest\nrestart: never\n"
                    f"constraints: {{nodes: [{node}]}}\n"
                    f"command: ['sh', '-c', 'i=0; while [ $i -lt {COUNT} ]; do echo $i; i=$((i+1)); sleep 0.1; done']\n")
    return path


def test_logs_follow_shows_every_line_once_across_a_master_failover(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = cluster_factory(3)
    client = cluster.client()
    master = cluster.index_of(cluster.wait_master())
    worker = next(i for i in (1, 2, 3) if i != master)
    job = client.submit(counter_spec(tmp_path, cluster.node_name(worker)).read_text(), source="counter.yaml")
    task_id = job["tasks"][0]["id"]
    wait_until(lambda: client.task(task_id)["status"] == "running", 30, "the counter to run")
    follower = cli(cluster, "logs", "-f", "--tail", "all", task_id)
    time.sleep(2.5)  # a few seconds of lines through the first master
    cluster.kill_node(master)
    new_master = cluster.index_of(cluster.wait_master(timeout=20))
    assert new_master != master
    out, err = follower.communicate(timeout=90)
    assert follower.returncode == 0, err
    assert out.split() == [str(n) for n in range(COUNT)], err


def test_events_follow_goes_on_across_a_master_failover(cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = cluster_factory(3)
    client = cluster.client()
    master = cluster.index_of(cluster.wait_master())
    start = int(client.status()["last_event"] or 0)
    follower = cli(cluster, "events", "-f", "--json", "--since", str(start))
    before = client.submit("name: before\nimage: taskorg/busybox:latest\ncommand: 'true'\nrestart: never\n")
    time.sleep(1.0)
    cluster.kill_node(master)
    cluster.wait_master(timeout=20)
    after = client.submit("name: after\nimage: taskorg/busybox:latest\ncommand: 'true'\nrestart: never\n")
    wait_until(lambda: client.task(after["tasks"][0]["id"])["status"] == "succeeded", 30, "the second task to end")
    time.sleep(1.5)  # the follower's next long poll brings the last events
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 130, err
    events = [json.loads(line) for line in out.splitlines()]
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)) and ids[0] > start  # in order, each once
    assert ids == [e["id"] for e in client.events(start, wait=0)][:len(ids)]  # no gap across the failover
    kinds = {(e["job"], e["kind"]) for e in events}
    assert (before["job"], "task_submitted") in kinds and (after["job"], "task_finished") in kinds
    assert any(e["kind"] == "master_changed" for e in events)


def test_logs_follow_goes_on_into_the_next_container_when_the_task_restarts(cluster: LocalCluster,
                                                                             tmp_path: Path) -> None:
    client = cluster.client()
    spec = tmp_path / "restarts.yaml"
    spec.write_text("name: restarts\nimage: taskorg/busybox:latest\n"
                    "restart: {policy: on-failure, max_attempts: 2}\n"
                    "command: ['sh', '-c', 'for i in 1 2 3; do echo $(hostname) $i; sleep 0.2; done; exit 1']\n")
    task_id = client.submit(spec.read_text(), source="restarts.yaml")["tasks"][0]["id"]
    follower = cli(cluster, "logs", "-f", "--tail", "all", task_id)
    out, err = follower.communicate(timeout=90)
    assert follower.returncode == 0, err
    assert client.task(task_id)["status"] == "failed"
    lines = [line.split() for line in out.splitlines()]
    containers = list(dict.fromkeys(host for host, _ in lines))
    assert len(containers) == 3  # the first run and its two restarts, each followed
    assert lines == [[host, str(i)] for host in containers for i in (1, 2, 3)], out
