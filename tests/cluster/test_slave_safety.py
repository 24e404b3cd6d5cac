"""The slave's own safety against a real dockerd: policy at the door, container defaults, every
spec field in docker's view, health, result files, image pulls.

Proves (issues 15 and 16): crafted start orders posted straight to a running
slave service with a valid credential (privileged, host network, another
container's network, binds of / and of the docker socket, the cluster's own
ports) are refused with a message naming the field and create no container
(docker's own listing by the cluster label); every container runs with
no-new-privileges, a pids limit, NET_RAW dropped and a memory limit, and the
spec's fields as docker reports them; secret files are read-only in the
container and gone with it; a health check's status is reported and its
changes are fed at once; a result path that is a directory, a symlink, a fifo
or too large is named and not read; a pull from an unreachable or silent
registry ends with its reason within its deadline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import docker
import pytest
import requests

from taskorg import labels
from taskorg.slave.runner import DockerRunner
from taskorg.slave.runner.create_args import Site
from taskorg.slave.runner.docker_images import ensure_image
from tests.cluster.test_slave_runner import (SECRET, FakeMaster, address, cluster, free_port, http,  # noqa: F401
                                             master, order, order_data, reporter_for, state_of, wait_for)

pytestmark = pytest.mark.cluster


def volume(source: str, target: str = "/host", kind: str = "bind") -> dict[str, Any]:
    return {"source": source, "target": target, "read_only": False, "type": kind, "size": None}


@pytest.fixture
def site_runner(docker_client: docker.DockerClient, cluster: str, address: str, tmp_path: Path) -> DockerRunner:
    """A runner whose secret files go under this test's state dir."""
    site = Site(cluster, "node1", address, files_dir=str(tmp_path / "slave" / "files"))
    return DockerRunner(docker_client, cluster, "node1", site=site, pull_timeout=20)


@pytest.fixture
def slave_url(cluster: str, address: str, tmp_path: Path) -> Iterator[str]:
    """A slave service process of its own (strict default policy), its state under tmp_path."""
    port = free_port(address)
    env = {**os.environ, "TASKORG_SECRET": SECRET, "TASKORG_CLUSTER": cluster, "TASKORG_ADDRESS": address,
           "TASKORG_STATE_DIR": str(tmp_path), "TASKORG_SLAVE_PORT": str(port),
           "TASKORG_DNS_ADDRESS": "127.0.0.1", "TASKORG_DNS_PORT": str(free_port("127.0.0.1"))}
    (tmp_path / "node.json").write_text(json.dumps({"node": "node1", "number": 1, "address": address}))
    code = "from taskorg.config import load_config; from taskorg.slave.service import run; run(load_config())"
    with open(tmp_path / "slave.log", "ab") as log_file:  # read it when this test fails
        slave = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=log_file)
    url = f"http://{address}:{port}/v1/containers"
    session = http()
    session.headers["Authorization"] = f"Bearer {SECRET}"

    def up() -> bool:
        try:
            return session.get(url, timeout=1).ok
        except requests.RequestException:
            return False
    try:
        wait_for(up, timeout=20, what="the slave service")
        yield url
    finally:
        slave.kill()
        slave.wait(10)


CRAFTED = [
    ({"privileged": True}, "order field 'spec.privileged'"),
    ({"network": "host"}, "order field 'spec.network'"),
    ({"network": "container:" + "0" * 64}, "order field 'spec.network'"),
    ({"volumes": [volume("/")]}, "order field 'spec.volumes[0].source': host path / is refused: it gives the "
                                 "container the node's docker engine (never allowed)"),
    ({"volumes": [volume("/var/run/docker.sock", "/var/run/docker.sock")]},
     "order field 'spec.volumes[0].source': host path /var/run/docker.sock is refused: it gives the container "
     "the node's docker engine (never allowed)"),
    ({"volumes": [volume("/etc")]}, "order field 'spec.volumes[0]': host path /etc is refused by the cluster "
                                    "policy (the cluster setting allow_host_paths: true allows it)"),
    ({"cap_add": ["NET_RAW"]}, "order field 'spec.cap_add'"),
    ({"ports": [{"host": 23335, "container": 80, "protocol": "tcp", "host_ip": None}]},
     "order field 'spec.ports[0].host': port 23335 is refused: it is one of the cluster's own service ports"),
    ({"ports": [{"host": 80, "container": 80, "protocol": "tcp", "host_ip": None}]},
     "order field 'spec.ports[0].host': port 80 (below 1024) refused"),
]


