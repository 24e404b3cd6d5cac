"""The slave against a real dockerd: runner, fence, HTTP app and reporter.

Every test uses its own cluster label (`test-<random>`) and removes exactly
the containers and volumes carrying it, so parallel runs and other clusters
on the same engine are never touched.
"""

from __future__ import annotations

import random
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import docker
import pytest
import requests
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from taskorg import labels
from taskorg.config import Config, load_config
from taskorg.devtools.images import LATEST, REPOSITORY, content_hash
from taskorg.protocol import StartOrder, convert
from taskorg.slave.fence import EpochFence
from taskorg.slave.reporter import Reporter
from taskorg.slave.runner import DockerRunner
from taskorg.slave.service import create_app, docker_client as make_docker_client
from taskorg.spec import RestartPolicy, TaskSpec

pytestmark = pytest.mark.cluster

SECRET = "s" * 32


# ---- fixtures and helpers ------------------------------------------------
@pytest.fixture
def cluster(docker_client: docker.DockerClient, busybox_image: str) -> Iterator[str]:
    """A unique cluster name; its containers and volumes are removed afterwards."""
    name = f"test-{secrets.token_hex(4)}"
    yield name
    selector = {"label": f"{labels.CLUSTER}={name}"}
    for container in docker_client.containers.list(all=True, filters=selector, ignore_removed=True):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
    for volume in docker_client.volumes.list(filters=selector):
        volume.remove(force=True)


@pytest.fixture
def address() -> str:
    """A loopback address of its own (127.0.x.y), as a node in the local cluster has."""
    return f"127.0.{random.randint(20, 250)}.{random.randint(2, 250)}"


@pytest.fixture
def runner(docker_client: docker.DockerClient, cluster: str, address: str) -> DockerRunner:
    return DockerRunner(docker_client, cluster, "node1", address=address)


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def spec(command: list[str] | None = None, **changes: Any) -> dict[str, Any]:
    """A task spec in its canonical form (as the master sends it), with `changes`."""
    base = TaskSpec(name="web", image=LATEST, command=tuple(command or ["sleep", "300"]), env={"K": "V"},
                    restart=RestartPolicy(policy="never", max_attempts=None)).to_dict()
    base.update(changes)
    return base


def order_data(task_id: str = "t-0000aaaa", index: int = 0, attempt: int = 1, epoch: int = 1,
               **spec_changes: Any) -> dict[str, Any]:
    """A start order as the wire carries it (what the master posts)."""
    return {"epoch": epoch, "task_id": task_id, "index": index, "attempt": attempt, "job": "j-0000bbbb",
            "spec": spec(**spec_changes), "env": {"FROM_ORDER": "yes"}}


def order(task_id: str = "t-0000aaaa", index: int = 0, attempt: int = 1, epoch: int = 1,
          **spec_changes: Any) -> StartOrder:
    """A start order as the slave's door hands it to the runner."""
    return convert(order_data(task_id, index, attempt, epoch, **spec_changes), StartOrder)


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(runner: DockerRunner, container_id: str) -> dict[str, Any] | None:
    return next((s for s in runner.list() if s["container_id"] == container_id), None)


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never through a proxy: these are loopback addresses
    return session


# ---- image -----------------------------------------------------------------
def test_busybox_image_is_cached_by_content(docker_client: docker.DockerClient, busybox_image: str) -> None:
    from taskorg.devtools.images import BUSYBOX, ensure_busybox_image

    versioned = f"{REPOSITORY}:{content_hash(BUSYBOX.read_bytes())}"
    before = docker_client.images.get(versioned).id
    assert ensure_busybox_image(docker_client) == LATEST
    assert docker_client.images.get(versioned).id == before
    assert docker_client.images.get(LATEST).id == before
    out = docker_client.containers.run(LATEST, ["sh", "-c", "id nobody; test -d /tmp && which wget"], remove=True,
                                      labels={"taskorg.test": "image-check"})
    assert b"uid=65534(nobody)" in out and b"/usr/bin/wget" in out


