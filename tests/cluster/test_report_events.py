"""Slave reports on change, on a real local cluster (issue 14): docker's events instead of a listing a second.

Proves: an idle slave posts about one report per `report_resync_interval`
(5 s by default), counted by its own Prometheus counter; and a container
killed outside taskorg (`docker kill` by id) is reported at once and its task
runs again within about 2 s, well under the resync interval.
"""

from __future__ import annotations

import re
import time

import docker
import pytest
import requests

from taskorg.devtools.localcluster import LocalCluster
from taskorg.security import tls
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster


def reports(cluster: LocalCluster, index: int) -> dict[tuple[str, str], float]:
    """The slave's `taskorg_slave_reports_total` by (reason, outcome)."""
    address = cluster.node_address(index)
    session = requests.Session()
    session.trust_env = False
    tls.mount(session, address)  # the harness's node certificate opens /metrics
    text = session.get(f"{cluster.config.url(address, cluster.config.slave_port)}/metrics", timeout=5).text
    found = re.findall(r'^taskorg_slave_reports_total\{outcome="(\w+)",reason="(\w+)"\} (\S+)$', text, re.M)
    assert found, "taskorg_slave_reports_total not in the slave's scrape"
    return {(reason, outcome): float(value) for outcome, reason, value in found}


def scraped(cluster: LocalCluster, index: int) -> dict[tuple[str, str], float] | None:
    try:
        return reports(cluster, index)
    except requests.ConnectionError:
        return None


def test_an_idle_slave_reports_once_per_resync(cluster: LocalCluster) -> None:
    resync = cluster.config.report_resync_interval
    assert resync >= 2  # the default (5 s): what this test is about
    index = cluster.nodes  # any node: with no task of this test on it
    window = 3 * resync
    # A slave's first report goes before its HTTP server listens: right after the cluster starts, wait for it.
    before = wait_until(lambda: scraped(cluster, index), 20, "the slave's /metrics")
    time.sleep(window)
    after = reports(cluster, index)
    sent = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    # Three resyncs in three intervals (one more or less at the edges); none failed; at 1 s a report
    # it would have been 15.
    assert 2 <= sent[("resync", "delivered")] <= 4, sent
    assert sent[("resync", "failed")] == 0 and sent[("change", "failed")] == 0, sent
    assert sum(sent.values()) <= 5, sent


def test_a_container_killed_outside_taskorg_is_reported_and_restarted_at_once(cluster: LocalCluster) -> None:
    client = cluster.client()
    job = client.submit("name: killed\nimage: taskorg/busybox:latest\ncommand: sleep 600\nrestart: always\n",
                        source="killed.yaml")
    task_id = job["tasks"][0]["id"]
    first = wait_until(lambda: (t := client.task(task_id))["status"] == "running" and t["instances"][0], 30,
                       "the task to run")
    engine = docker.from_env()
    try:
        time.sleep(1.0)  # well past the start's own report
        killed = time.monotonic()
        engine.containers.get(first["container_id"]).kill()  # by id, as an operator would
        again = wait_until(lambda: (i := client.task(task_id)["instances"][0])["attempt"] == 2
                           and i["status"] == "running" and i, 10, "the task to run again")
        took = time.monotonic() - killed
        assert took < 2.5, f"the killed container's task ran again after {took:.2f} s"
        assert took < cluster.config.report_resync_interval
        assert again["container_id"] != first["container_id"]
        events = [h["event"] for h in client.task(task_id)["history"]]
        assert "restarting" in events, events
    finally:
        engine.close()
        client.cancel(task_id)
