"""A real Prometheus (Debian's package) scrapes every service of a local cluster (issue 17).

The test runs the `prometheus` binary itself on loopback with a configuration
it writes: the master, slave, node and webview jobs show the harness's node
certificate, the DNS job a `read` user token. Every target must be `up`, a
task start must show in the task-state gauges and the start-latency
histogram, and killing the master's node must raise the epoch gauge and the
election counter. The example alert rules and scrape configuration pass
promtool, and every metric the Grafana dashboard queries exists in a scrape.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
import yaml

from taskorg.devtools.localcluster import LocalCluster
from taskorg.security import tls
from taskorg.security.tokens import TokenStore
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
JOBS = {"master": "master_port", "slave": "slave_port", "node": "node_port", "webview": "webview_port"}
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(not (PROMETHEUS and PROMTOOL),
                                      reason="Debian's prometheus package (scripts/setup.sh test extras)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape_config(cluster: LocalCluster, token_file: Path) -> dict[str, Any]:
    config = cluster.config
    cert, key = cluster.credentials.cert("harness")
    with_cert = {"ca_file": str(cluster.ca_file), "cert_file": str(cert), "key_file": str(key)}
    nodes = [cluster.node_address(i) for i in range(1, cluster.nodes + 1)]
    jobs = [{"job_name": f"taskorg-{name}", "scheme": "https", "tls_config": with_cert,
             "static_configs": [{"targets": [f"{a}:{getattr(config, port)}" for a in nodes]}]}
            for name, port in JOBS.items()]
    jobs.append({"job_name": "taskorg-dns", "scheme": "https", "tls_config": {"ca_file": str(cluster.ca_file)},
                 "authorization": {"credentials_file": str(token_file)},
                 "static_configs": [{"targets": [f"{a}:{config.dns_api_port}" for a in cluster.dns_servers]}]})
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(EXAMPLES / "prometheus" / "alerts.yml")], "scrape_configs": jobs}


class Prometheus:
    """The prometheus binary on a free loopback port, stopped by its own pid."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.config_file = workdir / "prometheus.yml"
        self.config_file.write_text(yaml.safe_dump(config))
        check = subprocess.run([str(PROMTOOL), "check", "config", str(self.config_file)], capture_output=True,
                               text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={self.config_file}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> Any:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
        answer.raise_for_status()
        return answer.json()["data"]

    def value(self, query: str) -> float | None:
        """The single value of an instant query; None when it has no sample."""
        result = self.api("query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, query: str, holds: Callable[[float], bool], timeout: float, what: str) -> float:
        def check() -> tuple[float] | None:  # (a tuple: 0.0 may be the awaited value)
            value = self.value(query)
            return (value,) if value is not None and holds(value) else None
        return wait_until(check, timeout, what, interval=0.5)[0]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[LocalCluster], Prometheus]]:
    started: list[Prometheus] = []

    def start(cluster: LocalCluster) -> Prometheus:
        _, token = TokenStore(cluster.tokens_file).create("prometheus", "read")
        token_file = tmp_path / "read-token"
        token_file.write_text(token + "\n")
        server = Prometheus(tmp_path, scrape_config(cluster, token_file))
        started.append(server)
        wait_until(lambda: _ready(server), 30, "prometheus to answer")
        return server

    yield start
    for server in started:
        server.stop()


def _ready(server: Prometheus) -> bool:
    assert server.process.poll() is None, f"prometheus exited: {server.log.name}"
    try:
        return requests.get(f"{server.url}/-/ready", timeout=2).ok
    except requests.RequestException:
        return False


def all_up(server: Prometheus, count: int) -> list[dict[str, Any]] | None:
    targets = server.api("targets", state="active")["activeTargets"]
    return targets if len(targets) == count and all(t["health"] == "up" for t in targets) else None


