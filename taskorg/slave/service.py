"""The slave service (port 23334): the master's hands on this node.

Endpoints are those of docs/api.md's slave section. Commands carry the
master's epoch and pass the fence first, so a cut-off old master cannot undo
the new master's work. A start order is decoded as a typed `StartOrder`, then
held to this node's own copy of the cluster policy (runner/policy.py) before
any runner sees it: the door is the same for every caller. On start-up the
slave only lists and reports its labelled containers: what survived a
restart is adopted, never restarted.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import docker
import requests
from docker.errors import DockerException
from flask import Flask, Response, jsonify, request

from taskorg.config import Config, ConfigError
from taskorg.logs import get_logger
from taskorg.logstream import LogQuery, LogQueryError
from taskorg.metrics import http as probes, slave as metrics, telemetry as node_metrics
from taskorg.net import sdnotify
from taskorg.net.server import ApiError, create_service_app, serve, typed_body
from taskorg.net.streams import StreamSlots, stream_response
from taskorg.protocol import EpochCommand, StartOrder, StopRequest
from taskorg.secret import read_secret
from taskorg.slave import telemetry
from taskorg.slave.fence import EpochFence, Fenced
from taskorg.slave.reporter import Reporter
from taskorg.slave.runner import DockerRunner, NodePolicy, OrderError, Runner, check_start
from taskorg.slave.runner.create_args import Site
from taskorg.slave.standin import StandInRunner
from taskorg.spec import parse_size

log = get_logger("slave")

IDENTITY_FILE = "node.json"
# Of the slave's 8 HTTP workers, at most this many follow logs: starts, stops and listings keep the rest.
FOLLOW_LIMIT = 4
DOCKER_TIMEOUT = 30


def create_app(config: Config, secret: str, runner: Runner, fence: EpochFence) -> Flask:
    app = create_service_app("slave", secret)
    policy = NodePolicy.from_config(config)
    follows = StreamSlots(FOLLOW_LIMIT, "log follows on this slave")
    collect = telemetry.collector(config.advertise_cpus, config.state_dir, telemetry.docker_root_of(runner))

    def check_epoch(epoch: int) -> int:
        try:
            return fence.check(epoch)
        except Fenced as exc:
            raise ApiError(409, str(exc), epoch=exc.highest) from None

    @app.get("/v1/containers")
    def list_containers() -> Any:
        return jsonify(node=runner.node, epoch=fence.highest, containers=runner.list())

    @app.post("/v1/containers")
    def start_container() -> Any:
        order = typed_body(StartOrder, "start order")
        check_epoch(order.epoch)
        started = time.perf_counter()
        try:
            check_start(order.spec, policy)
            state = runner.start(order)
        except OrderError as exc:
            log.warning("start order refused", extra={"task": order.task_id, "error": str(exc)})
            metrics.STARTS.labels("refused").inc()
            raise ApiError(400, str(exc)) from None
        metrics.STARTS.labels("error" if state["status"] == "error" else "started").inc()
        metrics.START_SECONDS.observe(time.perf_counter() - started)
        # This node's clock when the start finished: a report listed before it cannot show the
        # container, and the master must not call it lost for that (see master/reconcile.py).
        state["answered"] = time.monotonic()
        # 201 when a container exists; a start that failed (status "error") is 200.
        return jsonify(state), 200 if state["status"] == "error" else 201

    @app.post("/v1/containers/stop")
    def stop_containers() -> Any:
        stop = typed_body(StopRequest, "stop request")
        check_epoch(stop.epoch)
        if stop.container_ids is not None:
            return jsonify(removed=runner.stop(stop.container_ids))
        if stop.task_id:
            return jsonify(removed=runner.stop_task(stop.task_id))
        raise ApiError(400, "expected 'container_ids' (a list) or 'task_id'")

    @app.get("/v1/containers/<task_id>/<int:index>/logs")
    def container_logs(task_id: str, index: int) -> Any:
        try:
            query = LogQuery.from_args(request.args)
        except LogQueryError as exc:
            raise ApiError(400, str(exc)) from None
        try:
            if query.follow:
                return stream_response(follows.hold(lambda: follow_container(runner, task_id, index, query)))
            text = runner.logs(task_id, index, query.tail, query.since, query.timestamps)
        except LookupError as exc:
            raise ApiError(404, str(exc)) from None
        return Response(text, mimetype="text/plain")

    @app.get("/v1/telemetry")
    def get_telemetry() -> Any:
        return jsonify(collect(runner.node))

    @app.post("/v1/epoch")
    def raise_epoch() -> Any:
        return jsonify(epoch=check_epoch(typed_body(EpochCommand, "epoch").epoch))

    def docker_unavailable(exc: Exception) -> Any:
        log.warning("docker engine error", extra={"error": str(exc)})
        return jsonify(error=f"docker engine error on {runner.node}: {exc}"), 503

    app.register_error_handler(DockerException, docker_unavailable)
    app.register_error_handler(requests.ConnectionError, docker_unavailable)
    probes.install(app, "slave", lambda: docker_unreachable(runner),
                   {"node": lambda: node_metrics.read(config.state_dir)})
    return app


def follow_container(runner: Runner, task_id: str, index: int, query: LogQuery) -> Iterator[bytes]:
    """The newest container's output as it is written, for at most `query.duration` seconds (then the
    client resumes from its last timestamp). LookupError at once when the instance has none here."""
    chunks = runner.follow_logs(task_id, index, query.tail, query.since, query.timestamps)
    close = getattr(chunks, "close", None)
    timer = threading.Timer(query.duration, close) if close else None
    if timer:
        timer.daemon = True
        timer.start()

    def chunks_until_closed() -> Iterator[bytes]:
        try:
            yield from chunks
        except (DockerException, requests.RequestException, OSError):
            return  # closed under the reader at the deadline, or the engine went away: the stream ends
        finally:
            if timer:
                timer.cancel()
            if close:
                close()

    return chunks_until_closed()


def docker_unreachable(runner: Runner) -> str | None:
    """Readiness: None when this node's runner can start containers (dockerd answers its ping)."""
    client = getattr(runner, "client", None)
    if client is None:
        return None  # the stand-in runner needs no engine
    try:
        answer = client.api.get(f"{client.api.base_url}/_ping", timeout=2)
    except (DockerException, requests.RequestException) as exc:
        return f"docker engine unreachable: {exc}"
    return None if answer.ok else f"docker engine answered its ping with HTTP {answer.status_code}"


