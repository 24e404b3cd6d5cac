"""Run task instances as docker containers on this node (docker SDK, local socket).

Containers carry labels (cluster, node, task, instance, epoch, attempt, job):
they are the slave's only state, so a restarted slave adopts what it already
runs by listing them. No docker restart policy is set: the master decides
about restarts, and one it cannot see would make a task run twice.
"""

from __future__ import annotations

import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from taskorg import labels
from taskorg.logs import get_logger
from taskorg.protocol import StartOrder
from taskorg.slave.runner.container_files import (remove_container_files, sweep_container_files,
                                                   write_container_files)
from taskorg.slave.runner.create_args import RESULT_FILE, Site, create_args, shared_job_dir
from taskorg.slave.runner.docker_images import DEFAULT_PULL_TIMEOUT, ensure_image
from taskorg.slave.runner.docker_results import MAX_RESULT_BYTES, Result, read_result
from taskorg.slave.runner.docker_state import STABLE, container_state, explain, int_label, listed_health
from taskorg.slave.runner.order import container_name, order_state

log = get_logger("slave.runner")

DEFAULT_STOP_TIMEOUT = 10  # Docker's own: seconds between the stop signal and SIGKILL


class DockerRunner:
    def __init__(self, docker_client: docker.DockerClient, cluster: str, node: str,
                 address: str = "0.0.0.0", shared_dir: str = "", site: Site | None = None,
                 pull_timeout: float = DEFAULT_PULL_TIMEOUT) -> None:
        """`address` is the node's own address: published ports bind to it only.

        `shared_dir` is the cluster-wide shared storage on this node (NFS in
        a lab); each job gets `<shared_dir>/<job id>` mounted at /shared.
        `site` (when given) says all of that and the container defaults at once.
        """
        self.site = site or Site(cluster, node, address, shared_dir)
        self.pull_timeout = pull_timeout
        self._results: dict[str, Result] = {}
        # State of each container by (id, docker status, health), for list(): see there.
        self._states: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        self._states_lock = threading.Lock()
        self._forgotten: set[str] = set()
        self.client = docker_client
        self.cluster = self.site.cluster
        self.node = self.site.node
        self.address = self.site.address
        # Starts of the same container name are serialised; a fixed set of
        # striped locks keeps memory bounded however many tasks come and go.
        self._locks = [threading.Lock() for _ in range(32)]

    # ---- names and labels ----------------------------------------------
    def container_name(self, task_id: str, index: int, attempt: int) -> str:
        return container_name(self.cluster, self.node, task_id, index, attempt)

    def _own_filters(self, **extra: str) -> dict[str, list[str]]:
        wanted = {labels.CLUSTER: self.cluster, labels.NODE: self.node, **extra}
        return {"label": [f"{key}={value}" for key, value in wanted.items()]}

    def _is_own(self, container: Container) -> bool:
        found = container.labels or {}
        return found.get(labels.CLUSTER) == self.cluster and found.get(labels.NODE) == self.node

    # ---- start -----------------------------------------------------------
    def start(self, order: StartOrder) -> dict[str, Any]:
        """Start one attempt of one instance; the same attempt twice gives the same container.

        Failures that are the task's (missing image, bad mount, port taken)
        come back as a state with status `error`; only an unreachable docker
        engine raises.
        """
        name = self.container_name(order.task_id, order.index, order.attempt)
        args = create_args(order, name, self.site)
        with self._lock_for(name):
            existing = self._get(name)
            if existing is not None:
                return self.state(existing)
            self._remove_earlier_attempts(order)
            problem = ensure_image(self.client, order.spec.image, self.node, order.spec.platform,
                                   self.pull_timeout)
            if problem:
                return self._error_state(order, name, problem)
            self._make_shared_dir(order)
            write_container_files(self.site, name, order.spec)
            return self._create_and_start(order, name, args)

    def sweep_files(self) -> None:
        """At start-up: drop the secret and config files of containers that are gone."""
        gone = sweep_container_files(self.site, {c.name for c in self._own()})
        if gone:
            log.info("removed files of gone containers", extra={"count": len(gone)})

    def _lock_for(self, name: str) -> threading.Lock:
        return self._locks[zlib.crc32(name.encode()) % len(self._locks)]

    def _make_shared_dir(self, order: StartOrder) -> None:
        """The job's directory on the shared storage, created on first use."""
        path = shared_job_dir(self.site, order)
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # tasks may run as any user

    def _create_and_start(self, order: StartOrder, name: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            container = self.client.containers.create(**args)
        except APIError as exc:
            if exc.status_code == 409:  # created meanwhile by someone else: same attempt
                existing = self._get(name)
                if existing is not None:
                    return self.state(existing)
            remove_container_files(self.site, name)
            return self._error_state(order, name, f"cannot create container on {self.node}: {explain(exc)}")
        try:
            container.start()
        except APIError as exc:
            # A container that never started would be returned forever by the
            # idempotent path; remove it so a retry (next attempt) starts clean.
            self._remove(container)
            return self._error_state(order, name, f"cannot start container on {self.node}: {explain(exc)}")
        container.reload()
        log.info("started", extra={"container": name, "id": container.short_id})
        return self.state(container)

    def result(self, container: Container) -> Result:
        """The JSON a finished task wrote to its result file: (value, error); cached."""
        if container.id in self._results:
            return self._results[container.id]
        env = dict(item.partition("=")[::2] for item in container.attrs.get("Config", {}).get("Env") or [])
        path = env.get("TASKORG_RESULT") or RESULT_FILE
        try:
            found = read_result(container, path, MAX_RESULT_BYTES)
        except APIError as exc:
            return None, f"cannot read result file {path}: {explain(exc)}"  # not cached: may pass later
        self._results[container.id] = found
        return found

    def _remove_earlier_attempts(self, order: StartOrder) -> None:
        instance = f"{order.task_id}/{order.index}"
        for container in self._own(**{labels.INSTANCE: instance}):
            attempt = int_label(container, labels.ATTEMPT)
            status = container.attrs.get("State", {}).get("Status")
            if attempt < order.attempt and status in ("exited", "dead", "created"):
                self._remove(container)
                log.info("removed earlier attempt", extra={"container": container.name})

    def _error_state(self, order: StartOrder, name: str, message: str) -> dict[str, Any]:
        log.warning("start failed", extra={"container": name, "error": message})
        return order_state(order, name, status="error", error=message)

    # ---- inspect -----------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        """Every container of this cluster and node, any state.

        Reports run on every change and every `report_resync_interval`, so this must be cheap: one sparse
        listing, and a full inspect only for a container whose docker status
        (or health) changed since the last call. (An inspect per container per
        report kept dockerd so busy with a few dozen containers that starts took 30 s.)
        A running or finished container's state is fixed until its status
        changes; transient ones (created, restarting, removing) are never cached.
        """
        listed = self.client.containers.list(all=True, sparse=True, filters=self._own_filters())
        with self._states_lock:
            known = dict(self._states)
        fresh: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        states: list[dict[str, Any]] = []
        for sparse in listed:
            attrs = sparse.attrs
            key = (sparse.id, str(attrs.get("State") or ""), listed_health(str(attrs.get("Status") or "")))
            state = known.get(key)
            if state is None:
                full = self._get(sparse.id)
                if full is None:
                    continue  # removed meanwhile
                state = self.state(full)
                key = (full.id, str((full.attrs.get("State") or {}).get("Status") or ""), state.get("health"))
            if key[1] in STABLE:
                fresh[key] = state
            states.append(state)
        with self._states_lock:
            self._states = {key: state for key, state in fresh.items() if key[0] not in self._forgotten}
            self._forgotten.clear()
        gone = set(self._results) - {key[0] for key in fresh}
        for container_id in gone:
            self._results.pop(container_id, None)
        return states

    def forget_state(self, container_id: str) -> None:
        """The next list() inspects this container afresh: docker says it changed, and its
        listing may lag a moment behind (a cached "running" must not hide a death)."""
        with self._states_lock:
            self._states = {key: state for key, state in self._states.items() if key[0] != container_id}
            self._forgotten.add(container_id)  # also from a list() running right now

    def _own(self, **extra: str) -> list[Container]:
        return self.client.containers.list(all=True, filters=self._own_filters(**extra), ignore_removed=True)

    def _get(self, name_or_id: str) -> Container | None:
        try:
            return self.client.containers.get(name_or_id)
        except NotFound:
            return None

    def state(self, container: Container) -> dict[str, Any]:
        """The container state of docs/api.md, from docker's inspect data."""
        state = container_state(container)
        if state["status"] in ("exited", "dead"):
            state["result"], state["result_error"] = self.result(container)
        return state

    def logs(self, task_id: str, index: int, tail: int | None = 200, since: float | None = None,
             timestamps: bool = False) -> str:
        """Logs of the newest attempt of one instance (`tail` None: all; `since`: from that Unix time on,
        inclusive); LookupError when there is none."""
        data = self._newest(task_id, index).logs(stdout=True, stderr=True, timestamps=timestamps,
                                                 **_log_window(tail, since))
        return data.decode("utf-8", errors="replace")

    def follow_logs(self, task_id: str, index: int, tail: int | None = None, since: float | None = None,
                    timestamps: bool = True) -> Any:
        """The newest attempt's output as it is written: an iterator of bytes with `close()`, ending when
        the container stops or `close()` is called; LookupError when there is none."""
        return self._newest(task_id, index).logs(stdout=True, stderr=True, timestamps=timestamps, stream=True,
                                                 follow=True, **_log_window(tail, since))

    def _newest(self, task_id: str, index: int) -> Container:
        containers = self._own(**{labels.INSTANCE: f"{task_id}/{index}"})
        if not containers:
            raise LookupError(f"no container for {task_id}/{index} on {self.node}")
        return max(containers, key=lambda c: int_label(c, labels.ATTEMPT))

    def changes(self) -> "DockerChanges":
        """Docker's events (CHANGE_EVENTS) for this cluster's and node's containers."""
        return DockerChanges(self)

    def close(self) -> None:
        self.client.close()

    # ---- stop --------------------------------------------------------------
    def stop(self, container_ids: Iterable[str]) -> list[str]:
        """Stop (the task's stop signal, then SIGKILL after its stop grace period) and remove,
        in parallel.

        Returns the ids that are gone now; a missing container counts as
        removed. Containers that are not this cluster's and node's are refused.
        """
        ids = [str(cid) for cid in container_ids if cid]
        if not ids:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
            results = list(pool.map(self._stop_one, ids))
        return [cid for cid, gone in zip(ids, results) if gone]

    def stop_task(self, task_id: str) -> list[str]:
        """Stop and remove every container of one task on this node."""
        return self.stop([c.id for c in self._own(**{labels.TASK: task_id})])

    def _stop_one(self, container_id: str) -> bool:
        container = self._get(container_id)
        if container is None:
            return True
        if not self._is_own(container):
            log.warning("refused to stop a container that is not ours",
                        extra={"container": container.name, "cluster": self.cluster, "node": self.node})
            return False
        try:
            if container.status in ("running", "paused", "restarting"):
                container.stop(timeout=stop_timeout(container))
            container.remove(force=True)
        except NotFound:
            remove_container_files(self.site, container.name)
            return True
        except APIError as exc:
            if "already in progress" in explain(exc):
                return True
            log.warning("stop failed", extra={"container": container.name, "error": explain(exc)})
            return False
        remove_container_files(self.site, container.name)
        log.info("removed", extra={"container": container.name})
        return True

    def _remove(self, container: Container) -> None:
        """Remove a container that is not running, and its files; quietly (it may be gone)."""
        try:
            container.remove(force=True)
        except (NotFound, APIError) as exc:
            log.debug("remove failed", extra={"container": container.name, "error": str(exc)})
        remove_container_files(self.site, container.name)


def stop_timeout(container: Container) -> int:
    """The container's own stop grace period (its spec's, in its label; Docker's 10 s without one)."""
    found = int_label(container, labels.STOP_GRACE) if (container.labels or {}).get(labels.STOP_GRACE) else None
    return DEFAULT_STOP_TIMEOUT if found is None else found


# Docker's container events that change what a report says. `kill` and `oom` are followed by `die`;
# docker matches "health_status" against "health_status: healthy" and the others.
CHANGE_EVENTS = ("start", "die", "stop", "destroy", "health_status")


class DockerChanges:
    """The ids of this node's containers as docker reports them started, dead, stopped, removed or their
    health changed (docker's event stream, filtered by docker on this cluster's and node's labels).

    Each change first drops the runner's cached state of that container:
    docker's listing may still say "running" for a moment, so the next
    list() inspects it afresh.
    """

    def __init__(self, runner: DockerRunner) -> None:
        filters = {"type": "container", "event": list(CHANGE_EVENTS),
                   "label": [f"{labels.CLUSTER}={runner.cluster}", f"{labels.NODE}={runner.node}"]}
        self.runner = runner
        self.stream = runner.client.events(decode=True, filters=filters)

    def __iter__(self) -> Iterator[str]:
        for event in self.stream:
            container_id = str(event.get("Actor", {}).get("ID", "") or event.get("id", ""))
            self.runner.forget_state(container_id)
            yield container_id

    def close(self) -> None:
        self.stream.close()


def _log_window(tail: int | None, since: float | None) -> dict[str, Any]:
    """Docker's `tail` and `since` arguments (its `since` is inclusive, to the nanosecond)."""
    window: dict[str, Any] = {"tail": "all" if tail is None else max(0, int(tail))}
    if since is not None and since > 0:
        window["since"] = float(since)
    return window