def test_busybox_image_is_rebuilt_when_the_recipe_changes(docker_client: docker.DockerClient,
                                                          busybox_image: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from taskorg.devtools import images

    binary = images.BUSYBOX.read_bytes()
    current = docker_client.images.get(LATEST).id
    monkeypatch.setattr(images, "RECIPE_VERSION", f"test-{secrets.token_hex(4)}")
    changed = f"{REPOSITORY}:{images.content_hash(binary)}"
    try:
        images.ensure_busybox_image(docker_client)
        rebuilt = docker_client.images.get(changed)
        assert rebuilt.id != current and LATEST in rebuilt.tags
    finally:
        monkeypatch.undo()
        images.ensure_busybox_image(docker_client)  # latest back to the real recipe
        docker_client.images.remove(changed)
    assert docker_client.images.get(LATEST).id == current


# ---- runner ----------------------------------------------------------------
def test_start_labels_env_and_resources(runner: DockerRunner, docker_client: docker.DockerClient,
                                        cluster: str) -> None:
    state = runner.start(order(resources={"cpus": 0.5, "memory": 64 * 1024 * 1024}, workdir="/tmp",
                               user="nobody"))
    assert state["status"] == "running", state
    assert state["name"] == f"tk-{cluster}-node1-t-0000aaaa-0-a1"
    assert (state["task_id"], state["index"], state["attempt"], state["epoch"], state["job"]) == \
        ("t-0000aaaa", 0, 1, 1, "j-0000bbbb")
    assert state["image"] == LATEST and state["exit_code"] is None and state["started_at"].endswith("Z")

    attrs = docker_client.containers.get(state["container_id"]).attrs
    assert attrs["Config"]["Labels"] == {
        labels.CLUSTER: cluster, labels.NODE: "node1", labels.TASK: "t-0000aaaa",
        labels.INSTANCE: "t-0000aaaa/0", labels.EPOCH: "1", labels.ATTEMPT: "1", labels.JOB: "j-0000bbbb",
        labels.STOP_GRACE: "10",
    }
    env = set(attrs["Config"]["Env"])
    assert {"K=V", "FROM_ORDER=yes", "TASKORG_TASK_ID=t-0000aaaa", "TASKORG_INDEX=0",
            "TASKORG_NODE=node1"} <= env
    host = attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 64 * 1024 * 1024
    assert host["RestartPolicy"]["Name"] in ("", "no")
    assert attrs["Config"]["WorkingDir"] == "/tmp" and attrs["Config"]["User"] == "nobody"


def test_no_resources_means_the_node_defaults(runner: DockerRunner, docker_client: docker.DockerClient) -> None:
    state = runner.start(order())
    host = docker_client.containers.get(state["container_id"]).attrs["HostConfig"]
    assert host["NanoCpus"] == 0 and host["Memory"] == 512 * 1024 * 1024 and host["PidsLimit"] == 512
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["CapDrop"] == ["NET_RAW"]


def test_ports_are_published_on_the_node_address(runner: DockerRunner, docker_client: docker.DockerClient,
                                                 address: str) -> None:
    port = free_port(address)
    command = ["sh", "-c", "echo hello-from-task > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"]
    state = runner.start(order(command=command, ports=[{"host": port, "container": 8080, "protocol": "tcp"},
                                                       {"host": None, "container": 8080, "protocol": "tcp"}]))
    assert state["status"] == "running", state
    bindings = docker_client.containers.get(state["container_id"]).attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {b["HostIp"] for b in bindings} == {address}
    ephemeral = next(int(b["HostPort"]) for b in bindings if int(b["HostPort"]) != port)

    session = http()

    def fetch(host_port: int) -> str | None:
        try:
            return session.get(f"http://{address}:{host_port}/index.html", timeout=1).text
        except requests.RequestException:
            return None

    assert "hello-from-task" in wait_for(lambda: fetch(port), what="the published port")
    assert "hello-from-task" in wait_for(lambda: fetch(ephemeral), what="the ephemeral port")
    # Bound to the node's address only, not to every interface.
    with pytest.raises(requests.RequestException):
        session.get(f"http://127.0.0.1:{port}/index.html", timeout=1)


def test_named_volume_is_mounted_and_labelled(runner: DockerRunner, docker_client: docker.DockerClient,
                                              cluster: str) -> None:
    volume = f"{cluster}-data"
    state = runner.start(order(command=["sh", "-c", "echo kept > /data/f && cat /data/f"],
                               volumes=[{"source": volume, "target": "/data", "read_only": False, "type": "volume"}]))
    wait_for(lambda: (state_of(runner, state["container_id"]) or {}).get("status") == "exited", what="exit")
    assert runner.logs("t-0000aaaa", 0, 10).strip() == "kept"
    assert docker_client.volumes.get(volume).attrs["Labels"][labels.CLUSTER] == cluster


def test_exit_code_and_times_are_reported(runner: DockerRunner) -> None:
    state = runner.start(order(command=["sh", "-c", "exit 3"]))
    final = wait_for(lambda: (s := state_of(runner, state["container_id"])) and s["status"] == "exited" and s,
                     what="the container to exit")
    assert final["exit_code"] == 3
    assert final["finished_at"].endswith("Z") and final["finished_at"] >= final["started_at"]
    assert final["error"] is None


def test_start_is_idempotent_per_attempt(runner: DockerRunner) -> None:
    first = runner.start(order())
    again = runner.start(order())
    assert again["container_id"] == first["container_id"]
    assert len(runner.list()) == 1


def test_a_new_attempt_removes_earlier_exited_attempts(runner: DockerRunner,
                                                      docker_client: docker.DockerClient) -> None:
    failed = runner.start(order(attempt=1, command=["sh", "-c", "exit 1"]))
    wait_for(lambda: (state_of(runner, failed["container_id"]) or {}).get("status") == "exited", what="exit")
    other_instance = runner.start(order(index=1, attempt=1, command=["sh", "-c", "exit 1"]))
    wait_for(lambda: (state_of(runner, other_instance["container_id"]) or {}).get("status") == "exited",
             what="exit")

    second = runner.start(order(attempt=2))
    assert second["status"] == "running" and second["attempt"] == 2
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(failed["container_id"])
    ids = {s["container_id"] for s in runner.list()}
    assert ids == {second["container_id"], other_instance["container_id"]}  # other instances untouched


def test_list_sees_only_its_own_cluster_and_node(runner: DockerRunner, docker_client: docker.DockerClient,
                                                 cluster: str, address: str) -> None:
    other_node = DockerRunner(docker_client, cluster, "node2", address=address)
    other_cluster_name = f"{cluster}-other"
    other_cluster = DockerRunner(docker_client, other_cluster_name, "node1", address=address)
    try:
        mine = runner.start(order())
        theirs = other_node.start(order())
        foreign = other_cluster.start(order())
        assert [s["container_id"] for s in runner.list()] == [mine["container_id"]]
        assert [s["container_id"] for s in other_node.list()] == [theirs["container_id"]]
        assert [s["container_id"] for s in other_cluster.list()] == [foreign["container_id"]]
    finally:
        for container in docker_client.containers.list(
                all=True, filters={"label": f"{labels.CLUSTER}={other_cluster_name}"}):
            container.remove(force=True)


def test_stop_removes_and_counts_missing_as_removed(runner: DockerRunner,
                                                   docker_client: docker.DockerClient) -> None:
    state = runner.start(order())
    removed = runner.stop([state["container_id"], "0123456789ab-not-there"])
    assert removed == [state["container_id"], "0123456789ab-not-there"]
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(state["container_id"])
    assert runner.list() == []


def test_stop_task_removes_every_instance_of_that_task_only(runner: DockerRunner) -> None:
    a0 = runner.start(order(index=0))
    a1 = runner.start(order(index=1, command=["sh", "-c", "exit 0"]))
    keep = runner.start(order(task_id="t-0000cccc"))
    assert sorted(runner.stop_task("t-0000aaaa")) == sorted([a0["container_id"], a1["container_id"]])
    assert [s["container_id"] for s in runner.list()] == [keep["container_id"]]


def test_stop_refuses_containers_of_other_nodes(runner: DockerRunner, docker_client: docker.DockerClient,
                                                cluster: str, address: str) -> None:
    other = DockerRunner(docker_client, cluster, "node2", address=address).start(order())
    assert runner.stop([other["container_id"]]) == []
    assert docker_client.containers.get(other["container_id"]).status == "running"


def test_logs_of_the_newest_attempt(runner: DockerRunner) -> None:
    # stdout and stderr are separate pipes: docker orders them only by arrival.
    script = "echo oops >&2; sleep 0.3; for i in 1 2 3 4 5; do echo line$i; done"
    state = runner.start(order(command=["sh", "-c", script]))
    wait_for(lambda: (state_of(runner, state["container_id"]) or {}).get("status") == "exited", what="exit")
    assert runner.logs("t-0000aaaa", 0, 200).split() == ["oops", "line1", "line2", "line3", "line4", "line5"]
    assert runner.logs("t-0000aaaa", 0, 2).split() == ["line4", "line5"]
    with pytest.raises(LookupError):
        runner.logs("t-0000aaaa", 9, 10)


def test_missing_image_is_an_error_state_not_an_exception(runner: DockerRunner) -> None:
    state = runner.start(order(image="taskorg/does-not-exist:1"))
    assert state["status"] == "error" and state["container_id"] is None
    assert state["error"].startswith("image taskorg/does-not-exist:1 not found on node1 and could not be pulled: ")
    assert runner.list() == []


def test_a_start_docker_refuses_is_an_error_state_and_leaves_nothing(runner: DockerRunner,
                                                                    address: str) -> None:
    port = free_port(address)
    first = runner.start(order(ports=[{"host": port, "container": 8080, "protocol": "tcp"}]))
    assert first["status"] == "running"
    clash = runner.start(order(task_id="t-0000dddd", ports=[{"host": port, "container": 8080, "protocol": "tcp"}]))
    assert clash["status"] == "error" and "cannot start container on node1" in clash["error"]
    assert [s["container_id"] for s in runner.list()] == [first["container_id"]]


def test_a_restarted_slave_adopts_its_containers(runner: DockerRunner, docker_client: docker.DockerClient,
                                                 cluster: str, address: str) -> None:
    state = runner.start(order())
    restarted = DockerRunner(docker_client, cluster, "node1", address=address)
    assert [s["container_id"] for s in restarted.list()] == [state["container_id"]]
    assert restarted.start(order())["container_id"] == state["container_id"]
    assert state_of(restarted, state["container_id"])["started_at"] == state["started_at"]  # not restarted


# ---- HTTP app and fence --------------------------------------------------
@pytest.fixture
def app_factory(runner: DockerRunner, tmp_path: Path, address: str) -> Callable[[], Flask]:
    config = load_config(environ={}, overrides={"address": address, "state_dir": str(tmp_path)})
    return lambda: create_app(config, SECRET, runner, EpochFence(tmp_path / "slave" / "epoch"))


AUTH = {"Authorization": f"Bearer {SECRET}"}


def test_app_requires_the_secret(app_factory: Callable[[], Flask]) -> None:
    client = app_factory().test_client()
    assert client.get("/v1/containers").status_code == 401
    assert client.get("/v1/containers", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/containers", headers=AUTH).status_code == 200


def test_app_start_list_logs_stop(app_factory: Callable[[], Flask]) -> None:
    client = app_factory().test_client()
    body = order_data(epoch=2, command=["sh", "-c", "echo via-http; sleep 300"])
    answer = client.post("/v1/containers", json=body, headers=AUTH)
    assert answer.status_code == 201, answer.json
    assert client.post("/v1/containers", json=body, headers=AUTH).json["container_id"] == answer.json["container_id"]
    listing = client.get("/v1/containers", headers=AUTH).json
    assert listing["epoch"] == 2 and listing["node"] == "node1"
    assert [c["container_id"] for c in listing["containers"]] == [answer.json["container_id"]]
    logs = wait_for(lambda: (r := client.get("/v1/containers/t-0000aaaa/0/logs?tail=5", headers=AUTH)).text
                    and r, what="logs")
    assert logs.mimetype == "text/plain" and logs.text.strip() == "via-http"
    assert client.get("/v1/containers/t-0000aaaa/7/logs", headers=AUTH).status_code == 404
    stopped = client.post("/v1/containers/stop", json={"epoch": 2, "task_id": "t-0000aaaa"}, headers=AUTH)
    assert stopped.json == {"removed": [answer.json["container_id"]]}
    assert client.get("/v1/containers", headers=AUTH).json["containers"] == []


def test_app_rejects_bad_orders(app_factory: Callable[[], Flask]) -> None:
    client = app_factory().test_client()
    missing = client.post("/v1/containers", json={"epoch": 1}, headers=AUTH)
    assert missing.status_code == 400 and "task_id" in missing.json["error"]
    bad = client.post("/v1/containers", json={**order_data(), "index": "zero"}, headers=AUTH)
    assert bad.status_code == 400 and "'index'" in bad.json["error"]
    broken = client.post("/v1/containers", json=order_data(ports=[{"host": 1}]), headers=AUTH)
    assert broken.status_code == 400 and "'spec'" in broken.json["error"]
    failed = client.post("/v1/containers", json=order_data(image="taskorg/nope:1"), headers=AUTH)
    assert failed.status_code == 200 and failed.json["status"] == "error"


def test_app_fences_older_masters_across_restarts(app_factory: Callable[[], Flask]) -> None:
    client = app_factory().test_client()
    assert client.post("/v1/epoch", json={"epoch": 4}, headers=AUTH).json == {"epoch": 4}

    restarted = app_factory().test_client()  # a new EpochFence on the same file
    for path, body in (("/v1/containers", order_data(epoch=3)),
                       ("/v1/containers/stop", {"epoch": 3, "task_id": "t-0000aaaa"}),
                       ("/v1/epoch", {"epoch": 3})):
        answer = restarted.post(path, json=body, headers=AUTH)
        assert answer.status_code == 409, path
        assert answer.json == {"error": "fenced: command from epoch 3, this slave has seen epoch 4", "epoch": 4}
    assert restarted.get("/v1/containers", headers=AUTH).json["containers"] == []
    assert restarted.post("/v1/containers", json=order_data(epoch=5), headers=AUTH).status_code == 201
    assert restarted.get("/v1/containers", headers=AUTH).json["epoch"] == 5


def test_app_telemetry(app_factory: Callable[[], Flask]) -> None:
    sample = app_factory().test_client().get("/v1/telemetry", headers=AUTH).json
    assert sample["node"] == "node1" and sample["speed"] > 0


def test_docker_over_tcp_is_refused() -> None:
    with pytest.raises(Exception, match="never exposed on TCP"):
        make_docker_client("tcp://127.0.0.1:2375")


# ---- reporter ----------------------------------------------------------------
class FakeMaster:
    """A master's /v1/reports endpoint on a real socket, answering what the test says."""

    def __init__(self, address: str) -> None:
        self.reports: list[dict[str, Any]] = []
        self.answer: dict[str, Any] = {"epoch": 1, "stop": []}
        self.port = free_port(address)
        app = Flask("fake-master")

        @app.post("/v1/reports")
        def reports() -> Any:
            assert request.headers["Authorization"] == f"Bearer {SECRET}"
            self.reports.append(request.get_json())
            return jsonify(self.answer)

        self.server = make_server(address, self.port, app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def master(address: str) -> Iterator[FakeMaster]:
    fake = FakeMaster(address)
    yield fake
    fake.close()


def reporter_for(runner: DockerRunner, master: FakeMaster, tmp_path: Path, address: str,
                 interval: float, resolve: Callable[[Config], str] | None = None) -> Reporter:
    # The fake master is a plain HTTP server: this reporter talks plain HTTP to it.
    # `interval`: the resync (and the retry of an undelivered report, at most 1 s).
    config = load_config(environ={}, overrides={"address": address, "state_dir": str(tmp_path), "tls": False,
                                                "master_port": master.port, "report_resync_interval": interval,
                                                "report_interval": min(interval, 1.0),
                                                "telemetry_history_step": max(10.0, 2 * interval)})
    return Reporter(config, SECRET, runner, EpochFence(tmp_path / "epoch"), resolve=resolve or (lambda c: address))


def test_reporter_reports_and_obeys_a_current_master(runner: DockerRunner, master: FakeMaster,
                                                     tmp_path: Path, address: str,
                                                     docker_client: docker.DockerClient) -> None:
    keep = runner.start(order(task_id="t-0000aaaa"))
    drop = runner.start(order(task_id="t-0000bbbb"))
    reporter = reporter_for(runner, master, tmp_path, address, interval=0.2)
    master.answer = {"epoch": 3, "stop": [drop["container_id"]]}
    reporter.start()
    try:
        wait_for(lambda: not state_of(runner, drop["container_id"]), what="the stop list to be obeyed")
        assert reporter.fence.highest == 3
        first = master.reports[0]
        assert first["node"] == "node1" and first["address"] == address
        assert {c["container_id"] for c in first["containers"]} == {keep["container_id"], drop["container_id"]}
        assert first["telemetry"]["node"] == "node1"

        # A stale master (epoch 2 < 3) is not obeyed.
        master.answer = {"epoch": 2, "stop": [keep["container_id"]]}
        count = len(master.reports)
        wait_for(lambda: len(master.reports) >= count + 3, what="more reports")
        assert docker_client.containers.get(keep["container_id"]).status == "running"
        assert reporter.fence.highest == 3
    finally:
        reporter.stop()


def test_reporter_never_removes_anything_without_a_master(runner: DockerRunner, master: FakeMaster,
                                                         tmp_path: Path, address: str) -> None:
    from taskorg.net.resolve import ResolveError

    def no_dns(config: Config) -> str:
        raise ResolveError("cluster DNS did not answer")

    state = runner.start(order())
    for resolve in (no_dns, lambda c: "127.0.0.1"):  # DNS down; master address unreachable
        reporter = reporter_for(runner, master, tmp_path, address, interval=0.1, resolve=resolve)
        reporter.start()
        time.sleep(0.6)
        reporter.stop()
        assert reporter.report_once() is False
    assert master.reports == []
    assert state_of(runner, state["container_id"])["status"] == "running"


def test_reporter_reports_at_once_when_a_container_dies(runner: DockerRunner, master: FakeMaster,
                                                       tmp_path: Path, address: str) -> None:
    state = runner.start(order(command=["sh", "-c", "sleep 1; exit 5"]))
    reporter = reporter_for(runner, master, tmp_path, address, interval=60)  # only the first resync runs
    reporter.start()
    try:
        wait_for(lambda: master.reports, what="the first report")
        died = wait_for(lambda: next((c for r in master.reports for c in r["containers"]
                                      if c["container_id"] == state["container_id"] and c["status"] == "exited"),
                                     None), timeout=8, what="a report after the container died")
        assert died["exit_code"] == 5
    finally:
        reporter.stop()


def test_the_change_feed_carries_starts_deaths_and_removals(runner: DockerRunner,
                                                            docker_client: docker.DockerClient) -> None:
    """docker's own event stream, filtered by docker on this cluster's and node's labels: a kill from
    outside taskorg is in it, and so is the removal that follows."""
    feed = runner.changes()
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(feed), daemon=True)
    reader.start()
    try:
        state = runner.start(order())
        cid = state["container_id"]
        wait_for(lambda: cid in seen, what="the start in the feed")
        count = seen.count(cid)
        docker_client.containers.get(cid).kill()  # outside taskorg
        wait_for(lambda: seen.count(cid) > count, what="the death in the feed")
        assert state_of(runner, cid)["status"] == "exited"  # not a cached "running"
        count = seen.count(cid)
        assert runner.stop([cid]) == [cid]
        wait_for(lambda: seen.count(cid) > count, what="the removal in the feed")
        other = DockerRunner(docker_client, runner.cluster, "node2", address=runner.address)
        other.start(order(task_id="t-0000dddd"))  # another node's container: not in this feed
        time.sleep(0.5)
        assert all(found == cid for found in seen)
    finally:
        feed.close()


def test_the_reporter_reports_a_kill_at_once_and_otherwise_once_per_resync(runner: DockerRunner, master: FakeMaster,
                                                                           tmp_path: Path, address: str,
                                                                           docker_client: docker.DockerClient) -> None:
    state = runner.start(order())
    reporter = reporter_for(runner, master, tmp_path, address, interval=1.0)
    reporter.start()
    try:
        wait_for(lambda: len(master.reports) >= 2, what="the first reports")
        time.sleep(0.5)
        count = len(master.reports)
        time.sleep(3.2)
        assert len(master.reports) - count in (3, 4)  # idle: one a second, the resync
        killed = time.monotonic()
        docker_client.containers.get(state["container_id"]).kill()
        wait_for(lambda: any(c["status"] == "exited" for c in master.reports[-1]["containers"]), timeout=2,
                 what="a report of the killed container")
        assert time.monotonic() - killed < 0.8  # the event, not the next resync
    finally:
        reporter.stop()


# ---- the service process -------------------------------------------------------
def test_service_process_waits_for_identity_and_adopts_after_restart(cluster: str, address: str,
                                                                     tmp_path: Path) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys

    port = free_port(address)
    env = {**os.environ, "TASKORG_SECRET": SECRET, "TASKORG_CLUSTER": cluster, "TASKORG_ADDRESS": address,
           "TASKORG_STATE_DIR": str(tmp_path), "TASKORG_SLAVE_PORT": str(port),
           "TASKORG_DNS_ADDRESS": "127.0.0.1", "TASKORG_DNS_PORT": str(free_port("127.0.0.1"))}
    code = "from taskorg.config import load_config; from taskorg.slave.service import run; run(load_config())"
    session = http()
    session.headers["Authorization"] = f"Bearer {SECRET}"
    url = f"http://{address}:{port}/v1/containers"

    def listing() -> dict[str, Any] | None:
        try:
            return session.get(url, timeout=1).json()
        except requests.RequestException:
            return None

    def start_slave() -> subprocess.Popen[bytes]:
        with open(tmp_path / "slave.log", "ab") as log_file:  # read it when this test fails
            return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=log_file)

    slave = start_slave()
    try:
        time.sleep(1.0)
        assert listing() is None and slave.poll() is None  # waiting for the node service
        (tmp_path / "node.json").write_text(json.dumps({"node": "node4", "number": 4, "address": address}))
        assert wait_for(listing, what="the slave service")["node"] == "node4"
        started = session.post(url, json=order_data(epoch=2), timeout=10).json()
        assert started["status"] == "running"

        slave.send_signal(signal.SIGTERM)
        slave.wait(10)
        slave = start_slave()
        adopted = wait_for(listing, what="the restarted slave service")
        assert adopted["epoch"] == 2  # the fence file survived
        assert [(c["container_id"], c["started_at"], c["status"]) for c in adopted["containers"]] == \
            [(started["container_id"], started["started_at"], "running")]  # adopted, not restarted
    finally:
        slave.kill()
        slave.wait(10)
