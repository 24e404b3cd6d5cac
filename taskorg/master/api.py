"""The master service's HTTP API (docs/api.md, "Master service").

Two blueprints: `client` (jobs, tasks, events, members, status: what the
CLI, the webview and scripts call) and `cluster` (reports, role, replica,
state: what slaves, the node service and other masters call). Cluster
messages are decoded into the types of `taskorg.protocol` at the door.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from taskorg.master import state
from taskorg.master.engine import Engine
from taskorg.master.events import sse_stream, wait_events
from taskorg.master.forward import install_forwarding
from taskorg.master.log_routes import log_routes
from taskorg.master.replication import Refused, admit_epoch, apply_on_standby, check_batch
from taskorg.master.role import NotMaster
from taskorg.master.state import NoSuchJob, NoSuchTask
from taskorg.master.store import BadChange, GapError
from taskorg.master.updates import NoPreviousSpec, NoRunningJob, UpdateRefused
from taskorg.master.views import job_detail, job_summaries, member_rows, node_history, task_detail, task_summaries
from taskorg.metrics import http as probes, master as master_metrics
from taskorg.net.server import ApiError, create_service_app, request_json, typed_body, whole_number
from taskorg.net.streams import StreamSlots, stream_response
from taskorg.protocol import ReplicationBatch, Report, RolePush, to_wire
from taskorg.spec import JobSpec, SpecError, SpecPolicy, job_from_dict, parse_spec_text

MAX_SPEC_BYTES = 1024 * 1024
MAX_JOBS_LISTED = 10_000
# Long answers at once (log follows, event streams, waiting long polls): fewer than the public
# listener's worker threads (taskorg.master.service.CLIENT_THREADS), so submissions and reads always
# find one free; the cluster's own traffic has a listener of its own (taskorg/net/listeners.py).
MAX_FOLLOWERS = 8
# A standby that got a replication batch this recently is in the master's standby set (it is sent
# one at least every change, and snapshot parts while it catches up); one that got none is a spare.
STREAMED_WITHIN = 10.0


class ReplicaContact:
    """When this master service last received a replication batch (monotonic; 0: never)."""

    def __init__(self) -> None:
        self.at = 0.0

    def seen(self) -> None:
        self.at = time.monotonic()

    def recent(self) -> bool:
        return self.at > 0 and time.monotonic() - self.at <= STREAMED_WITHIN


def create_app(engine: Engine) -> Flask:
    app = create_service_app("master", engine.secret)
    app.config["MAX_CONTENT_LENGTH"] = 16 * MAX_SPEC_BYTES
    install_forwarding(app, engine)

    @app.errorhandler(NotMaster)
    def _not_master(exc: NotMaster) -> Any:
        node, address = engine.current_master()
        return jsonify(error=str(exc), master=node, address=address), 409

    @app.errorhandler(NoSuchTask)
    def _unknown(exc: NoSuchTask) -> Any:
        return jsonify(error=f"no such task: {exc.task_id}"), 404

    @app.errorhandler(NoSuchJob)
    def _unknown_job(exc: NoSuchJob) -> Any:
        return jsonify(error=f"no such job: {exc.job_id}"), 404

    @app.errorhandler(UpdateRefused)
    @app.errorhandler(NoPreviousSpec)
    def _conflict(exc: Exception) -> Any:
        return jsonify(error=str(exc)), 409

    @app.errorhandler(NoRunningJob)
    def _nothing_to_update(exc: NoRunningJob) -> Any:
        return jsonify(error=str(exc)), 404

    streams = StreamSlots(MAX_FOLLOWERS, "streams on this master (log follows, event streams and long polls)")
    app.register_blueprint(client_routes(engine, streams))
    app.register_blueprint(log_routes(engine, streams))
    contact = ReplicaContact()
    app.register_blueprint(cluster_routes(engine, contact))
    probes.install(app, "master", lambda: readiness(engine, contact),
                   {"master": lambda: master_metrics.read(engine)})
    return app


def readiness(engine: Engine, contact: ReplicaContact | None = None) -> str | None:
    """Ready: the active master, a standby that follows the current epoch (it applied the active
    master's first change, so its replica is that master's and catches up from there), or a spare
    (the master streams to a bounded set of standbys, taskorg.master.standbys, and sent this one
    nothing lately: it has nothing to catch up with until it is chosen)."""
    role = engine.role
    if role.valid():
        return None
    if role.epoch == 0:
        return "no role yet: the node service has not told this master service who is master"
    epoch = engine.store.position()[0]
    if epoch < role.epoch and (contact is None or contact.recent()):
        return f"standby behind: its replica ends in epoch {epoch}, the current epoch is {role.epoch}"
    return None


# ---- client routes -------------------------------------------------------------------------------
def client_routes(engine: Engine, streams: StreamSlots) -> Blueprint:
    routes = Blueprint("client", __name__)
    policy = SpecPolicy.from_config(engine.config)

    @routes.post("/v1/jobs")
    def submit() -> Any:
        try:
            job = parse_submission(policy)
        except SpecError as exc:
            return jsonify(error=str(exc), problems=[dataclasses.asdict(p) for p in exc.problems]), 400
        if request.args.get("dry_run") in ("1", "true", "yes"):
            engine.require_active()
            return jsonify(job=job.name, placements=engine.preview(job))
        request_id = request.headers.get("Idempotency-Key") or None
        if request_id and len(request_id) > 200:
            raise ApiError(400, "Idempotency-Key: at most 200 characters")
        update_only = request.args.get("update") in ("1", "true", "yes")
        answer = engine.submit(job, request.args.get("source") or "<request>", request_id, update_only)
        if not answer["replicated"]:
            return jsonify(error="the submission is stored on the master but no standby confirmed it in time; "
                                 "it may be lost if the master dies now", **answer), 503
        return jsonify(answer), 200 if "update" in answer else 201

    @routes.get("/v1/jobs")
    def jobs() -> Any:
        engine.require_active()
        limit_text, before_text = request.args.get("limit", "100"), request.args.get("before")
        limit = whole_number(limit_text)
        if limit is None or not 1 <= limit <= MAX_JOBS_LISTED:
            raise ApiError(400, f"limit: expected a whole number from 1 to {MAX_JOBS_LISTED}, got {limit_text!r:.40}")
        before = None
        if before_text is not None:
            try:
                before = float(before_text)
            except ValueError:
                raise ApiError(400, f"before: expected a time (seconds since the epoch), got {before_text!r}") from None
        return jsonify(jobs=job_summaries(engine.store, limit, before))

    @routes.get("/v1/jobs/<job_id>")
    def job(job_id: str) -> Any:
        engine.require_active()
        return jsonify(job_detail(engine.store, engine.reasons, job_id))

    @routes.post("/v1/jobs/<job_id>/rollback")
    def rollback(job_id: str) -> Any:
        """Back to the previous spec of every updated task (409 when the job was never updated)."""
        return jsonify(engine.rollback(job_id))

    @routes.delete("/v1/jobs/<job_id>")
    def cancel_job(job_id: str) -> Any:
        return jsonify(engine.cancel_job(job_id))

    @routes.get("/v1/tasks")
    def tasks() -> Any:
        engine.require_active()
        filters = {key: request.args.get(key) for key in ("state", "node", "name", "job")}
        return jsonify(tasks=task_summaries(engine.store, engine.reasons, **filters))

    @routes.get("/v1/tasks/<task_id>")
    def task(task_id: str) -> Any:
        engine.require_active()
        return jsonify(task_detail(engine.store, engine.reasons, task_id))

    @routes.delete("/v1/tasks/<task_id>")
    def cancel(task_id: str) -> Any:
        return jsonify(engine.cancel(task_id))

    @routes.post("/v1/tasks/<task_id>/restart")
    def restart(task_id: str) -> Any:
        return jsonify(engine.restart(task_id))

    @routes.get("/v1/events")
    def events() -> Any:
        since_text, wait = request.args.get("since", "0"), request.args.get("wait", "0")
        since = whole_number(since_text)
        if since is None:
            raise ApiError(400, f"since: expected an event id (a whole number), got {since_text!r:.40}")
        try:
            seconds = min(30.0, max(0.0, float(wait)))
        except ValueError:
            raise ApiError(400, f"wait: expected seconds, got {wait!r}") from None
        busy = seconds > 0 and not streams.try_take()
        if busy or seconds <= 0:
            found = wait_events(engine, since, 0.0)  # every place taken: answer at once, no wait
        else:
            try:
                found = wait_events(engine, since, seconds)
            finally:
                streams.give_back()
        # `busy`: the wait was not granted; a follower pauses before it asks again.
        return jsonify(events=found, last=found[-1]["id"] if found else since, busy=busy)

    @routes.get("/v1/events/stream")
    def event_stream() -> Any:
        engine.require_active()
        since_text = request.headers.get("Last-Event-ID") or request.args.get("since", "0")
        since = whole_number(since_text)
        if since is None:
            raise ApiError(400, f"since / Last-Event-ID: expected an event id, got {since_text!r:.40}")
        return stream_response(streams.hold(lambda: sse_stream(engine, since)), "text/event-stream")

    @routes.post("/v1/prune")
    def prune() -> Any:
        """Remove finished jobs past their retention now (admin; the master also does it every minute)."""
        return jsonify(removed=engine.prune())

    @routes.get("/v1/members")
    def members() -> Any:
        with_history = flag_arg("history")
        engine.members.refresh()
        return jsonify(members=member_rows(engine, with_history), master=engine.members.view.get("master"),
                       epoch=engine.members.view.get("epoch"))

    @routes.get("/v1/nodes/<node>/history")
    def history(node: str) -> Any:
        """The node's telemetry of the last hour, one point per step (kept in memory: see master/history.py)."""
        engine.require_active()
        engine.members.refresh()
        known = {m["node"] for m in engine.members.members()} | set(engine.telemetry_book.history.nodes())
        if node not in known:
            raise ApiError(404, f"no node {node!r} (known: {', '.join(sorted(known)) or 'none'})")
        return jsonify(node_history(engine, node))

    @routes.get("/v1/status")
    def status() -> Any:
        epoch, seq = engine.store.position()
        return jsonify(active=engine.role.valid(), master=engine.role.master, epoch=engine.role.epoch,
                       node=engine.role.node, seq=seq, counts=state.status_counts(engine.store),
                       last_event=state.last_history_id(engine.store), replicas=engine.replicator.positions(),
                       standbys=engine.replicator.standby_set())

    return routes


