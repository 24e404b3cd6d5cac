"""The active master: holds the lock, commits, kicks the tick, activates and dispatches.

Decisions live elsewhere, as pure functions over typed records: `plan` (a
scheduling tick), `reconcile` (what a slave's containers mean), the change
builders of `state`. The engine reads the state, asks them, commits what they
return and sends the slave commands that follow. All state changes go through
`commit`, which refuses once the lease has run out (the master fences itself)
and hands the change to the replicator. Slave commands run on a thread pool
outside the lock; their answers come back in as container states, exactly
like reports, so there is one path for truth. Beside it: the group commit
of submissions (`submissions`), client actions on jobs and tasks and the
pruning (`jobs`), the recovery at activation (`activation`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import msgspec

from taskorg.config import Config
from taskorg.logs import get_logger
from taskorg.master import placement, state
from taskorg.master.activation import recover
from taskorg.master.jobs import JobActions
from taskorg.master.members import MemberCache
from taskorg.master.names import NamePusher
from taskorg.master.plan import Membership, membership_events, node_views, plan, reserve
from taskorg.master.quiet import QuietTicks, TickInputs, capacity_key, next_due
from taskorg.master.reasons import PendingReasons
from taskorg.master.reconcile import RUNNING_GRACE, START_GRACE, Listing, reconcile
from taskorg.master.relist import SLACK, Relister
from taskorg.master.replication import Replicator
from taskorg.master.role import NotMaster, Role, current_master, named_master_by_dns, not_master_message, wait_valid
from taskorg.master.slaves import SlaveClient, quietly
from taskorg.master.specs import SpecCache
from taskorg.master.telemetry import TelemetryBook
from taskorg.master.state import HistoryEvent, Instance, NoSuchTask, Record, StartKey
from taskorg.master.store import Store
from taskorg.master.submissions import GroupCommit, Submission
from taskorg.master.updates import Updates
from taskorg.metrics import master as metrics
from taskorg.net.client import ServiceError, ServiceUnavailable
from taskorg import protocol
from taskorg.protocol import (ContainerState, ProtocolError, ReplicaPosition, RoleAnswer, RolePush, StartOrder,
                              Telemetry)
from taskorg.spec import JobSpec, TaskSpec

__all__ = ["Engine", "NoSuchTask", "NotMaster", "Role", "RUNNING_GRACE", "START_GRACE"]

log = get_logger("master")
MAX_START_ANSWERS = 50_000
# Service names are rebuilt at most this often (seconds); a change is published within a tick after it
# (the issue asks for 1 s).
NAMES_EVERY = 0.5
# A node whose slave could not be reached for a start is passed over this long (or until it reports).
UNREACHABLE_REST = 5.0


def parse_spec(text: str) -> TaskSpec:
    """A stored spec (our own canonical JSON) as a TaskSpec."""
    protocol.ready(TaskSpec)  # first use from several threads at once crashed msgspec (protocol.ready)
    return msgspec.json.decode(text, type=TaskSpec)


class Engine:
    def __init__(self, config: Config, secret: str, store: Store, clock: Callable[[], float] = time.time,
                 slaves: SlaveClient | None = None) -> None:
        self.config = config
        self.clock = clock  # wall-clock time of records; injected so a whole tick runs in a unit test
        self.secret = secret
        self.store = store
        self.role = Role()
        self.lock = threading.RLock()
        self.specs: SpecCache[TaskSpec] = SpecCache(parse=parse_spec)
        self.role_lock = threading.Lock()  # swaps of `role`; never held while waiting for anything
        self.members = MemberCache(config, secret)
        self.replicator = Replicator(config, secret, store, self.members)
        self.slaves = slaves or SlaveClient(config, secret, self.members)
        # Start orders wait for docker's start on the slave (0.4-1 s): 8 workers capped the whole
        # cluster at about 8 starts at a time however many nodes there were.
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="slave-cmd")
        self.kick = threading.Event()
        self.role_moved = threading.Event()  # set on every role change but a plain renewal (the member watch)
        self.telemetry_book = TelemetryBook(self.slaves, self.pool, self.kick.set, clock,
                                            config.telemetry_history_step)
        self.telemetry = self.telemetry_book.by_node
        self.activated_epoch = 0
        # Membership as of the last tick, for node events (None: not looked yet).
        self.membership: Membership | None = None
        # Start orders sent and not yet answered. Such an instance is not "lost" for missing
        # from a report: the slave may still be creating its container.
        self.starts_in_flight: set[StartKey] = set()
        # Start answers by the slave's own clock (`answered`), until a report listed after them comes:
        # a report listed before a start cannot show its container, however late it arrives.
        self.start_answers: dict[StartKey, float] = {}
        self.group_commit = GroupCommit(self.lock, store, self.commit_submissions, clock)
        self.jobs = JobActions(self)  # preview, cancel, restart, prune
        self.updates = Updates(self)  # rolling updates: each tick's step, rollbacks
        self.reasons = PendingReasons()  # why each pending task waits: in memory, not replicated
        self.quiet = QuietTicks()  # ticks that may skip planning (nothing changed since one that decided nothing)
        # Tasks of jobs submitted since the last plan, while nothing else was committed (None: something
        # else was, so the next plan looks at everything): a tick may plan only these (taskorg.master.quiet).
        self.fresh_tasks: set[str] | None = set()
        # Nodes whose slave refused a start order, and until when placement passes them over.
        self.unreachable: dict[str, float] = {}
        self.names = NamePusher(config, secret, self.pool)  # service names in the cluster DNS
        # The state and living nodes the service names were last built from, and when (monotonic).
        self.served: tuple[Any, float] | None = None
        # A slave's containers asked for at a chosen moment (a grace's end, a node back), not at its next report.
        self.relister = Relister(self.relist)

    # ---- role --------------------------------------------------------------------------
    def take_role(self, push: RolePush) -> RoleAnswer:
        """The node service's word on our role (over the local channel or `POST /v1/role`); the answer
        carries our replica position, which its heartbeats report."""
        self.set_role(push.active, push.epoch, push.lease_until_monotonic or 0.0, push.master,
                      push.master_address, push.node)
        epoch, seq = self.store.position()
        return RoleAnswer(active=self.role.valid(), replica=ReplicaPosition(epoch=epoch, seq=seq))

    def set_role(self, active: bool, epoch: int, lease_until: float, master: str | None,
                 master_address: str | None, node: str | None) -> None:
        # A lease that lapsed before it arrived (a late push, or none given) is never acted on: activating
        # would raise the fence and then find it may not commit.
        active = active and lease_until > time.monotonic()
        role = Role(active, epoch, lease_until, master, master_address, node)
        if epoch > self.role.epoch and self.role.epoch:
            metrics.ELECTIONS.inc()
        if active:
            metrics.renewed(lease_until, self.config.lease_timeout)
        with self.role_lock:
            current = self.role
            if (active and current.active and epoch == current.epoch == self.activated_epoch
                    and self.replicator.running):
                # A renewal of the lease we already act on. It must not wait for the engine lock: a long
                # tick or a submission holds that, and a renewal that came late fenced a valid master.
                lapsed = not current.valid()
                self.role = role
                if lapsed:
                    self.role_moved.set()  # valid again after a late renewal: the member watch resumes
                return
        with self.lock:
            if epoch < self.store.fence_epoch() and active:
                active = False  # an old lease: never act on it
                role = dataclasses.replace(role, active=False)
            with self.role_lock:
                self.role = role
            self.role_moved.set()
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

    def membership_moved(self) -> None:
        """What the master acts on moved (the member watch): plan now, and let the replicator see its
        standby set again now."""
        self.kick.set()
        self.replicator.notify()

    def require_active(self) -> None:
        if not self.role.valid():
            raise NotMaster(self.not_master_message())

    def current_master(self) -> tuple[str | None, str | None]:
        return current_master(self.config, self.role, self.members)

    def named_master_by_dns(self) -> bool:
        return named_master_by_dns(self.config)

    def wait_active(self, timeout: float) -> bool:
        return wait_valid(lambda: self.role, timeout)

    def still_named(self) -> bool:
        """Not valid this moment, yet the arbiter's last word names this master under the epoch it acts
        on: a renewal came late or a look-up timed out on a loaded machine. The next renewal is a beat
        away, so a client is better served by a short wait than by "no master is active"."""
        role = self.role
        return (not role.valid() and role.node is not None and role.master == role.node
                and role.epoch == self.activated_epoch > 0)

    def not_master_message(self) -> str:
        return not_master_message(self.config, *self.current_master())

    # ---- committing -----------------------------------------------------------------------
    def commit(self, records: Iterable[Record | state.Change], added_tasks: Iterable[str] | None = None) -> int:
        """Commit records fenced by the lease. `added_tasks`: what they add is only these new tasks (a
        submission) or nothing that frees room (a tick's own decisions, `()`); None: anything."""
        records = list(records)
        if not records:
            return self.store.position()[1]
        with self.lock:
            self.require_active()
            seq = self.store.commit(state.records_to_changes(self.store, records), self.role.epoch)
            if added_tasks is None:
                self.fresh_tasks = None
            elif self.fresh_tasks is not None:
                self.fresh_tasks.update(added_tasks)
        self.replicator.notify(seq)
        metrics.count_events(r.event for r in records if isinstance(r, HistoryEvent))
        return seq

    def commit_submissions(self, records: Iterable[Record | state.Change], only_new_jobs: bool) -> int:
        """A group commit's records (taskorg.master.submissions): new jobs only, or with updates."""
        records = list(records)
        added = [r.id for r in records if isinstance(r, state.Task)] if only_new_jobs else None
        return self.commit(records, added)

    def _commit_with_task_status(self, records: list[Record], added_tasks: Iterable[str] | None = None) -> None:
        """Commit instance records plus the status of every task they touch."""
        if records:
            self.commit(state.with_task_status(self.store, records, self.clock()), added_tasks)

    # ---- activation (recovery) -----------------------------------------------------------
    def activate(self, epoch: int) -> None:
        """Become the active master of `epoch`: fence the old one, then reconcile."""
        started = time.monotonic()
        metrics.ACTIVATIONS.inc()
        with self.lock:
            self.activated_epoch = epoch
            self.membership = None
            self.quiet.forget()
            self.names.reset()
            self.served = None  # names built again at the first tick
            self.store.raise_fence(epoch)
            self.commit([HistoryEvent(None, None, "master_activated", self.role.node, f"epoch {epoch}", self.clock())])
        # Stream first: submissions are accepted (and must be replicated) while we reconcile.
        self.replicator.start(epoch)
        recover(self, epoch)
        log.warning("master active", extra={"epoch": epoch, "node": self.role.node, "position": self.store.position(),
                                            "reconciled_in": round(time.monotonic() - started, 3)})
        self.kick.set()

    # ---- submissions and actions --------------------------------------------------------------
    @property
    def submissions(self) -> list[Submission]:
        """Submissions waiting for the next group commit."""
        return self.group_commit.waiting

    def submit(self, job: JobSpec, source: str, request_id: str | None = None,
               update_only: bool = False) -> dict[str, Any]:
        """Store a job (committed with those submitted at the same moment, see `submissions`), wait for a
        standby to hold it; a retried request (same `request_id`) gets the first answer again. A job whose
        name runs is updated in place (`updates`)."""
        answer = self.group_commit.submit(job, source, request_id, update_only)
        answer["replicated"] = self.replicator.wait_for(answer["seq"], self.config.replication_timeout)
        self.kick.set()
        return answer

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self.jobs.cancel(task_id)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.jobs.cancel_job(job_id)

    def restart(self, task_id: str) -> dict[str, Any]:
        return self.jobs.restart(task_id)

    def prune(self) -> dict[str, int]:
        return self.jobs.prune()

    def rollback(self, job_id: str) -> dict[str, Any]:
        return self.updates.rollback(job_id)

    def preview(self, job: JobSpec) -> dict[str, list[str | None]]:
        return self.jobs.preview(job)


    # ---- slave reports -------------------------------------------------------------------------
    def on_report(self, node: str, containers: list[ContainerState], telemetry: Telemetry | None,
                  complete: bool = True, listed: float | None = None) -> list[str]:
        """Fold a slave's containers into the state; the ids it must stop (see `reconcile`)."""
        if telemetry:
            self.telemetry_book.store(node, telemetry)
        with self.lock:
            if not self.role.valid():
                return []
            self.unreachable.pop(node, None)  # its slave is there again
            instances = state.instances_of_report(self.store, node, (c.task_id for c in containers), complete)
            result = reconcile(Listing(node, containers, complete, listed), instances, self._spec_of,
                               self.starts_in_flight, self.start_answers, self.clock())
            for key in result.settled:
                self.start_answers.pop(key, None)
            self._commit_with_task_status(result.records)
        if result.records:
            # An exit frees room and may release dependants; a loss needs a new place. The tick is
            # asked now, not at its next 200 ms beat (a chunk job waited 0.1 s per chunk for that).
            self.kick.set()
        if result.recheck is not None:
            self.relister.at(node, result.recheck + SLACK)  # its next report may be a resync away
        return result.stop

    def relist(self, node: str) -> None:
        """Fold the node's containers in now, as a report without telemetry, and stop what it must."""
        if not self.role.valid():
            return
        listing = self.slaves.containers(node)
        stop = self.on_report(node, listing.containers, None)
        if stop:
            quietly(self.slaves.stop, node, self.role.epoch, stop)

    # ---- the scheduling tick ---------------------------------------------------------------------
    def tick(self) -> None:
        if not self.role.valid():
            return
        if not (self.members.current() or self.members.refresh()):
            return  # the DNS service is unreachable: nobody is declared dead meanwhile
        with self.lock:
            if not self.role.valid():
                return
            now = self.clock()
            membership = Membership(frozenset(self.members.alive_nodes()), frozenset(self.members.draining_nodes()))
            records = membership_events(self.membership, membership, now)
            back = membership.alive - self.membership.alive if self.membership is not None else frozenset()
            self.membership = membership
            starts: list[tuple[str, str, StartOrder]] = []
            inputs = self._tick_inputs(membership)
            if records or not self.quiet.may_skip(inputs, now):
                fresh = self.fresh_tasks
                if not records and fresh is not None and self.quiet.only_position_moved(inputs, now):
                    starts = self._plan(membership, [], now, only=fresh)
                else:
                    starts = self._plan(membership, records, now)
            self.updates.step()  # rolling updates: the next batch, a completion, a rollback
            addresses = {m["node"]: m["address"] for m in self.members.members() if m["node"] in membership.alive}
            served = self._served_instances(membership, addresses)
        if served is not None:
            self.names.update(self.role.epoch, served, addresses)
        else:
            self.names.retry()  # a push that failed is tried again at each tick
        for node in back:
            # A node alive again (after a false death its tasks run elsewhere too): its duplicates are
            # stopped now, not at its next resync.
            self.relister.at(node, 0.0)
        for node, address, order in starts:
            self.starts_in_flight.add((order.task_id, order.index, order.attempt))
            self.pool.submit(self._start, str(node), address, order)
        self.jobs.prune_if_due()

    def _plan(self, membership: Membership, records: list[Record], now: float,
              only: set[str] | None = None) -> list[tuple[str, str, StartOrder]]:
        """Plan and commit one tick (under the lock); the start orders to send. `only`: plan just these
        new tasks' instances, the earlier decisions standing (taskorg.master.quiet)."""
        rows = state.instances_to_plan(self.store, membership.usable, only)
        self.fresh_tasks = set()
        waiting = {str(r.job) for r in rows if r.status == "waiting"}
        dependencies = state.dependency_states(self.store, waiting)
        decided = plan(rows, membership, dependencies, self._spec_of, self.node_views, now,
                       state.healthy_tasks(self.store, waiting))
        handed_in = bool(records)
        records = records + decided.records
        self.reasons.planned({r.task_id for r in rows}, {p.instance.task_id for p in decided.placements},
                             decided.reasons, full=only is None)
        # The tick's own decisions take room or say why not; records handed in (a death) may free some.
        self._commit_with_task_status(records, None if handed_in else ())
        if only is not None:
            self.quiet.moved_on(self._tick_inputs(membership))
        else:
            self.quiet.planned(self._tick_inputs(membership), not records and not decided.placements,
                               next_due(rows, now), now)
        return [(str(p.instance.node), p.address, state.start_order(self.store, p.instance, p.spec, self.role.epoch))
                for p in decided.placements]

    def _served_instances(self, membership: Membership, addresses: dict[str, str]) -> list[Any] | None:
        """The running instances service names are built from; None when the names need no rebuild:
        neither the state nor the living nodes changed (an idle tick reads nothing), or the last rebuild
        was under NAMES_EVERY ago (a later tick does it). Under load every commit moves the state, and
        reading every running instance on every tick took most of the master's time at 10,000 tasks."""
        key = (self.store.position(), tuple(sorted(addresses.items())))
        now = time.monotonic()
        if self.served is not None and (self.served[0] == key or now - self.served[1] < NAMES_EVERY):
            return None
        self.served = (key, now)
        return state.served_instances(self.store)

    def _tick_inputs(self, membership: Membership) -> TickInputs:
        return TickInputs(self.store.position(), membership, capacity_key(self._placeable(), self.telemetry))

    def _placeable(self) -> list[dict[str, Any]]:
        """The members placement may choose: alive, active, and not resting after their slave could not
        be reached (UNREACHABLE_REST). A revived node whose slave was not up yet drew every task to it
        (the emptiest node) again and again: one task failed to start 34 times in a row, while two other
        nodes had room."""
        now = self.clock()
        resting = {node for node, until in self.unreachable.items() if until > now}
        if len(resting) != len(self.unreachable):
            self.unreachable = {node: self.unreachable[node] for node in resting}
        return [m for m in self.members.placeable() if m["node"] not in resting]

    def node_views(self) -> list[placement.NodeView]:
        """Placeable nodes (alive, active, reporting) with what is already reserved on them."""
        views, wanted = node_views(self._placeable(), self.telemetry)
        for node in wanted:
            self.telemetry_book.ask(node)
        live = [(task_id, node) for task_id, node in state.live_placements(self.store) if node in views]
        reserve(views, live, self._specs_of({task_id for task_id, _ in live}))
        return list(views.values())

    def _spec_of(self, inst: Instance) -> TaskSpec:
        return self.specs.get(inst.task_id, str(inst.spec))

    def _specs_of(self, task_ids: set[str]) -> dict[str, TaskSpec]:
        """Specs of these tasks: cached ones as they are, only the texts the cache lacks read (and parsed once)."""
        specs = {t: spec for t in task_ids if (spec := self.specs.known(t)) is not None}
        missing = task_ids - specs.keys()
        if missing:
            for task_id, text in state.spec_texts(self.store, missing).items():
                specs[task_id] = self.specs.get(task_id, text)
        return specs

    # ---- starts ----------------------------------------------------------------------------------
    def _start(self, node: str, address: str, order: StartOrder) -> None:
        try:
            self._send_start(node, address, order)
        finally:
            self.starts_in_flight.discard((order.task_id, order.index, order.attempt))

    def _send_start(self, node: str, address: str, order: StartOrder) -> None:
        try:
            answer = self.slaves.start(address, order)
        except ServiceError as exc:
            if exc.status == 409:
                log.warning("a slave fenced us: a newer master exists", extra={"node": node, "error": exc.message})
                return
            answer = ContainerState(task_id=order.task_id, index=order.index, attempt=order.attempt, status="error",
                                    error=exc.message, container_id="")
        except ProtocolError as exc:
            answer = ContainerState(task_id=order.task_id, index=order.index, attempt=order.attempt, status="error",
                                    error=str(exc), container_id="")
        except ServiceUnavailable as exc:
            self._start_failed(node, order, str(exc))
            return
        if answer.answered is not None:
            if len(self.start_answers) > MAX_START_ANSWERS:
                self.start_answers.clear()  # only a guard against stale reports; never worth unbounded memory
            self.start_answers[(order.task_id, order.index, order.attempt)] = answer.answered
        self.on_report(node, [answer], None, complete=False)  # kicks the tick if it changed anything

    def _start_failed(self, node: str, order: StartOrder, error: str) -> None:
        with self.lock:
            inst = state.instance(self.store, order.task_id, order.index)
            if not inst or inst.node != node or inst.attempt != order.attempt or inst.status != "starting":
                return
            now = self.clock()
            self.unreachable[node] = now + UNREACHABLE_REST  # its slave is not there: place elsewhere meanwhile
            records: list[Record] = [inst.but(status="pending", node=None, not_before=now + 1.0, updated_at=now),
                                     HistoryEvent(inst.task_id, inst.idx, "start_failed", node,
                                                  f"slave unreachable: {error}", now)]
            try:
                self._commit_with_task_status(records)
            except NotMaster:
                pass

    def close(self) -> None:
        self.relister.cancel()
        self.replicator.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.slaves.close()
        self.names.close()