def test_crafted_orders_are_refused_at_the_slave_and_create_nothing(slave_url: str, cluster: str,
                                                                   docker_client: docker.DockerClient) -> None:
    session = http()
    session.headers["Authorization"] = f"Bearer {SECRET}"
    for index, (changes, named) in enumerate(CRAFTED):
        answer = session.post(slave_url, json=order_data(task_id=f"t-evil{index:04d}", **changes), timeout=10)
        assert answer.status_code == 400, (changes, answer.text)
        assert answer.json()["error"].startswith(named), (changes, answer.json())
    mine = {"label": f"{labels.CLUSTER}={cluster}"}
    assert docker_client.containers.list(all=True, filters=mine) == []
    # The same door lets an ordinary order through, with the node's defaults.
    started = session.post(slave_url, json=order_data(task_id="t-0000good"), timeout=20)
    assert started.status_code == 201, started.text
    [container] = docker_client.containers.list(all=True, filters=mine)
    host = container.attrs["HostConfig"]
    assert (host["SecurityOpt"], host["PidsLimit"], host["CapDrop"], host["Memory"]) == \
        (["no-new-privileges"], 512, ["NET_RAW"], 512 * 1024**2)


def test_the_spec_fields_as_docker_sees_them_and_secret_files_gone_with_the_container(
        site_runner: DockerRunner, docker_client: docker.DockerClient, tmp_path: Path, address: str) -> None:
    port = free_port(address)
    state = site_runner.start(order(
        command=["sh", "-c", "cat /run/secrets/token; echo; cat /etc/app.conf; echo; id -u; pwd; sleep 300"],
        labels={"team": "lab"}, stop_signal="SIGINT", stop_grace_period=2.0, user="1000", workdir="/tmp",
        cap_drop=["CHOWN"], resources={"cpus": 0.5, "memory": 64 * 1024**2},
        reservations={"cpus": 0.25, "memory": 32 * 1024**2},
        volumes=[{"source": "", "target": "/scratch", "read_only": False, "type": "tmpfs", "size": 1024**2}],
        ports=[{"host": port, "container": 80, "protocol": "tcp", "host_ip": address}],
        healthcheck={"test": ["CMD", "true"], "interval": 1.5, "timeout": 1.0, "retries": 2,
                     "start_period": 0.0, "start_interval": 5.0},
        secrets=[{"name": "token", "target": "/run/secrets/token", "content": "s3cret", "mode": None,
                  "uid": None, "gid": None}],
        configs=[{"name": "app", "target": "/etc/app.conf", "content": "x=1", "mode": 0o440,
                  "uid": "1000", "gid": None}]))
    assert state["status"] == "running", state
    attrs = docker_client.containers.get(state["container_id"]).attrs
    config, host = attrs["Config"], attrs["HostConfig"]
    assert config["Labels"]["team"] == "lab" and config["Labels"][labels.STOP_GRACE] == "2"
    assert (config["StopSignal"], config["User"], config["WorkingDir"]) == ("SIGINT", "1000", "/tmp")
    assert config["Healthcheck"]["Test"] == ["CMD", "true"] and config["Healthcheck"]["Interval"] == 1_500_000_000
    assert sorted(host["CapDrop"]) == ["CHOWN", "NET_RAW"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert (host["Memory"], host["NanoCpus"], host["MemoryReservation"]) == (64 * 1024**2, 500_000_000, 0)
    assert host["Tmpfs"] == {"/scratch": "size=1048576"}
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": address, "HostPort": str(port)}]}
    output = wait_for(lambda: len(site_runner.logs("t-0000aaaa", 0).split()) >= 4 and site_runner.logs("t-0000aaaa", 0),
                      what="the task's output")
    assert output.split() == ["s3cret", "x=1", "1000", "/tmp"]
    files = tmp_path / "slave" / "files" / state["name"]
    assert oct(files.stat().st_mode & 0o777) == "0o700"
    assert oct((files / "config-0").stat().st_mode & 0o777) == "0o440" and (files / "config-0").stat().st_uid == 1000
    started = time.monotonic()
    assert site_runner.stop([state["container_id"]]) == [state["container_id"]]
    assert time.monotonic() - started < 10  # SIGINT ends sh -c at once; never the 10 s default
    assert not files.exists()


def test_health_is_reported_and_its_changes_are_fed(site_runner: DockerRunner) -> None:
    feed = site_runner.changes()
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(feed), daemon=True)
    reader.start()
    try:
        state = site_runner.start(order(
            command=["sh", "-c", "touch /tmp/ok; sleep 3; rm /tmp/ok; sleep 300"],
            healthcheck={"test": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 0.3, "timeout": 1.0, "retries": 1,
                         "start_period": 0.0, "start_interval": 5.0}))
        assert state["status"] == "running" and state["health"] == "starting", state
        cid = state["container_id"]
        wait_for(lambda: state_of(site_runner, cid)["health"] == "healthy", what="healthy")
        wait_for(lambda: state_of(site_runner, cid)["health"] == "unhealthy", timeout=15, what="unhealthy")
        wait_for(lambda: seen.count(cid) >= 2, what="both health changes in the feed")
    finally:
        feed.close()
    plain = site_runner.start(order(task_id="t-0000cccc"))
    assert plain["health"] is None  # no check, no health