def docker_client(socket: str) -> docker.DockerClient:
    """A client for the local engine; TCP is refused (the Docker API is never on the network)."""
    url = socket if "://" in socket else f"unix://{socket}"
    if not url.startswith("unix://"):
        raise ConfigError(f"setting 'docker_socket': only a local unix socket is allowed "
                          f"(unix:///var/run/docker.sock), got {socket!r}: the Docker API is never exposed on TCP")
    return docker.DockerClient(base_url=url, timeout=DOCKER_TIMEOUT)


def open_runner(config: Config, node: str) -> Runner:
    """The runner the setting `runner` names; a stand-in node needs no dockerd at all."""
    site = runner_site(config, node)
    if config.runner == "standin":
        return StandInRunner(config.cluster, node, address=config.node_address, site=site)
    client = docker_client(config.docker_socket)
    wait_for_docker(client)
    runner = DockerRunner(client, config.cluster, node, site=site, pull_timeout=config.image_pull_timeout)
    runner.sweep_files()
    return runner


def runner_site(config: Config, node: str) -> Site:
    """Where and with which defaults this node's containers run, from its settings."""
    return Site(config.cluster, node, config.node_address, config.shared_dir,
                files_dir=str(Path(config.state_dir) / "slave" / "files"),
                memory_limit=parse_size(config.default_memory_limit), pids_limit=config.default_pids_limit)


def wait_for_identity(config: Config, poll: float = 0.2, say_every: float = 5.0) -> dict[str, Any]:
    """This node's identity, written by the node service once it has registered."""
    path = Path(config.state_dir) / IDENTITY_FILE
    started = last_said = time.monotonic()
    while True:
        identity = read_identity(path)
        if identity:
            return identity
        now = time.monotonic()
        if now - last_said >= say_every:
            log.warning("waiting for the node service to register this node",
                        extra={"file": str(path), "waited": round(now - started)})
            last_said = now
        time.sleep(poll)


def wait_for_docker(client: docker.DockerClient, say_every: float = 5.0) -> None:
    """Block until the engine answers (dockerd may start after us at boot)."""
    started = last_said = time.monotonic()
    while True:
        try:
            client.ping()
            return
        except (DockerException, requests.RequestException) as exc:
            now = time.monotonic()
            if now - last_said >= say_every:
                log.warning("waiting for the docker engine", extra={"error": str(exc), "waited": round(now - started)})
                last_said = now
        time.sleep(1.0)


def read_identity(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not yet, or being written
        return None
    return data if isinstance(data, dict) and data.get("node") else None


REPORT_STALE_AFTER = 120.0


def run(config: Config) -> None:
    """Run the slave service until the process is stopped."""
    secret = read_secret(config)
    identity = wait_for_identity(config)
    node = identity["node"]
    runner = open_runner(config, node)
    fence = EpochFence(config.state_path("slave", "epoch"))
    telemetry.prime()
    reporter = Reporter(config, secret, runner, fence)
    # A report waits on dockerd and the master (each with timeouts): two minutes without one is a hang.
    sdnotify.process_watchdog().watch(lambda: reporter.beat.stale(REPORT_STALE_AFTER))
    reporter.start()
    app = create_app(config, secret, runner, fence)
    log.info("slave service ready", extra={"node": node, "address": config.node_address,
                                            "port": config.slave_port, "epoch": fence.highest,
                                            "containers": len(runner.list())})
    try:
        serve(app, config.node_address, config.slave_port)
    finally:
        reporter.stop()
        runner.close()