def flag_arg(name: str) -> bool:
    """A yes/no query parameter: absent, 0/false/no or 1/true/yes; anything else is a 400 naming it."""
    value = request.args.get(name, "0").strip().lower()
    if value not in FLAG_WORDS:
        raise ApiError(400, f"query {name!r}: expected 1 or 0 (true/false, yes/no), got {value[:40]!r}")
    return FLAG_WORDS[value]


FLAG_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


def parse_submission(policy: SpecPolicy) -> JobSpec:
    """The submitted job: a JSON object (a task or a job) or YAML text; SpecError says what is wrong."""
    source = request.args.get("source") or "<request>"
    if request.is_json:
        data = request_json()
        if not isinstance(data, dict):
            raise ApiError(400, f"{source}: expected a JSON object (a task or a job)")
        return job_from_dict(data, source=source, policy=policy)
    text = request.get_data(as_text=True)
    if len(text.encode()) > MAX_SPEC_BYTES:
        raise ApiError(413, f"{source}: the spec is larger than {MAX_SPEC_BYTES // 1024} KiB")
    return parse_spec_text(text, source=source, policy=policy)


# ---- cluster-internal routes ---------------------------------------------------------------------
def cluster_routes(engine: Engine, contact: ReplicaContact | None = None) -> Blueprint:
    routes = Blueprint("cluster", __name__)
    contact = contact or ReplicaContact()

    @routes.post("/v1/reports")
    def reports() -> Any:
        report = typed_body(Report, "report")
        if not engine.role.valid():
            raise NotMaster(engine.not_master_message())
        stop = engine.on_report(report.node, report.containers, report.telemetry, listed=report.listed)
        return jsonify(epoch=engine.role.epoch, stop=stop, removed_jobs=engine.jobs.recently_pruned())

    @routes.post("/v1/role")
    def role() -> Any:
        return jsonify(to_wire(engine.take_role(typed_body(RolePush, "role"))))

    @routes.get("/v1/replica")
    def replica() -> Any:
        epoch, seq = engine.store.position()
        return jsonify(epoch=epoch, seq=seq)

    @routes.post("/v1/replica/apply")
    def replica_apply() -> Any:
        batch = typed_body(ReplicationBatch, "replication batch")
        contact.seen()
        try:
            admit_epoch(batch.epoch, engine.store.fence_epoch(), engine.role, engine.members.granted_epoch)
            check_batch(batch)
        except Refused as exc:
            raise ApiError(exc.status, str(exc)) from None
        except BadChange as exc:
            raise ApiError(400, f"replication batch refused: {exc}") from None
        if engine.role.active:
            role = engine.role
            engine.set_role(False, role.epoch, 0.0, role.master, role.master_address, role.node)
        try:
            position = apply_on_standby(engine.store, batch)
        except GapError as exc:
            return jsonify(error=f"gap: {exc}", gap=True, seq=engine.store.position()[1]), 409
        except BadChange as exc:
            raise ApiError(400, f"replication batch refused: {exc}") from None
        return jsonify(epoch=position[0], seq=position[1])

    @routes.get("/v1/state")
    def whole_state() -> Any:
        """The whole state (debugging and tests): the same as a replication snapshot."""
        return Response(json.dumps(engine.store.snapshot()), mimetype="application/json")

    return routes
