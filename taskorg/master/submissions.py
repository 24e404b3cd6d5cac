"""Group commit of submissions: those waiting for the engine lock at the same moment share one commit.

One transaction is one fsync and one replication round, so a burst of
submissions costs about as much as one (issue 14). Nothing waits for a beat
to gather them: they gather while the lock is busy, and whichever submitter
gets it first commits them all. A retried request (same `request_id`) gets
its first answer again, within one group as across groups. Apart from the
engine, which only lends its lock and `commit`.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable, ContextManager, Iterable

from taskorg.master import state
from taskorg.master.state import Record
from taskorg.master.store import Store
from taskorg.master.updates import NoRunningJob, UpdateRefused, update_of
from taskorg.spec import JobSpec


@dataclasses.dataclass
class Submission:
    """One submission waiting for a group commit, and what became of it."""

    job: JobSpec
    source: str
    request_id: str | None
    update_only: bool = False  # `taskorg update`: refused (NoRunningJob) unless a job of the name runs
    answer: dict[str, Any] | None = None
    error: BaseException | None = None


class GroupCommit:
    def __init__(self, lock: ContextManager[Any], store: Store, commit: Callable[[Iterable[Record], bool], int],
                 clock: Callable[[], float]) -> None:
        self.lock = lock  # the engine's: a group forms while it is busy
        self.store = store
        self.commit = commit  # (records, whether they are new jobs only: no update among them)
        self.clock = clock
        self.waiting_lock = threading.Lock()
        self.waiting: list[Submission] = []
        self.updated: dict[str, dict[str, Any]] = {}  # a batch's updates by request (they make no job row)

    def submit(self, job: JobSpec, source: str, request_id: str | None, update_only: bool = False) -> dict[str, Any]:
        """Commit a job with whichever submissions wait with it; its answer, with the commit's `seq`. A job
        whose name runs is updated in place (see `updates`)."""
        mine = Submission(job, source, request_id, update_only)
        with self.waiting_lock:
            self.waiting.append(mine)
        with self.lock:
            if mine.answer is None and mine.error is None:
                self._commit_waiting()
        if mine.error is not None:
            raise mine.error
        return dict(mine.answer or {})

    def _commit_waiting(self) -> None:
        """Commit every queued submission in one transaction (under the engine lock); answer each."""
        with self.waiting_lock:
            batch, self.waiting = self.waiting, []
        now = self.clock()
        records: list[Record] = []
        by_request: dict[str, dict[str, Any]] = {}
        self.updated = {}
        updates = False
        for sub in batch:
            known = state.job_by_request(self.store, sub.request_id) if sub.request_id else None
            if known:
                sub.answer = {"job": known["id"], "name": known["name"], "seed": known["seed"],
                              "tasks": state.job_tasks(self.store, known["id"]), "repeated": True}
            elif sub.request_id in by_request or sub.request_id in self.updated:  # the same request again
                sub.answer = {**(by_request.get(sub.request_id) or self.updated[sub.request_id]), "repeated": True}
            elif self._as_update(sub, records, now):
                updates = True
                continue
            else:
                job_records, sub.answer = state.job_records(sub.job, sub.source, sub.request_id, now)
                records += job_records
                if sub.request_id:
                    by_request[sub.request_id] = sub.answer
        try:
            seq = self.commit(records, not updates)
        except BaseException as exc:
            for sub in batch:
                sub.answer, sub.error = None, exc
            return
        for sub in batch:
            if sub.error is None:
                sub.answer = {**(sub.answer or {}), "seq": seq}

    def _as_update(self, sub: Submission, records: list[Record], now: float) -> bool:
        """Whether `sub` was taken as an update (or refused as one): its records join the commit."""
        try:
            found = update_of(self.store, sub.job, now)
            if found is None and sub.update_only:
                raise NoRunningJob(f"no job named {sub.job.name} runs: there is nothing to update "
                                   "(submit it to start it)")
        except (UpdateRefused, NoRunningJob) as exc:
            sub.error = exc
            return True
        if found is None:
            return False
        update, sub.answer = found
        records += state.with_task_status(self.store, update, now)  # type: ignore[arg-type]
        if sub.request_id:
            self.updated[sub.request_id] = sub.answer
        return True
