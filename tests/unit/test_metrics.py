"""Metrics and probes (issue 17): who may read `/metrics`, what the master's scrape shows after real
submissions and ticks, how replication lag is aged, the node's FPGA, GPU and disk readings, and that
docs/metrics.md lists every metric the code defines."""

from __future__ import annotations

import re
import time
from contextlib import closing
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskorg.config import ConfigError, load_config
from taskorg.master.api import create_app
from taskorg.master.replication import Replicator
from taskorg.master.role import Role
from taskorg.metrics import master as master_metrics, telemetry
from taskorg.security import auth
from taskorg.security.policy import MONITOR, OPEN, required
from taskorg.security.tokens import TokenStore
from tickharness import TickHarness

SECRET = "a-cluster-secret-long-enough"
TLS = {"wsgi.url_scheme": "https", "REMOTE_ADDR": "192.168.7.9"}
JOB = "job: one\ntasks:\n  - name: x\n    image: busybox\n"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[TickHarness]:
    with closing(TickHarness(tmp_path)) as made:
        yield made


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


ROOT = Path(__file__).resolve().parents[2]
DEFINED = re.compile(r"\b(Counter|CounterMetricFamily|Histogram|GaugeMetricFamily|_?gauge)\(\s*\"(taskorg_\w+)\"")


def test_docs_list_every_metric_the_code_defines() -> None:
    """The dashboard and alert rules are written from docs/metrics.md: a metric missing there is unseen."""
    documented = set(re.findall(r"`(taskorg_\w+)`", (ROOT / "docs" / "metrics.md").read_text()))
    defined = {name + ("_total" if kind.startswith("Counter") else "")
               for path in (ROOT / "taskorg").rglob("*.py") for kind, name in DEFINED.findall(path.read_text())}
    assert len(defined) > 50
    assert not defined - documented, f"defined but not in docs/metrics.md: {sorted(defined - documented)}"


def test_every_service_lists_its_probes_in_the_route_table() -> None:
    for service in ("master", "dns", "slave", "node", "webview"):
        assert required(service, "GET", "/metrics") == MONITOR
        assert required(service, "GET", "/healthz") == OPEN
        assert required(service, "HEAD", "/readyz") == OPEN


