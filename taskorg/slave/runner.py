"""Run task instances as docker containers on this node (docker SDK, local socket).

Containers carry labels (cluster, node, task, instance, epoch, attempt, job):
they are the slave's only state, so a restarted slave adopts what it already
runs by listing them. No docker restart policy is set: the master decides
about restarts, and one it cannot see would make a task run twice.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Mapping

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import LogConfig, Mount
from docker.utils import parse_repository_tag

from taskorg import labels
from taskorg.logs import get_logger

log = get_logger("slave.runner")

STOP_TIMEOUT = 3  # seconds between SIGTERM and SIGKILL
PULL_TIMEOUT = 20.0  # a pull must finish in this time, or the start fails
RESULT_FILE = "/tmp/taskorg-result.json"  # where a task writes its JSON result, unless its spec says
MAX_RESULT_BYTES = 64 * 1024  # results are small summaries; data goes to /shared
SHARED_TARGET = "/shared"  # the job's directory on the cluster's shared storage
# Docker states -> the states of docs/api.md. `paused` still holds the
# instance (it must not be recreated elsewhere); `removing` is on its way out.
_STATUS = {"created": "created", "running": "running", "paused": "running", "restarting": "running",
           "removing": "exited", "exited": "exited", "dead": "dead"}
# Docker statuses whose inspect data stays the same until the status changes.
_STABLE = frozenset({"running", "exited", "dead"})


class OrderError(ValueError):
    """A start order is malformed (the master's bug, answered with 400)."""


class DockerRunner:
    def __init__(self, docker_client: docker.DockerClient, cluster: str, node: str,
                 address: str = "0.0.0.0", shared_dir: str = "") -> None:
        """`address` is the node's own address: published ports bind to it only.

        `shared_dir` is the cluster-wide shared storage on this node (NFS in
        a lab); each job gets `<shared_dir>/<job id>` mounted at /shared.
        """
        self.shared_dir = shared_dir
        self._results: dict[str, tuple[Any, str | None]] = {}
        # State of each container by (id, docker status), for list(): see there.
        self._states: dict[tuple[str, str], dict[str, Any]] = {}
        self._states_lock = threading.Lock()
        self._forgotten: set[str] = set()
        self.client = docker_client
        self.cluster = cluster
        self.node = node
        self.address = address
        # Starts of the same container name are serialised; a fixed set of
        # striped locks keeps memory bounded however many tasks come and go.
        self._locks = [threading.Lock() for _ in range(32)]

    # ---- names and labels ----------------------------------------------
    def container_name(self, task_id: str, index: int, attempt: int) -> str:
        return f"tk-{self.cluster}-{self.node}-{task_id}-{index}-a{attempt}"

    def _own_filters(self, **extra: str) -> dict[str, list[str]]:
        wanted = {labels.CLUSTER: self.cluster, labels.NODE: self.node, **extra}
        return {"label": [f"{key}={value}" for key, value in wanted.items()]}

    def _is_own(self, container: Container) -> bool:
        found = container.labels or {}
        return found.get(labels.CLUSTER) == self.cluster and found.get(labels.NODE) == self.node

    # ---- start -----------------------------------------------------------
    def start(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """Start one attempt of one instance; the same attempt twice gives the same container.

        Failures that are the task's (missing image, bad mount, port taken)
        come back as a state with status `error`; only an unreachable docker
        engine raises.
        """
        order = _check_order(order)
        name = self.container_name(order["task_id"], order["index"], order["attempt"])
        try:
            args = self._create_args(order, name)
        except (KeyError, TypeError, ValueError) as exc:
            raise OrderError(f"order field 'spec': cannot use it: {type(exc).__name__}: {exc}") from None
        with self._lock_for(name):
            existing = self._get(name)
            if existing is not None:
                return self.state(existing)
            self._remove_earlier_attempts(order)
            image = order["spec"]["image"]
            problem = self._ensure_image(image)
            if problem:
                return self._error_state(order, name, problem)
            return self._create_and_start(order, name, args)

    def _lock_for(self, name: str) -> threading.Lock:
        return self._locks[zlib.crc32(name.encode()) % len(self._locks)]

    def _create_and_start(self, order: dict[str, Any], name: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            container = self.client.containers.create(**args)
        except APIError as exc:
            if exc.status_code == 409:  # created meanwhile by someone else: same attempt
                existing = self._get(name)
                if existing is not None:
                    return self.state(existing)
            return self._error_state(order, name, f"cannot create container on {self.node}: {_explain(exc)}")
        try:
            container.start()
        except APIError as exc:
            # A container that never started would be returned forever by the
            # idempotent path; remove it so a retry (next attempt) starts clean.
            _quietly_remove(container)
            return self._error_state(order, name, f"cannot start container on {self.node}: {_explain(exc)}")
        container.reload()
        log.info("started", extra={"container": name, "id": container.short_id})
        return self.state(container)

    def _create_args(self, order: dict[str, Any], name: str) -> dict[str, Any]:
        spec = order["spec"]
        task_id, index, attempt = order["task_id"], order["index"], order["attempt"]
        env = {str(k): _env_value(v) for k, v in (spec.get("env") or {}).items()}
        env.update({str(k): _env_value(v) for k, v in (order.get("env") or {}).items()})
        env.update(TASKORG_TASK_ID=task_id, TASKORG_INDEX=str(index), TASKORG_NODE=self.node,
                   TASKORG_ATTEMPT=str(attempt), TASKORG_RESULT=spec.get("result_file") or RESULT_FILE)
        mounts = [self._mount(volume) for volume in spec.get("volumes") or []]
        if self.shared_dir and order.get("job"):
            mounts.append(self._shared_mount(str(order["job"])))
            env["TASKORG_SHARED"] = SHARED_TARGET
        network = spec.get("network") or "bridge"
        args: dict[str, Any] = {
            "image": spec["image"],
            "name": name,
            "command": spec.get("command"),
            "entrypoint": spec.get("entrypoint"),
            "environment": env,
            "labels": {
                labels.CLUSTER: self.cluster,
                labels.NODE: self.node,
                labels.TASK: task_id,
                labels.INSTANCE: f"{task_id}/{index}",
                labels.EPOCH: str(order["epoch"]),
                labels.ATTEMPT: str(attempt),
                labels.JOB: str(order.get("job") or ""),
            },
            "network_mode": network,
            "privileged": bool(spec.get("privileged")),
            "working_dir": spec.get("workdir") or None,
            "user": spec.get("user") or None,
            "mounts": mounts,
            # Small machines: keep container logs bounded.
            "log_config": LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"}),
            # A tiny init forwards SIGTERM and reaps zombies, so stops are quick.
            "init": True,
            "detach": True,
        }
        resources = spec.get("resources") or {}
        if resources.get("cpus"):
            args["nano_cpus"] = int(float(resources["cpus"]) * 1e9)
        if resources.get("memory"):
            args["mem_limit"] = int(resources["memory"])
        if network not in ("host", "none") and spec.get("ports"):
            args["ports"] = self._port_bindings(spec["ports"])
        return args

    def _port_bindings(self, ports: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """`{"80/tcp": ("127.0.1.3", 8080)}`, bound to the node's own address only."""
        bindings: dict[str, list[tuple[Any, ...]]] = {}
        for port in ports:
            key = f"{int(port['container'])}/{port.get('protocol') or 'tcp'}"
            host = port.get("host")
            binding = (self.address, int(host)) if host else (self.address,)  # no host port: ephemeral
            bindings.setdefault(key, []).append(binding)
        return {key: value[0] if len(value) == 1 else value for key, value in bindings.items()}

    def _mount(self, volume: Mapping[str, Any]) -> Mount:
        kind = volume.get("type") or "volume"
        # Named volumes created here carry the cluster label so `cluster down` can find them.
        extra = {"labels": {labels.CLUSTER: self.cluster}} if kind == "volume" else {}
        return Mount(target=volume["target"], source=volume["source"], type=kind,
                     read_only=bool(volume.get("read_only")), **extra)

    def _shared_mount(self, job: str) -> Mount:
        """The job's directory on the shared storage, created on first use."""
        if not job.replace("-", "").isalnum():
            raise ValueError(f"job id {job!r} cannot name a directory")
        path = Path(self.shared_dir) / job
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # tasks may run as any user
        return Mount(target=SHARED_TARGET, source=str(path), type="bind")

    def result(self, container: Container) -> tuple[Any, str | None]:
        """The JSON a finished task wrote to its result file: (value, error); cached."""
        if container.id in self._results:
            return self._results[container.id]
        env = dict(item.partition("=")[::2] for item in container.attrs.get("Config", {}).get("Env") or [])
        path = env.get("TASKORG_RESULT") or RESULT_FILE
        try:
            stream, info = container.get_archive(path)
            if info.get("size", 0) > MAX_RESULT_BYTES:
                found: tuple[Any, str | None] = (None, f"result file {path} is larger than {MAX_RESULT_BYTES} bytes")
            else:
                with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                    member = archive.next()
                    handle = archive.extractfile(member) if member else None
                    text = handle.read().decode() if handle else ""
                found = (json.loads(text), None) if text.strip() else (None, None)
        except NotFound:
            found = (None, None)  # the task wrote no result: that is allowed
        except (ValueError, UnicodeDecodeError) as exc:
            found = (None, f"result file {path} is not JSON: {exc}")
        except APIError as exc:
            return None, f"cannot read result file {path}: {_explain(exc)}"  # not cached: may pass later
        self._results[container.id] = found
        return found

    def _ensure_image(self, image: str) -> str | None:
        """None when the image is here (or was pulled); else why it is not."""
        try:
            self.client.images.get(image)
            return None
        except ImageNotFound:
            pass
        except APIError as exc:  # e.g. an invalid reference: pulling cannot help
            return f"image {image} cannot be used on {self.node}: {_explain(exc)}"
        try:
            self._pull(image)
            return None
        except Exception as exc:  # any failure to pull ends in the same answer
            reason = _explain(exc) if isinstance(exc, APIError) else str(exc) or type(exc).__name__
            return f"image {image} not found on {self.node} and could not be pulled: {reason}"

    def _pull(self, image: str) -> None:
        """One pull with a deadline (docker-py's own pull has no timeout)."""
        repository, tag = parse_repository_tag(image)
        params = {"fromImage": repository, "tag": tag or "latest"}
        api = self.client.api
        deadline = time.monotonic() + PULL_TIMEOUT
        response = api._post(api._url("/images/create"), params=params, stream=True, timeout=PULL_TIMEOUT)
        api._raise_for_status(response)
        try:
            for event in api._stream_helper(response, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise RuntimeError(event["error"])
                if time.monotonic() > deadline:
                    raise TimeoutError(f"pull took longer than {PULL_TIMEOUT:g}s")
        finally:
            response.close()
        self.client.images.get(image)  # raises when the pull "succeeded" without an image

    def _remove_earlier_attempts(self, order: dict[str, Any]) -> None:
        instance = f"{order['task_id']}/{order['index']}"
        for container in self._own(**{labels.INSTANCE: instance}):
            attempt = _int_label(container, labels.ATTEMPT)
            status = container.attrs.get("State", {}).get("Status")
            if attempt < order["attempt"] and status in ("exited", "dead", "created"):
                _quietly_remove(container)
                log.info("removed earlier attempt", extra={"container": container.name})

    def _error_state(self, order: dict[str, Any], name: str, message: str) -> dict[str, Any]:
        log.warning("start failed", extra={"container": name, "error": message})
        return {
            "task_id": order["task_id"], "index": order["index"], "attempt": order["attempt"],
            "epoch": order["epoch"], "job": order.get("job"), "container_id": None, "name": name,
            "status": "error", "exit_code": None, "started_at": None, "finished_at": None,
            "image": order["spec"]["image"], "error": message,
        }

    # ---- inspect -----------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        """Every container of this cluster and node, any state.

        Reports run every `report_interval`, so this must be cheap: one sparse
        listing, and a full inspect only for a container whose docker status
        changed since the last call. (An inspect per container per report kept
        dockerd so busy with a few dozen containers that starts took 30 s.)
        A running or finished container's state is fixed until its status
        changes; transient ones (created, restarting, removing) are never cached.
        """
        listed = self.client.containers.list(all=True, sparse=True, filters=self._own_filters())
        with self._states_lock:
            known = dict(self._states)
        fresh: dict[tuple[str, str], dict[str, Any]] = {}
        states: list[dict[str, Any]] = []
        for sparse in listed:
            key = (sparse.id, str(sparse.attrs.get("State") or ""))
            state = known.get(key)
            if state is None:
                full = self._get(sparse.id)
                if full is None:
                    continue  # removed meanwhile
                state = self.state(full)
                key = (full.id, str((full.attrs.get("State") or {}).get("Status") or ""))
            if key[1] in _STABLE:
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
        found = container.labels or {}
        docker_state = container.attrs.get("State") or {}
        status = _STATUS.get(docker_state.get("Status", ""), "dead")
        finished = status in ("exited", "dead")
        error = docker_state.get("Error") or None
        if docker_state.get("OOMKilled"):
            error = "out of memory (killed by the kernel's OOM killer)"
        task_id, _, index = found.get(labels.INSTANCE, "").partition("/")
        started_at = _iso(docker_state.get("StartedAt"))
        finished_at = _iso(docker_state.get("FinishedAt")) if finished else None
        if started_at and finished_at and finished_at < started_at:
            # Docker stamps StartedAt after a very short process may already
            # have exited; never report a negative run time.
            finished_at = started_at
        return {
            "task_id": found.get(labels.TASK) or task_id,
            "index": _int(index),
            "attempt": _int(found.get(labels.ATTEMPT)),
            "epoch": _int(found.get(labels.EPOCH)),
            "job": found.get(labels.JOB) or None,
            "container_id": container.id,
            "name": container.name,
            "status": status,
            "exit_code": docker_state.get("ExitCode") if finished else None,
            "started_at": started_at,
            "finished_at": finished_at,
            "image": container.attrs.get("Config", {}).get("Image"),
            "error": error,
            **self._result_fields(container, finished),
        }

    def _result_fields(self, container: Container, finished: bool) -> dict[str, Any]:
        if not finished:
            return {}
        value, problem = self.result(container)
        return {"result": value, "result_error": problem}

    def logs(self, task_id: str, index: int, tail: int = 200) -> str:
        """Logs of the newest attempt of one instance; LookupError when there is none."""
        containers = self._own(**{labels.INSTANCE: f"{task_id}/{index}"})
        if not containers:
            raise LookupError(f"no container for {task_id}/{index} on {self.node}")
        newest = max(containers, key=lambda c: _int_label(c, labels.ATTEMPT))
        data = newest.logs(stdout=True, stderr=True, tail=max(0, int(tail)) if tail is not None else "all")
        return data.decode("utf-8", errors="replace")

    # ---- stop --------------------------------------------------------------
    def stop(self, container_ids: Iterable[str]) -> list[str]:
        """Stop (SIGTERM, then SIGKILL after STOP_TIMEOUT) and remove, in parallel.

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
                container.stop(timeout=STOP_TIMEOUT)
            container.remove(force=True)
        except NotFound:
            return True
        except APIError as exc:
            if "already in progress" in _explain(exc):
                return True
            log.warning("stop failed", extra={"container": container.name, "error": _explain(exc)})
            return False
        log.info("removed", extra={"container": container.name})
        return True


# ---- helpers ------------------------------------------------------------
def _check_order(order: Mapping[str, Any]) -> dict[str, Any]:
    """The order with its types checked; OrderError names the bad field."""
    if not isinstance(order, Mapping):
        raise OrderError("a start order is a JSON object")
    for key in ("epoch", "index", "attempt"):
        value = order.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise OrderError(f"order field '{key}': expected a non-negative integer, got {value!r}")
    task_id = order.get("task_id")
    if not isinstance(task_id, str) or not task_id or not all(ch.isalnum() or ch in "-_." for ch in task_id):
        raise OrderError(f"order field 'task_id': expected an id like t-3f9a1c2b, got {task_id!r}")
    spec = order.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("image"), str) or not spec["image"]:
        raise OrderError("order field 'spec': expected a task spec with an 'image'")
    for key in ("env",):
        if order.get(key) is not None and not isinstance(order[key], Mapping):
            raise OrderError(f"order field '{key}': expected a mapping")
    return dict(order)


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _explain(exc: Exception) -> str:
    if isinstance(exc, APIError):
        return str(exc.explanation or exc)
    return str(exc)


def _quietly_remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except (NotFound, APIError) as exc:
        log.debug("remove failed", extra={"container": container.name, "error": str(exc)})


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _int_label(container: Container, key: str) -> int:
    return _int((container.labels or {}).get(key)) or 0


def _iso(value: str | None) -> str | None:
    """Docker's nanosecond RFC 3339 time as ISO 8601 with microseconds (parseable by
    datetime.fromisoformat); None for docker's zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    stamp, dot, rest = value.partition(".")
    if not dot:
        return value
    digits = "".join(ch for ch in rest if ch.isdigit())
    zone = rest[len(digits):] or "Z"
    return f"{stamp}.{digits[:6].ljust(6, '0')}{zone}"