def test_the_reporter_sends_a_health_change_at_once(site_runner: DockerRunner, master: FakeMaster,
                                                     tmp_path: Path, address: str) -> None:
    state = site_runner.start(order(
        command=["sh", "-c", "sleep 2; touch /tmp/ok; sleep 300"],
        healthcheck={"test": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 0.3, "timeout": 1.0, "retries": 100,
                     "start_period": 0.0, "start_interval": 5.0}))
    reporter = reporter_for(site_runner, master, tmp_path, address, interval=60)  # only the first resync runs
    reporter.start()
    try:
        wait_for(lambda: master.reports, what="the first report")
        assert master.reports[0]["containers"][0]["health"] == "starting"
        healthy = wait_for(lambda: next((c for r in master.reports for c in r["containers"]
                                         if c["container_id"] == state["container_id"] and c["health"] == "healthy"),
                                        None), timeout=10, what="a report of the healthy container")
        assert healthy["status"] == "running"
    finally:
        reporter.stop()


RESULTS = [
    ("mkdir -p $R/a/b && for i in $(seq 200); do head -c 100000 /dev/zero > $R/a/f$i; done",
     "is a directory, not one regular file: not read"),
    ("ln -s /etc/passwd $R", "is a symlink, not one regular file: not read"),
    ("mkfifo $R", "is a fifo, not one regular file: not read"),
    ("head -c 70000 /dev/zero > $R", "is larger than 65536 bytes"),
    ("yes '[' | tr -d '\\n' | head -c 40000 > $R", "nests deeper than 64 levels: not read"),
]


@pytest.mark.parametrize("script, error", RESULTS)
def test_a_result_path_that_is_not_one_small_regular_file_is_named_not_read(
        site_runner: DockerRunner, script: str, error: str) -> None:
    state = site_runner.start(order(command=["sh", "-c", f"R=$TASKORG_RESULT; {script}; exit 0"]))
    finished = wait_for(lambda: (s := state_of(site_runner, state["container_id"])) and s["status"] == "exited"
                        and s, timeout=30, what="the task to finish")
    assert finished["result"] is None and finished["result_error"] == f"result file /tmp/taskorg-result.json {error}"
    started = time.monotonic()
    restarted = DockerRunner(site_runner.client, site_runner.cluster, "node1", site=site_runner.site)
    assert state_of(restarted, state["container_id"])["result_error"] == finished["result_error"]
    assert time.monotonic() - started < 2  # read again as a restarted slave would: the stat alone


def test_a_small_result_is_read(site_runner: DockerRunner) -> None:
    state = site_runner.start(order(command=["sh", "-c", 'echo \'{"rows": 7}\' > $TASKORG_RESULT']))
    finished = wait_for(lambda: (s := state_of(site_runner, state["container_id"])) and s["status"] == "exited"
                        and s, what="the task to finish")
    assert (finished["result"], finished["result_error"]) == ({"rows": 7}, None)


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """A loopback port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    server.close()


def test_a_pull_from_an_unreachable_registry_says_why(docker_client: docker.DockerClient) -> None:
    started = time.monotonic()
    problem = ensure_image(docker_client, "127.0.0.1:1/none:latest", "node1", timeout=30)
    assert problem is not None and problem.startswith(
        "image 127.0.0.1:1/none:latest not found on node1 and could not be pulled: ")
    assert "127.0.0.1:1" in problem.split("could not be pulled: ", 1)[1]
    assert time.monotonic() - started < 30


def test_a_pull_that_stalls_ends_at_its_deadline(site_runner: DockerRunner, silent_registry: str) -> None:
    site_runner.pull_timeout = 1.5
    started = time.monotonic()
    state = site_runner.start(order(image=f"{silent_registry}/none:latest"))
    took = time.monotonic() - started
    assert state["status"] == "error"
    assert state["error"] == (f"image {silent_registry}/none:latest not found on node1 and could not be pulled: "
                              "the pull took longer than 1.5 s (setting image_pull_timeout)")
    assert 1.4 < took < 5


def test_files_of_containers_gone_while_the_slave_was_down_are_swept(site_runner: DockerRunner,
                                                                     tmp_path: Path) -> None:
    live = site_runner.start(order(secrets=[{"name": "t", "target": "/run/secrets/t", "content": "x",
                                             "mode": None, "uid": None, "gid": None}]))
    files = tmp_path / "slave" / "files"
    (files / "tk-gone-container").mkdir()
    (files / "tk-gone-container" / "secret-0").write_text("old")
    site_runner.sweep_files()
    assert sorted(entry.name for entry in files.iterdir()) == [live["name"]]


@pytest.fixture
def fake_registry() -> Iterator[tuple[str, list[str]]]:
    """A registry on loopback that asks for Basic credentials and records every Authorization header."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(self.headers.get("Authorization") or "")
            if not self.headers.get("Authorization"):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
            else:
                self.send_response(404)
            self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_pull_carries_the_registry_credentials_of_the_nodes_docker_config(
        fake_registry: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    registry, seen = fake_registry
    token = base64.b64encode(b"lab:pa55word").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # read by docker-py when the client is made
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=30)
    try:
        problem = ensure_image(client, f"{registry}/none:latest", "node1", timeout=20)
    finally:
        client.close()
    assert problem is not None and "could not be pulled" in problem
    assert f"Basic {token}" in seen, seen
