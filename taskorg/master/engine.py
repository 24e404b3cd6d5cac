"""The active master's work: submissions, placement, slave reports, restarts, recovery.

All state changes go through `commit`, which refuses once the lease has run
out (the master fences itself) and hands the change to the replicator. Slave
commands run on a thread pool outside the lock; their answers come back in
as container states, exactly like reports, so there is one path for truth.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from typing import Any, Iterator, TypeVar

from taskorg.config import Config
from taskorg.logs import get_logger
from taskorg.master import placement
from taskorg.master.members import MemberCache
from taskorg.master.replication import Replicator
from taskorg.master.specs import SpecCache
from taskorg.master.states import TERMINAL, restart_decision, task_status
from taskorg.master.store import TABLES, Change, Store
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.resolve import ResolveError, resolve_master
from taskorg.spec import JobSpec

log = get_logger("master")
K = TypeVar("K")
# A container missing from a report is "lost" only after this long in its
# state: a report listed before a start finished must not count against it.
START_GRACE = 20.0
RUNNING_GRACE = 5.0
MAX_RESULTS_ENV = 64 * 1024
MAX_START_ANSWERS = 50_000


class NotMaster(Exception):
    """This master service is not (or no longer) the active master."""


@dataclass
class Role:
    active: bool = False
    epoch: int = 0
    lease_until: float = 0.0
    master: str | None = None
    master_address: str | None = None
    node: str | None = None

    def valid(self) -> bool:
        return self.active and time.monotonic() < self.lease_until


class Engine:
    def __init__(self, config: Config, secret: str, store: Store) -> None:
        self.config = config
        self.secret = secret
        self.store = store
        self.role = Role()
        self.lock = threading.RLock()
        self.specs = SpecCache()
        self.role_lock = threading.Lock()  # swaps of `role`; never held while waiting for anything
        self.members = MemberCache(config, secret)
        self.replicator = Replicator(config, secret, store, self.members)
        # Start orders wait for docker's start on the slave (0.4-1 s): 8 workers capped the whole
        # cluster at about 8 starts at a time however many nodes there were.
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="slave-cmd")
        self.telemetry: dict[str, dict[str, Any]] = {}
        self.activated_epoch = 0
        self.kick = threading.Event()
        # Membership as of the last tick, for node events (None: not looked yet).
        self.seen_alive: set[str] | None = None
        self.seen_draining: set[str] = set()
        # Start orders sent and not yet answered: (task, index, attempt). Such
        # an instance is not "lost" for missing from a report: the slave may
        # still be creating its container.
        self.starts_in_flight: set[tuple[str, int, int]] = set()
        # Start answers by the slave's own clock (`answered`), until a report listed after them comes:
        # a report listed before a start cannot show its container, however late it arrives.
        self.start_answers: dict[tuple[str, int, int], float] = {}
        # Placeable nodes we hold no telemetry of, asked directly (node -> when last asked).
        self.telemetry_asked: dict[str, float] = {}

    # ---- role --------------------------------------------------------------------------
    def set_role(self, active: bool, epoch: int, lease_until: float, master: str | None,
                 master_address: str | None, node: str | None) -> None:
        role = Role(active, epoch, lease_until, master, master_address, node)
        with self.role_lock:
            current = self.role
            if (active and current.active and epoch == current.epoch == self.activated_epoch
                    and self.replicator.running):
                # A renewal of the lease we already act on. It must not wait for the engine lock: a long
                # tick or a submission holds that, and a renewal that came late fenced a valid master.
                self.role = role
                return
        with self.lock:
            if epoch < self.store.fence_epoch() and active:
                active = False  # an old lease: never act on it
                role = dataclasses.replace(role, active=False)
            with self.role_lock:
                self.role = role
            needs_activation = active and epoch > self.activated_epoch
            # The same lease again after a lapse (a slow heartbeat): resume streaming.
            resume = active and not needs_activation and not self.replicator.running
            if not active and self.replicator.running:
                self.replicator.stop()
        if needs_activation:
            self.activate(epoch)
        elif resume:
            self.replicator.start(epoch)
            self.kick.set()

    def require_active(self) -> None:
        if not self.role.valid():
            raise NotMaster(self.not_master_message())

    def current_master(self) -> tuple[str | None, str | None]:
        """(node, address) of the master as far as this standby knows, else as DNS says now."""
        role = self.role
        if role.master and role.master_address and role.master != role.node:
            return role.master, role.master_address
        try:
            address = resolve_master(self.config, timeout=0.3)
        except ResolveError:
            return None, None
        if address == self.config.node_address:
            return None, None
        node = next((m["node"] for m in self.members.members() if m["address"] == address), None)
        return node, address

    def named_master_by_dns(self) -> bool:
        """Whether `master.<suffix>` names this node right now (the election's word, before our role)."""
        try:
            return resolve_master(self.config, timeout=0.3) == self.config.node_address
        except ResolveError:
            return False

    def wait_active(self, timeout: float) -> bool:
        """Wait (bounded) until this master's role is valid; True if it is."""
        deadline = time.monotonic() + timeout
        while not self.role.valid():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def not_master_message(self) -> str:
        node, address = self.current_master()
        if node and address:
            return f"not the master: the master is {node}.{self.config.suffix} ({address})"
        return "not the master: no master is active right now (an election may be under way)"

    def commit(self, changes: list[Change]) -> int:
        if not changes:
            return self.store.position()[1]
        with self.lock:
            self.require_active()
            seq = self.store.commit(changes, self.role.epoch)
        self.replicator.notify()
        return seq

    # ---- activation (recovery) -----------------------------------------------------------
    def activate(self, epoch: int) -> None:
        """Become the active master of `epoch`: fence the old one, then reconcile."""
        started = time.monotonic()
        with self.lock:
            self.activated_epoch = epoch
            self.seen_alive = None
            self.store.raise_fence(epoch)
            self.commit([self.history_row(None, None, "master_activated", self.role.node, f"epoch {epoch}")])
        # Stream first: submissions are accepted (and must be replicated) while we reconcile.
        self.replicator.start(epoch)
        self.members.refresh()
        living = self.members.alive_nodes()
        for node in living:
            self.pool.submit(self._fence_slave, node, epoch)
        # Each node's containers (to reconcile) and telemetry (placement needs it; reports bring it only
        # every report_interval), used as each answers.
        calls = {(node, path): self.pool.submit(self._slave_call, node, "GET", path)
                 for node in living for path in ("/v1/telemetry", "/v1/containers")}
        for (node, path), answer in _answers(calls):
            if path == "/v1/telemetry":
                self._store_telemetry(node, answer)
            else:
                self.on_report(node, answer.get("containers", []), None)
        log.warning("master active", extra={"epoch": epoch, "node": self.role.node, "position": self.store.position(),
                                            "reconciled_in": round(time.monotonic() - started, 3)})
        self.kick.set()

    def _fence_slave(self, node: str, epoch: int) -> None:
        try:
            self._slave_call(node, "POST", "/v1/epoch", {"epoch": epoch})
        except Exception:
            pass

    # ---- submissions and actions --------------------------------------------------------------
    def submit(self, job: JobSpec, source: str, request_id: str | None = None) -> dict[str, Any]:
        """Store a job; a retried request (same `request_id`) gets the first answer again."""
        if request_id:
            known = self.store.row("SELECT * FROM jobs WHERE request_id = ?", (request_id,))
            if known:
                return self._submitted(known)
        with self.lock:  # history ids must commit in the order they are handed out
            answer = self._store_job(job, source, request_id)
        answer["replicated"] = self.replicator.wait_for(answer["seq"], self.config.replication_timeout)
        self.kick.set()
        return answer

    def _store_job(self, job: JobSpec, source: str, request_id: str | None) -> dict[str, Any]:
        now = time.time()
        job_id = f"j-{secrets.token_hex(4)}"
        seed = job.seed if job.seed is not None else int.from_bytes(secrets.token_bytes(4), "big")
        changes: list[Change] = [("jobs", {"id": job_id, "name": job.name, "seed": seed, "source": source,
                                           "submitted_at": now, "request_id": request_id})]
        created = []
        for task in job.tasks:
            task_id = f"t-{secrets.token_hex(4)}"
            spec = task.to_dict()
            status = "waiting" if spec.get("after") else "pending"
            changes.append(("tasks", {"id": task_id, "job": job_id, "name": task.name, "spec": json.dumps(spec),
                                      "desired": "running", "status": status, "reason": None, "result": None,
                                      "created_at": now, "updated_at": now}))
            for index in range(task.instance_count):
                changes.append(("instances", new_instance(task_id, index, status, now)))
            changes.append(self.history_row(task_id, None, "submitted", None, f"job {job.name} ({job_id})"))
            created.append({"id": task_id, "name": task.name, "instances": task.instance_count})
        seq = self.commit(changes)
        return {"job": job_id, "name": job.name, "seed": seed, "tasks": created, "seq": seq}

    def _submitted(self, job: dict[str, Any]) -> dict[str, Any]:
        tasks = self.store.rows("SELECT t.id, t.name, (SELECT COUNT(*) FROM instances i WHERE i.task_id = t.id) "
                                "AS instances FROM tasks t WHERE t.job = ? ORDER BY t.created_at", (job["id"],))
        seq = self.store.position()[1]
        return {"job": job["id"], "name": job["name"], "seed": job["seed"], "tasks": tasks, "seq": seq,
                "replicated": self.replicator.wait_for(seq, self.config.replication_timeout), "repeated": True}

    def cancel(self, task_id: str) -> dict[str, Any]:
        with self.lock:
            self.require_active()
            task = self.task_row(task_id)
            if task["desired"] == "cancelled":
                return {"id": task_id, "status": task["status"]}
            now = time.time()
            changes: list[Change] = []
            for inst in self.instance_rows(task_id):
                if inst["status"] not in TERMINAL:
                    changes.append(("instances", {**inst, "status": "cancelled", "finished_at": now, "updated_at": now}))
            status = "cancelled" if changes or task["status"] not in TERMINAL else task["status"]
            changes.append(("tasks", {**task, "desired": "cancelled", "status": status, "updated_at": now}))
            changes.append(self.history_row(task_id, None, "cancelled", None, "cancelled by a user"))
            self.commit(changes)
            nodes = {i["node"] for i in self.instance_rows(task_id) if i["node"]}
        for node in nodes:
            self.pool.submit(self._stop_task_on, node, task_id)
        return {"id": task_id, "status": status}

    def restart(self, task_id: str) -> dict[str, Any]:
        with self.lock:
            self.require_active()
            task = self.task_row(task_id)
            now = time.time()
            status = "waiting" if json.loads(task["spec"]).get("after") else "pending"
            changes: list[Change] = [("tasks", {**task, "desired": "running", "status": status, "reason": None,
                                                "updated_at": now})]
            for inst in self.instance_rows(task_id):
                fresh = new_instance(task_id, inst["idx"], status, now)
                changes.append(("instances", {**fresh, "attempt": inst["attempt"]}))
            changes.append(self.history_row(task_id, None, "restarted", None, "restarted by a user"))
            self.commit(changes)
            nodes = {i["node"] for i in self.instance_rows(task_id) if i["node"]}
        for node in nodes:
            self.pool.submit(self._stop_task_on, node, task_id)
        self.kick.set()
        return {"id": task_id, "status": status}

    def _stop_task_on(self, node: str, task_id: str) -> None:
        try:
            self._slave_call(node, "POST", "/v1/containers/stop", {"epoch": self.role.epoch, "task_id": task_id})
        except Exception as exc:
            log.info("could not stop task on node (its report will)", extra={"node": node, "error": str(exc)})

    def preview(self, job: JobSpec) -> dict[str, list[str | None]]:
        self.members.refresh()
        nodes = self.node_views()
        placements: dict[str, list[str | None]] = {}
        for task in job.tasks:
            spec = task.to_dict()
            chosen = []
            for _ in range(task.instance_count):
                node, reason = placement.choose(f"preview-{task.name}", spec, nodes)
                chosen.append(node.name if node else None)
            placements[task.name] = chosen
        return placements

    # ---- slave reports -------------------------------------------------------------------------
    def on_report(self, node: str, containers: list[dict[str, Any]],
                  telemetry: dict[str, Any] | None, complete: bool = True, listed: float | None = None) -> list[str]:
        """Fold a slave's containers into the state; the ids it must stop.

        `complete` says the list is everything the node runs (a report), so
        an instance missing from it is lost; a start answer is not complete.
        `listed` is the slave's clock when it listed (None from an older slave).
        """
        if telemetry:
            self._store_telemetry(node, telemetry)
        with self.lock:
            if not self.role.valid():
                return []
            now = time.time()
            stop: list[str] = []
            changes: list[Change] = []
            seen: set[tuple[str, int, int]] = set()
            instances = {(i["task_id"], i["idx"]): i for i in self.store.rows(
                "SELECT i.*, t.spec, t.desired FROM instances i JOIN tasks t ON t.id = i.task_id "
                "WHERE i.node = ? OR i.task_id IN (SELECT value FROM json_each(?))",
                (node, json.dumps(sorted({c["task_id"] for c in containers}))))}
            for container in containers:
                key = (container["task_id"], int(container["index"]))
                inst = instances.get(key)
                seen.add((key[0], key[1], int(container.get("attempt") or 0)))
                verdict = self._judge(node, container, inst, now)
                if verdict == "stop":
                    stop.append(container["container_id"])
                elif isinstance(verdict, list):
                    changes += verdict
            if complete:
                changes += self._lost_instances(node, instances.values(), seen, now, listed)
            self._commit_with_task_status(changes)
        if changes:
            # An exit frees room and may release dependants; a loss needs a new place. The tick is
            # asked now, not at its next 200 ms beat (a chunk job waited 0.1 s per chunk for that).
            self.kick.set()
        return stop

    def _judge(self, node: str, container: dict[str, Any], inst: dict[str, Any] | None,
               now: float) -> str | list[Change] | None:
        """What one reported container means: 'stop', changes, or nothing."""
        if inst is None or inst["desired"] == "cancelled":
            return "stop"
        attempt = int(container.get("attempt") or 0)
        if inst["node"] != node or attempt != inst["attempt"]:
            return "stop"  # a duplicate (healed partition) or an older attempt
        status = container["status"]
        if inst["status"] in TERMINAL or inst["status"] == "pending":
            if status != "running":
                return None
            if container["container_id"] and container["container_id"] == inst["container_id"]:
                # The very container we saw finish: a report listed before it exited and
                # delivered after the start answer that said so. Stale, not a duplicate.
                return None
            return "stop"
        row = strip(inst)
        if status == "running":
            if inst["status"] != "running" or inst["container_id"] != container["container_id"]:
                row.update(status="running", container_id=container["container_id"], error=None,
                           started_at=now, updated_at=now)
                return [("instances", row),
                        self.history_row(inst["task_id"], inst["idx"], "running", node, f"attempt {attempt}")]
            return None
        if status in ("exited", "dead", "error"):
            spec = self.specs.get(inst["task_id"], inst["spec"])
            exit_code = container.get("exit_code")
            error = container.get("error")
            decision = restart_decision(spec, exit_code, error, inst["restarts"])
            result = container.get("result")
            row.update(container_id=container["container_id"], exit_code=exit_code, error=error,
                       finished_at=now, updated_at=now, result=None if result is None else json.dumps(result))
            if container.get("result_error") and not error:
                decision = decision.with_detail(f"{decision.detail}; {container['result_error']}")
            if decision.restart:
                row.update(status="pending", node=None, restarts=inst["restarts"] + 1,
                           not_before=now + decision.delay)
            else:
                row.update(status=decision.final_status)
            return [("instances", row),
                    self.history_row(inst["task_id"], inst["idx"], decision.event, node, decision.detail)]
        return None

    def _lost_instances(self, node: str, instances: Any, seen: set[tuple[str, int, int]],
                        now: float, listed: float | None) -> list[Change]:
        changes: list[Change] = []
        for inst in instances:
            if inst["node"] != node or inst["status"] not in ("starting", "running"):
                continue
            key = (inst["task_id"], inst["idx"], inst["attempt"])
            answered = self.start_answers.get(key)
            if answered is not None and listed is not None:
                if listed < answered:
                    continue  # listed before the start finished: says nothing about this container
                self.start_answers.pop(key, None)  # a report after the start: the grace below is enough
            if key in seen or key in self.starts_in_flight:
                continue
            grace = START_GRACE if inst["status"] == "starting" else RUNNING_GRACE
            if now - (inst["updated_at"] or 0) < grace:
                continue
            row = strip(inst)
            row.update(status="pending", node=None, container_id=None, updated_at=now)
            changes += [("instances", row),
                        self.history_row(inst["task_id"], inst["idx"], "lost", node,
                                         "its container disappeared; starting it again")]
        return changes

    # ---- the scheduling tick ---------------------------------------------------------------------
    def tick(self) -> None:
        if not self.role.valid():
            return
        if not self.members.refresh():
            return  # the DNS service is unreachable: nobody is declared dead meanwhile
        starts: list[dict[str, Any]] = []
        with self.lock:
            if not self.role.valid():
                return
            now = time.time()
            changes: list[Change] = []
            # What every node has reserved costs a read of every live instance: only when placing.
            nodes: list[placement.NodeView] | None = None
            alive = set(self.members.alive_nodes())
            draining = self.members.draining_nodes()
            changes += self._membership_events(alive, draining)
            # Only instances with something to do: waiting or pending ones, and live ones on a node that
            # died or drains. Scanning every running instance made a tick cost grow with the cluster
            # (profiled: 10,000 tasks started at ~10/s).
            rows = self.store.rows(
                "SELECT i.*, t.spec, t.job, t.name, t.desired FROM instances i JOIN tasks t ON t.id = i.task_id "
                "WHERE i.status IN ('waiting', 'pending') OR (i.status IN ('starting', 'running') AND "
                "(i.node IS NULL OR i.node NOT IN (SELECT value FROM json_each(?)))) ORDER BY t.created_at, i.idx",
                (json.dumps(sorted(alive - draining)),))
            task_states = self._dependency_states(rows)
            for inst in rows:
                status, node = inst["status"], inst["node"]
                if status == "waiting":
                    changes += self._check_dependencies(inst, task_states, now)
                elif status in ("starting", "running") and (node not in alive or node in draining):
                    why = "drained" if node in draining and node in alive else "dead"
                    row = strip(inst)
                    row.update(status="pending", node=None, container_id=None, updated_at=now)
                    changes += [("instances", row), self.history_row(
                        inst["task_id"], inst["idx"], "rescheduled", node, f"node {node} {why}: placing again")]
                    inst = {**inst, **row}
                if inst["status"] == "pending" and (inst["not_before"] or 0) <= now:
                    spec = self.specs.get(inst["task_id"], inst["spec"])
                    if nodes is None:
                        nodes = self.node_views()
                    chosen, reason = placement.choose(inst["task_id"], spec, nodes)
                    if chosen is None:
                        changes += self._note_reason(inst["task_id"], reason)
                        continue
                    row = strip(inst)
                    row.update(status="starting", node=chosen.name, attempt=inst["attempt"] + 1,
                               exit_code=None, error=None, container_id=None, updated_at=now)
                    changes += [("instances", row), self.history_row(
                        inst["task_id"], inst["idx"], "placed", chosen.name, f"attempt {row['attempt']}")]
                    starts.append(self._start_order(inst, row, spec, chosen.address))
            self._commit_with_task_status(changes)
        for order in starts:
            self.starts_in_flight.add((order["task_id"], order["index"], order["attempt"]))
            self.pool.submit(self._start, order)

    def _membership_events(self, alive: set[str], draining: set[str]) -> list[Change]:
        """History rows (and so events) for nodes that joined, died or were drained since last tick."""
        if self.seen_alive is None:
            self.seen_alive, self.seen_draining = alive, draining
            return []
        changes = [self.history_row(None, None, "node_joined", n, "alive") for n in sorted(alive - self.seen_alive)]
        changes += [self.history_row(None, None, "node_dead", n, "no heartbeat") for n in
                    sorted(self.seen_alive - alive)]
        changes += [self.history_row(None, None, "node_drained", n, "draining") for n in
                    sorted(draining - self.seen_draining)]
        self.seen_alive, self.seen_draining = alive, draining
        return changes

    def _dependency_states(self, rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
        jobs = {r["job"] for r in rows if r["status"] == "waiting"}
        if not jobs:
            return {}
        found = self.store.rows("SELECT job, name, status FROM tasks WHERE job IN (SELECT value FROM json_each(?))",
                                (json.dumps(sorted(jobs)),))
        return {(r["job"], r["name"]): r["status"] for r in found}

    def _check_dependencies(self, inst: dict[str, Any], states: dict[tuple[str, str], str],
                            now: float) -> list[Change]:
        spec = self.specs.get(inst["task_id"], inst["spec"])
        after = spec.get("after") or []
        failed = [d for d in after if states.get((inst["job"], d)) in ("failed", "cancelled")]
        row = strip(inst)
        if failed:
            row.update(status="failed", error=f"dependency {failed[0]} {states[(inst['job'], failed[0])]}",
                       finished_at=now, updated_at=now)
            return [("instances", row),
                    self.history_row(inst["task_id"], inst["idx"], "failed", None, row["error"])]
        if all(states.get((inst["job"], d)) == "succeeded" for d in after):
            row.update(status="pending", updated_at=now)
            return [("instances", row)]
        return []

    def _note_reason(self, task_id: str, reason: str) -> list[Change]:
        task = self.task_row(task_id)
        if task["reason"] == reason:
            return []
        return [("tasks", {**task, "reason": reason, "updated_at": time.time()})]

    def _start_order(self, inst: dict[str, Any], row: dict[str, Any], spec: dict[str, Any],
                     address: str) -> dict[str, Any]:
        job = self.store.row("SELECT seed FROM jobs WHERE id = ?", (inst["job"],)) or {}
        count = max(spec.get("replicas", 1), spec.get("parallel", 1))
        env = {"TASKORG_INDEX": str(inst["idx"]), "TASKORG_COUNT": str(count),
               "TASKORG_SEED": str(job.get("seed") or 0), "TASKORG_JOB_ID": inst["job"]}
        if spec.get("after"):
            env["TASKORG_RESULTS"] = self._dependency_results(inst["job"], spec["after"])
        return {"node": row["node"], "address": address, "epoch": self.role.epoch, "task_id": inst["task_id"],
                "index": inst["idx"], "attempt": row["attempt"], "job": inst["job"], "spec": spec, "env": env}

    def _dependency_results(self, job: str, names: list[str]) -> str:
        """`{"name": result, ...}` of the tasks this one runs after, as JSON for its environment."""
        rows = self.store.rows("SELECT name, result FROM tasks WHERE job = ? AND name IN "
                               "(SELECT value FROM json_each(?))", (job, json.dumps(names)))
        text = json.dumps({r["name"]: json.loads(r["result"]) if r["result"] else None for r in rows})
        return text if len(text) <= MAX_RESULTS_ENV else json.dumps({"error": "results too large for the "
                                                                              "environment: read them from the API"})

    def _start(self, order: dict[str, Any]) -> None:
        key = (order["task_id"], order["index"], order["attempt"])
        try:
            self._send_start(order)
        finally:
            self.starts_in_flight.discard(key)

    def _send_start(self, order: dict[str, Any]) -> None:
        node = order.pop("node")
        address = order.pop("address")
        client = self._slave_client(address)
        try:
            state = client.post("/v1/containers", order, timeout=30)
        except ServiceError as exc:
            if exc.status == 409:
                log.warning("a slave fenced us: a newer master exists", extra={"node": node, "error": exc.message})
                return
            state = {"task_id": order["task_id"], "index": order["index"], "attempt": order["attempt"],
                     "status": "error", "error": exc.message, "container_id": ""}
        except ServiceUnavailable as exc:
            self._start_failed(node, order, str(exc))
            return
        finally:
            client.close()
        answered = state.get("answered")
        if isinstance(answered, (int, float)):
            if len(self.start_answers) > MAX_START_ANSWERS:
                self.start_answers.clear()  # only a guard against stale reports; never worth unbounded memory
            self.start_answers[(order["task_id"], order["index"], order["attempt"])] = float(answered)
        self.on_report(node, [state], None, complete=False)  # kicks the tick if it changed anything

    def _start_failed(self, node: str, order: dict[str, Any], error: str) -> None:
        with self.lock:
            inst = self.store.row("SELECT * FROM instances WHERE task_id = ? AND idx = ?",
                                  (order["task_id"], order["index"]))
            if not inst or inst["node"] != node or inst["attempt"] != order["attempt"] or inst["status"] != "starting":
                return
            now = time.time()
            row = {**inst, "status": "pending", "node": None, "not_before": now + 1.0, "updated_at": now}
            try:
                self._commit_with_task_status([("instances", row), self.history_row(
                    inst["task_id"], inst["idx"], "start_failed", node, f"slave unreachable: {error}")])
            except NotMaster:
                pass

    # ---- helpers ------------------------------------------------------------------------------------
    def _commit_with_task_status(self, changes: list[Change]) -> None:
        """Commit instance changes plus the status of every task they touch."""
        if not changes:
            return
        touched = {row["task_id"] for table, row in changes if table == "instances"}
        pending = {(row["task_id"], row["idx"]): row for table, row in changes if table == "instances"}
        now = time.time()
        for task_id in touched:
            task = self.task_row(task_id)
            rows = [pending.get((i["task_id"], i["idx"]), i) for i in self.instance_rows(task_id)]
            status = task_status([r["status"] for r in rows])
            if status != task["status"]:
                reason = None if status not in ("pending",) else task["reason"]
                result = task_result(rows) if status == "succeeded" else task["result"]
                changes.append(("tasks", {**task, "status": status, "reason": reason, "result": result,
                                          "updated_at": now}))
                ran = any(r["attempt"] for r in rows)
                if status in ("succeeded", "failed") and task["status"] != "running" and ran:
                    # Too quick to be seen running: it still started before it ended.
                    changes.append(self.history_row(task_id, None, "task_running", None,
                                                    f"{task['name']} is running"))
                if status in ("running", "succeeded", "failed", "cancelled"):
                    changes.append(self.history_row(task_id, None, f"task_{status}", None,
                                                    f"{task['name']} is {status}"))
        self.commit(changes)

    def node_views(self) -> list[placement.NodeView]:
        """Placeable nodes (alive, active, reporting) with what is already reserved on them."""
        views = {}
        for member in self.members.placeable():
            tele = self.telemetry.get(member["node"])
            if not tele:
                self._ask_telemetry(member["node"])
                continue
            views[member["node"]] = placement.NodeView(
                name=member["node"], address=member["address"], labels=member.get("labels") or {},
                cpus=float(tele.get("cpu_count") or 1), memory=int(tele.get("memory_total") or 0),
                speed=float(tele.get("speed") or 1.0), load=float(tele.get("cpu_percent") or 0) / 100)
        live = [i for i in self.store.rows("SELECT task_id, node FROM instances WHERE status IN ('starting', 'running')")
                if i["node"] in views]
        specs = {t: spec for t in {i["task_id"] for i in live} if (spec := self.specs.known(t)) is not None}
        missing = sorted({i["task_id"] for i in live} - specs.keys())
        if missing:  # only texts the cache lacks are read (and parsed once)
            for task in self.store.rows("SELECT id, spec FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
                                        (json.dumps(missing),)):
                specs[task["id"]] = self.specs.get(task["id"], task["spec"])
        for inst in live:
            views[inst["node"]].reserve(inst["task_id"], specs[inst["task_id"]])
        return list(views.values())

    def _store_telemetry(self, node: str, telemetry: dict[str, Any]) -> None:
        self.telemetry[node] = {**telemetry, "received": time.monotonic()}

    def _ask_telemetry(self, node: str) -> None:
        """Fetch a placeable node's telemetry now rather than wait for its next report (up to
        report_interval): a new master whose activation missed a node (its members view or the
        call failed) left that node out of placement for 0.8 s in 2 of 20 testbed rounds.
        At most one call per node per second."""
        now = time.monotonic()
        if now - self.telemetry_asked.get(node, -1e9) < 1.0:
            return
        self.telemetry_asked[node] = now
        self.pool.submit(self._fetch_telemetry, node)

    def _fetch_telemetry(self, node: str) -> None:
        try:
            answer = self._slave_call(node, "GET", "/v1/telemetry")
        except Exception:
            return  # its report will bring it, or the next placement asks again
        if answer and node not in self.telemetry:
            self._store_telemetry(node, answer)
            self.kick.set()

    def task_row(self, task_id: str) -> dict[str, Any]:
        task = self.store.row("SELECT * FROM tasks WHERE id = ?", (task_id,))
        if task is None:
            raise KeyError(task_id)
        return task

    def instance_rows(self, task_id: str) -> list[dict[str, Any]]:
        return self.store.rows("SELECT * FROM instances WHERE task_id = ? ORDER BY idx", (task_id,))

    def history_row(self, task_id: str | None, index: int | None, event: str, node: str | None,
                    detail: str) -> Change:
        return ("history", {"id": self.store.history_id(), "task_id": task_id, "idx": index,
                            "time": time.time(), "event": event, "node": node, "detail": detail})

    def _slave_client(self, address: str) -> ServiceClient:
        return ServiceClient(self.config.url(address, self.config.slave_port), self.secret, timeout=5)

    def _slave_call(self, node: str, method: str, path: str, body: Any = None) -> Any:
        address = self.members.address(node)
        if not address:
            return None
        client = self._slave_client(address)
        try:
            return client.request(method, path, json=body, timeout=3)
        finally:
            client.close()

    def slave_logs(self, node: str, task_id: str, index: int, tail: int) -> str:
        return self._slave_call(node, "GET", f"/v1/containers/{task_id}/{index}/logs?tail={tail}") or ""

    def close(self) -> None:
        self.replicator.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _answers(futures: dict[K, Future[Any]], timeout: float = 2.0) -> Iterator[tuple[K, Any]]:
    """(key, answer) for each call that answered in time with something, as they come: a dead node
    (not yet declared so) is skipped and never holds up the living. In order, one powered-off host
    listed first kept a new master from placing anything for its 0.5 s connect timeout."""
    keys = {future: key for key, future in futures.items()}
    try:
        for future in as_completed(keys, timeout=timeout):
            try:
                answer = future.result()
            except Exception:
                continue
            if answer:
                yield keys[future], answer
    except FuturesTimeout:
        return


def new_instance(task_id: str, index: int, status: str, now: float) -> dict[str, Any]:
    return {"task_id": task_id, "idx": index, "node": None, "status": status, "attempt": 0, "restarts": 0,
            "exit_code": None, "container_id": None, "error": None, "started_at": None, "finished_at": None,
            "not_before": None, "updated_at": now, "result": None}


def task_result(instances: list[dict[str, Any]]) -> str | None:
    """A task's result: its one instance's, or the list of its instances' in index order."""
    values = [json.loads(i["result"]) if i.get("result") else None for i in sorted(instances, key=lambda i: i["idx"])]
    if all(v is None for v in values):
        return None
    return json.dumps(values[0] if len(values) == 1 else values)


def strip(inst: dict[str, Any]) -> dict[str, Any]:
    """Only the instance table's own columns (queries join task columns in)."""
    return {key: inst.get(key) for key in TABLES["instances"]}