def test_metrics_take_a_read_token_a_node_certificate_or_an_open_network(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    _, reader = store.create("grafana", "read")
    auth.use_tokens(store.path)
    try:
        assert auth.decide("slave", "GET", "/metrics", TLS, None, SECRET).status == 401
        assert auth.decide("slave", "GET", "/metrics", TLS, "Bearer wrong", SECRET).status == 401
        assert auth.decide("slave", "GET", "/metrics", TLS, f"Bearer {reader}", SECRET) is None
        assert auth.decide("slave", "GET", "/metrics", {**TLS, "SSL_CLIENT_VERIFY": "SUCCESS"}, None, SECRET) is None
        assert auth.decide("dns", "GET", "/healthz", TLS, None, SECRET) is None
        assert auth.decide("dns", "GET", "/readyz", TLS, None, SECRET) is None
        auth.open_metrics_to(("192.168.7.0/24", "10.0.0.5"))
        assert auth.decide("slave", "GET", "/metrics", TLS, None, SECRET) is None
        assert auth.decide("slave", "GET", "/metrics", {**TLS, "REMOTE_ADDR": "192.168.8.1"}, None, SECRET).status == 401
        # An open network opens the metrics only, never another route.
        assert auth.decide("master", "GET", "/v1/tasks", TLS, None, SECRET).status == 401
    finally:
        auth.open_metrics_to(())
        auth.use_tokens(None)


def test_open_networks_are_checked_at_load() -> None:
    config = load_config(overrides={"metrics_open_networks": "192.168.1.0/24, 10.0.0.5"}, environ={})
    assert config.metrics_open_networks == ("192.168.1.0/24", "10.0.0.5")
    with pytest.raises(ConfigError, match="metrics_open_networks': not an IP network: '192.168.1.0/33'"):
        load_config(overrides={"metrics_open_networks": ["192.168.1.0/33"]}, environ={})


def test_the_master_scrape_shows_tasks_placements_and_requests(harness: TickHarness) -> None:
    app = create_app(harness.engine).test_client()
    placed_before = master_metrics.PLACEMENTS._value.get()
    harness.submit(JOB)
    harness.tick()
    assert app.get("/metrics").status_code == 401
    answer = app.get("/metrics", headers={"Authorization": f"Bearer {harness.engine.secret}"})
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    found = samples(answer.get_data(as_text=True))
    assert found[("taskorg_tasks", (("status", "running"),))] == 1.0
    assert found[("taskorg_tasks", (("status", "failed"),))] == 0.0
    assert found[("taskorg_master_active", ())] == 1.0
    assert found[("taskorg_master_epoch", ())] == 1.0
    assert found[("taskorg_master_placements_total", ())] == placed_before + 1
    assert found[("taskorg_http_requests_total", (("code", "401"), ("method", "GET"), ("route", "/metrics")))] >= 1
    assert ("process_resident_memory_bytes", ()) in found


def test_readiness_names_why_a_standby_is_not_ready(harness: TickHarness) -> None:
    app = create_app(harness.engine).test_client()
    assert app.get("/readyz").get_json() == {"ready": True, "service": "master"}
    harness.engine.role = Role(active=False, epoch=3, node="node2")
    # No replication batch lately: a spare outside the master's standby set, nothing to catch up with.
    assert app.get("/readyz").get_json() == {"ready": True, "service": "master"}
    auth = {"Authorization": f"Bearer {harness.engine.secret}"}
    app.post("/v1/replica/apply", json={"epoch": 10 ** 18, "entries": []}, headers=auth)  # streamed to (refused)
    answer = app.get("/readyz")
    assert answer.status_code == 503
    assert "standby behind: its replica ends in epoch 0, the current epoch is 3" in answer.get_json()["reason"]
    assert app.get("/healthz").status_code == 200


def test_a_new_epoch_counts_an_election_and_a_renewal_its_latency(harness: TickHarness) -> None:
    elections = master_metrics.ELECTIONS._value.get()
    renewals = master_metrics.LEASE_RENEWALS._value.get()
    harness.engine.replicator.running = True  # a renewal of the lease it acts on: the fast path
    harness.engine.set_role(True, 1, time.monotonic() + 0.55, "node1", "127.0.9.2", "node1")
    assert master_metrics.LEASE_RENEWALS._value.get() == renewals + 1
    assert master_metrics.ELECTIONS._value.get() == elections
    harness.engine.set_role(False, 2, 0.0, "node2", "127.0.9.3", "node1")
    assert master_metrics.ELECTIONS._value.get() == elections + 1


def test_a_master_the_arbiter_still_names_is_worth_waiting_for_after_a_lapse(harness: TickHarness) -> None:
    engine = harness.engine
    engine.activated_epoch = 4
    engine.role = Role(active=True, epoch=4, lease_until=time.monotonic() - 0.1, master="node1", node="node1")
    assert not engine.role.valid() and engine.still_named()  # a renewal late: wait for it
    engine.role = Role(active=False, epoch=4, lease_until=0.0, master="node1", node="node1")
    assert engine.still_named()  # dropped for a beat by its node service, still named by the arbiter
    engine.role = Role(active=False, epoch=5, lease_until=0.0, master="node2", node="node1")
    assert not engine.still_named()  # another master now
    engine.role = Role(active=False, epoch=5, lease_until=0.0, master="node1", node="node1")
    assert not engine.still_named()  # named under an epoch it never acted on: activation decides
    engine.role = Role(active=True, epoch=4, lease_until=time.monotonic() + 1, master="node1", node="node1")
    assert not engine.still_named()  # valid: nothing to wait for


def test_replication_lag_counts_changes_and_ages_the_oldest_missing_one(harness: TickHarness) -> None:
    replicator: Replicator = harness.engine.replicator
    replicator.running = True
    replicator.standbys = lambda: {"node2": "127.0.9.3", "node3": "127.0.9.4"}  # type: ignore[method-assign]
    start = time.monotonic()
    replicator.commit_times.extend([(5, start - 3.0), (6, start - 2.0), (7, start - 1.0)])
    replicator.acked = {"node2": 7, "node3": 5}
    lag = replicator.lag(7)
    assert lag["node2"] == (0, 0.0)
    assert lag["node3"][0] == 2 and 1.9 <= lag["node3"][1] <= 2.5  # change 6 is the oldest it lacks


def test_fpga_managers_are_read_from_sysfs(tmp_path: Path) -> None:
    (tmp_path / "fpga0").mkdir()
    (tmp_path / "fpga0" / "name").write_text("Xilinx Zynq FPGA Manager\n")
    (tmp_path / "fpga0" / "state").write_text("operating\n")
    [family] = list(telemetry.fpgas(tmp_path))
    [sample] = family.samples
    assert sample.labels == {"device": "fpga0", "name": "Xilinx Zynq FPGA Manager", "state": "operating"}
    assert list(telemetry.fpgas(tmp_path / "absent"))[0].samples == []


def test_the_state_directory_disk_is_always_reported(tmp_path: Path) -> None:
    state = tmp_path / "not-yet" / "state"
    families = {f.name: f for f in telemetry.read(str(state), fpga_root=tmp_path / "none")}
    mounts = {s.labels["mount"]: s.labels["state_dir"] for s in families["taskorg_node_disk_used_ratio"].samples}
    assert mounts[telemetry.mount_of(str(tmp_path))] == "true"
    assert {s.labels["mode"] for s in families["taskorg_node_cpu_seconds"].samples} >= {"user", "system", "idle"}


def test_gpus_export_utilisation_and_memory_total_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = {"name": "Tesla T4", "memory_total": 16 << 30, "memory_used": 3 << 30, "utilization": 42.0}
    monkeypatch.setattr(telemetry.telemetry, "gpus", lambda: [gpu, {"name": "old", "memory_total": None,
                                                                   "memory_used": None, "utilization": None}])
    families = {f.name: f for f in telemetry._gpus()}
    labels = {"gpu": "0", "name": "Tesla T4"}

    def only(name: str) -> list[tuple[dict[str, str], float]]:
        return [(s.labels, s.value) for s in families[name].samples]
    assert only("taskorg_node_gpu_utilization_ratio") == [(labels, 0.42)]  # a GPU that answers [N/A]: no sample
    assert only("taskorg_node_gpu_memory_total_bytes") == [(labels, 16 << 30)]
    assert only("taskorg_node_gpu_memory_used_bytes") == [(labels, 3 << 30)]


def test_the_webview_probes_need_no_login_and_its_metrics_a_credential(tmp_path: Path) -> None:
    from taskorg.webview import create_app as webview_app

    config = load_config(overrides={"state_dir": str(tmp_path)}, environ={})
    app = webview_app(config, SECRET, api_factory=lambda *_: None).test_client()  # type: ignore[arg-type,return-value]
    assert app.get("/healthz").get_json() == {"ok": True, "service": "webview"}
    assert app.get("/readyz").status_code == 200
    assert app.get("/metrics").status_code == 401
    answer = app.get("/metrics", headers={"Authorization": f"Bearer {SECRET}"})
    assert answer.status_code == 200 and "taskorg_http_requests_total" in answer.get_data(as_text=True)
    assert app.get("/").status_code == 302  # every other page still asks for the login
