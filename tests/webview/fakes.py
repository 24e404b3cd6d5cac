"""A stand-in for the cluster, for the pure-logic unit tests only.

The browser tests run against a real local cluster; this fake exists so the
pages' logic (login, CSRF, escaping, error display) is tested in milliseconds.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from taskorg.logstream import stamp_seconds
from taskorg.net.client import ServiceError
from taskorg.webview.cluster import DnsUnavailable, MasterUnavailable, SubmitResult
from taskorg.webview.jobs import job_rows

TELEMETRY = {"cpu_count": 4, "cpu_percent": 12.5, "load1": 0.4, "memory_total": 8 * 2**30,
             "memory_available": 5 * 2**30, "temperatures": {"coretemp/Package id 0": 47.0}, "gpus": [],
             "speed": 1.02, "disk": {"mount": "/", "total": 32 * 2**30, "used": 24 * 2**30, "percent": 75.0},
             "docker_disk": {"mount": "/srv/docker", "total": 100 * 2**30, "used": 91 * 2**30, "percent": 91.0}}


def fake_history(node: str, now: float) -> dict[str, Any]:
    """Forty minutes of points, a hole of five minutes (a failover) and a disk filling up; node3 has none."""
    points = []
    if node != "node3":
        for n in range(240):
            if 100 <= n < 130:
                continue
            points.append({"time": now - 2400 + 10 * n, "cpu": 20 + (n * 7) % 60, "memory": 40 + n / 10,
                           "disk": 50 + n / 8, "temperature": 45 + (n % 20) / 2})
    return {"node": node, "step": 10.0, "span": 3600.0, "points": points}


class FakeCluster:
    """Three nodes, node1 master at epoch 2; flags make the master or DNS vanish."""

    def __init__(self) -> None:
        self.master = "node1"
        self.epoch = 2
        self.master_down = False
        self.dns_down = False
        self.calls: list[tuple[str, Any]] = []
        self.task_reads: list[str] = []  # task() calls: the job page must not repeat them on every update
        self.problems: list[dict[str, Any]] = []
        self.tasks_by_id: dict[str, dict[str, Any]] = {
            "t-0000aaaa": self._task("t-0000aaaa", "hello", "running"),
            **self._pipeline(),
        }
        self.event_log = self._failover_events()
        # What the task writes: Docker's timestamped lines (the page shows the first, then streams).
        self.log_lines = [f"2026-12-01T10:00:0{n}.000000000Z " + ("hello <b>world</b>" if n == 0 else f"line {n}")
                          for n in range(4)]
        self.log_queries: list[Any] = []

    @classmethod
    def _pipeline(cls) -> dict[str, dict[str, Any]]:
        """A three-step job: prepare (done) -> compute (3 instances, running) -> report (waiting)."""
        tasks = {}
        for number, (name, status, after, states) in enumerate([
                ("prepare", "succeeded", [], ["succeeded"]),
                ("compute", "running", ["prepare"], ["succeeded", "running", "running"]),
                ("report", "pending", ["compute"], ["waiting"])]):
            task = cls._task(f"t-0000c00{number}", name, status)
            task.update(job="j-33330000", job_name="pipeline", created_at=task["created_at"] + 30 + number)
            task["spec"]["after"] = after
            task["instances"] = [{**task["instances"][0], "index": i, "status": state} for i, state in enumerate(states)]
            tasks[task["id"]] = task
        return tasks

    @staticmethod
    def _failover_events() -> list[dict[str, Any]]:
        """node1 (master) dies; node2 is elected, declares node1 dead, and moves its one instance."""
        t = time.time() - 30
        rows = [(t - 100, "master_changed", None, None, "node1", "epoch 1"),
                (t + 0.75, "master_changed", None, None, "node2", "epoch 2"),
                (t + 1.02, "node_dead", None, None, "node1", "no heartbeat"),
                (t + 1.03, "task_rescheduled", "t-0000aaaa", 0, "node1", "node node1 dead: placing again"),
                (t + 1.04, "instance_placed", "t-0000aaaa", 0, "node3", "attempt 2"),
                (t + 1.61, "instance_running", "t-0000aaaa", 0, "node3", "attempt 2")]
        return [{"id": n, "time": at, "kind": kind, "task": task, "index": index, "job": None, "name": "hello" if task else None,
                 "node": node, "detail": detail} for n, (at, kind, task, index, node, detail) in enumerate(rows, 1)]

    @staticmethod
    def _task(task_id: str, name: str, status: str) -> dict[str, Any]:
        now = time.time()
        return {"id": task_id, "job": "j-11110000", "job_name": name, "name": name, "status": status, "desired": "running",
                "replicas": 1, "created_at": now - 60, "updated_at": now - 5,
                "spec": {"name": name, "image": "taskorg/busybox:latest", "command": ["sleep", "60"]},
                "instances": [{"index": 0, "node": "node2", "status": status, "attempt": 1, "exit_code": None,
                               "container_id": "c0ffee", "started_at": now - 50, "finished_at": None, "error": None,
                               "health": "healthy"}],
                "history": [{"id": 1, "task_id": task_id, "idx": 0, "time": now - 55, "event": "placed",
                             "node": "node2", "detail": "spread"}],
                "result": None}

    def _need_master(self) -> None:
        if self.master_down:
            raise MasterUnavailable("master changing over, retrying (test)")

    def dns_members(self) -> dict[str, Any]:
        if self.dns_down:
            raise DnsUnavailable("the DNS service at 127.0.9.1 does not answer (test)")
        members = [{"node": f"node{n}", "number": n, "fqdn": f"node{n}.test", "address": f"127.0.9.{n + 1}",
                    "labels": {"arch": "amd64"}, "alive": True, "last_seen_ago": 0.12, "state": "active",
                    "replica": [self.epoch, 10], "role": "master" if f"node{n}" == self.master else "standby"}
                   for n in (1, 2, 3)]
        return {"members": members, "master": self.master, "epoch": self.epoch, "arbiter": "127.0.9.1",
                "dns_servers": {"voters": ["127.0.9.1", "127.0.9.2", "127.0.9.3"],
                                "reachable": ["127.0.9.1", "127.0.9.2", "127.0.9.3"], "leader": "127.0.9.1"}}

    def status(self) -> dict[str, Any]:
        self._need_master()
        counts: dict[str, int] = {}
        for task in self.tasks_by_id.values():
            counts[task["status"]] = counts.get(task["status"], 0) + 1
        return {"master": self.master, "epoch": self.epoch, "active": True, "seq": 10, "counts": counts,
                "last_event": len(self.event_log), "replicas": {"node2": 10, "node3": 8}}

    def members(self, history: bool = False) -> dict[str, Any]:
        self._need_master()
        self.calls.append(("members", history))
        view = self.dns_members()
        for member in view["members"]:
            member["telemetry"] = dict(TELEMETRY, node=member["node"])
            member["running"] = 1 if member["node"] == "node2" else 0
            if history:
                member["history"] = fake_history(member["node"], time.time())
        return view

    def tasks(self, **filters: str) -> list[dict[str, Any]]:
        self._need_master()
        self.calls.append(("tasks", filters))
        return [t for t in self.tasks_by_id.values()
                if (not filters.get("state") or t["status"] == filters["state"])
                and (not filters.get("name") or filters["name"] in t["name"])
                and (not filters.get("job") or t["job"] == filters["job"])]

    def task(self, task_id: str) -> dict[str, Any]:
        self._need_master()
        self.task_reads.append(task_id)
        if task_id not in self.tasks_by_id:
            raise ServiceError(404, f"no task {task_id}")
        return self.tasks_by_id[task_id]

    def logs(self, task_id: str, index: int, tail: int = 200) -> dict[str, Any]:
        self._need_master()
        return {"id": task_id, "index": index, "node": "node2",
                "logs": "".join(f"{line}\n" for line in self.log_lines[:1])}

    def log_stream(self, task_id: str, index: int, query: Any) -> Iterator[bytes]:
        """The lines from `query.since` on, in chunks that cut lines in two (as a network does)."""
        self._need_master()
        self.log_queries.append(query)
        text = "".join(f"{line}\n" for line in self.log_lines
                       if query.since is None or stamp_seconds(line.split(" ", 1)[0]) >= query.since).encode()
        return iter([text[i:i + 10] for i in range(0, len(text), 10)])

    def events(self, since: int) -> list[dict[str, Any]]:
        self._need_master()
        self.calls.append(("events", since))
        return [e for e in self.event_log if e["id"] > since][:500]

    def jobs(self, limit: int, before: float | None = None) -> list[dict[str, Any]]:
        self._need_master()
        return job_rows(self.tasks_by_id.values(), limit, before)

    def submit(self, text: str, source: str, dry_run: bool = False) -> SubmitResult:
        self._need_master()
        self.calls.append(("submit", (text, source, dry_run)))
        if self.problems:
            return SubmitResult(False, {"error": "invalid spec", "problems": self.problems}, 400)
        if dry_run:
            return SubmitResult(True, {"job": None, "placements": {"hello": ["node2"]}}, 200)
        self.tasks_by_id["t-0000bbbb"] = self._task("t-0000bbbb", "hello", "pending")
        return SubmitResult(True, {"job": "j-22220000", "tasks": [{"id": "t-0000bbbb", "name": "hello", "replicas": 1}]},
                            201)

    def cancel(self, task_id: str) -> dict[str, Any]:
        self._need_master()
        self.calls.append(("cancel", task_id))
        self.tasks_by_id[task_id]["status"] = "cancelled"
        return {"id": task_id, "status": "cancelled"}

    def restart(self, task_id: str) -> dict[str, Any]:
        self._need_master()
        self.calls.append(("restart", task_id))
        return {"id": task_id}

    def drain(self, node: str) -> dict[str, Any]:
        self.calls.append(("drain", node))
        return {"node": node, "state": "draining"}

    def activate(self, node: str) -> dict[str, Any]:
        self.calls.append(("activate", node))
        return {"node": node, "state": "active"}