def metric_names(server: Prometheus, cluster: LocalCluster) -> set[str]:
    """Every metric family the services expose (HELP lines too: a family with no sample yet counts),
    read through Prometheus's own view of the series plus one direct scrape per target."""
    names = set(server.api("label/__name__/values"))
    cluster.use_tls_here()
    for target in server.api("targets", state="active")["activeTargets"]:
        with requests.Session() as session:
            tls.mount(session, target["labels"]["instance"].rsplit(":", 1)[0])  # the harness's node certificate
            text = session.get(target["scrapeUrl"], timeout=5).text
        names |= set(re.findall(r"^# HELP (\w+)", text, re.M))
    for family in list(names):
        for suffix in ("_total", "_bucket", "_count", "_sum", "_created"):
            names.add(family + suffix)
    return names


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((EXAMPLES / "grafana" / "taskorg.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    return {name for expr in exprs for name in re.findall(r"\btaskorg_\w+", expr)}


@needs_prometheus
def test_promtool_accepts_the_example_rules_and_scrape_config() -> None:
    rules = subprocess.run([str(PROMTOOL), "check", "rules", str(EXAMPLES / "prometheus" / "alerts.yml")],
                           capture_output=True, text=True, timeout=60)
    assert rules.returncode == 0 and "SUCCESS: 9 rules found" in rules.stdout, rules.stdout + rules.stderr
    # --syntax-only: the example names certificate files of a real installation.
    config = subprocess.run([str(PROMTOOL), "check", "config", "--syntax-only",
                             str(EXAMPLES / "prometheus" / "prometheus.yml")], capture_output=True, text=True,
                            timeout=60)
    assert config.returncode == 0, config.stdout + config.stderr


@needs_prometheus
def test_prometheus_scrapes_every_service_and_the_figures_move(
        cluster_factory: Callable[..., LocalCluster], prometheus_for: Callable[[LocalCluster], Prometheus]) -> None:
    cluster = cluster_factory(3, webview=True)
    server = prometheus_for(cluster)
    targets = 4 * cluster.nodes + len(cluster.dns_servers)
    wait_until(lambda: all_up(server, targets), 60, f"all {targets} targets up")

    # The dashboard queries only metrics that exist.
    missing = dashboard_metrics() - metric_names(server, cluster)
    assert not missing, f"the Grafana dashboard queries metrics no service exposes: {sorted(missing)}"

    # A task start shows in the task-state gauges and the start-latency histogram.
    starts_before = server.value("sum(taskorg_slave_container_start_seconds_count)") or 0
    job = cluster.client().submit("name: counted\nimage: taskorg/busybox:latest\ncommand: sleep 600\n")
    task_id = job["tasks"][0]["id"]
    wait_until(lambda: cluster.client().task(task_id)["status"] == "running", 30, "the task to run")
    server.wait_value('sum(taskorg_tasks{status="running"})', lambda v: v >= 1, 20, "a running task in Prometheus")
    server.wait_value("sum(taskorg_slave_container_start_seconds_count)", lambda v: v > starts_before, 20,
                      "the start in the start-latency histogram")
    assert (server.value("sum(taskorg_slave_container_start_seconds_bucket{le=\"+Inf\"})") or 0) > starts_before

    # An election: the master's node dies, the survivors count it and the epoch goes up.
    master = cluster.wait_master()
    epoch = server.value("max(taskorg_master_epoch)")
    assert epoch and epoch >= 1
    survivors = f'instance!="{master}:{cluster.config.master_port}"'
    elections = server.value(f"sum(taskorg_master_elections_total{{{survivors}}})") or 0
    dns_epoch = server.value("max(taskorg_dns_epoch)")
    cluster.kill_node(cluster.index_of(master))
    server.wait_value(f"max(taskorg_master_epoch{{{survivors}}})", lambda v: v > epoch, 30,
                      "the epoch gauge to go up")
    server.wait_value(f"sum(taskorg_master_elections_total{{{survivors}}})", lambda v: v >= elections + 2, 30,
                      "both surviving master services to count the election")
    server.wait_value("max(taskorg_dns_epoch)", lambda v: v > (dns_epoch or 0), 30, "the DNS services' epoch")
    server.wait_value(f'max(taskorg_dns_member_alive{{address="{master}"}})', lambda v: v == 0, 30,
                      "the arbiter to show the dead node")
    # The alert rules loaded and evaluate against these series.
    groups = server.api("rules")["groups"]
    assert {r["name"] for g in groups for r in g["rules"]} >= {"TaskorgNodeDead", "TaskorgMasterChanged"}
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), groups
