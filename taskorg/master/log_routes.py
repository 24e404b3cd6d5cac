"""The master's log route: a task instance's output, fetched once or followed, from its slave.

The master does not hold logs: it finds the node that runs the instance in
its state and asks that slave (GET /v1/containers/<task>/<index>/logs),
passing the slave's stream through when following. A follow is bounded
(`LogQuery.duration`, under the master's stream cap) and ends early when the
instance has no container yet or its slave is gone: the client
(taskorg/cli/log_follow.py) asks again from its last timestamp, through
whichever master DNS names by then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import requests
from flask import Blueprint, jsonify, request

from taskorg.logstream import LogQuery, LogQueryError
from taskorg.master import state
from taskorg.net.client import ServiceError, ServiceUnavailable
from taskorg.net.server import ApiError
from taskorg.net.streams import StreamSlots, stream_response

if TYPE_CHECKING:
    from taskorg.master.engine import Engine

NODE_HEADER = "X-Taskorg-Node"


def log_routes(engine: "Engine", streams: StreamSlots) -> Blueprint:
    routes = Blueprint("logs", __name__)

    @routes.get("/v1/tasks/<task_id>/logs")
    def logs(task_id: str) -> Any:
        engine.require_active()
        index_text = request.args.get("index", "0")
        if not index_text.isdigit():
            raise ApiError(400, f"index: expected a whole number, got {index_text!r:.40}")
        try:
            query = LogQuery.from_args(request.args)
        except LogQueryError as exc:
            raise ApiError(400, str(exc)) from None
        index = int(index_text)
        inst = state.instance(engine.store, task_id, index)
        if inst is None:
            state.task(engine.store, task_id)  # NoSuchTask: 404 for the task itself
            raise ApiError(404, f"task {task_id} has no instance {index_text}")
        if query.follow:
            answer = stream_response(streams.hold(lambda: follow_from(engine, inst.node, task_id, index, query)))
            answer.headers[NODE_HEADER] = inst.node or ""
            return answer
        if not inst.node:
            return jsonify(id=task_id, index=index, node=None, logs="")
        try:
            text = engine.slaves.logs(inst.node, task_id, index, query)
        except (ServiceError, ServiceUnavailable, LookupError) as exc:
            raise ApiError(502, f"could not fetch logs from {inst.node}: {exc}") from None
        return jsonify(id=task_id, index=index, node=inst.node, logs=text)

    return routes


def follow_from(engine: "Engine", node: str | None, task_id: str, index: int, query: LogQuery) -> Iterator[bytes]:
    """The slave's stream, or an empty one when there is nothing to follow there yet (no node, no
    container, the slave unreachable): the client looks at the task and asks again."""
    if not node:
        return iter(())
    try:
        upstream = engine.slaves.follow_logs(node, task_id, index, query)
    except ServiceError as exc:
        if exc.status == 404:
            return iter(())
        raise ApiError(502, f"could not follow logs on {node}: {exc.message}") from None
    except (ServiceUnavailable, LookupError) as exc:
        raise ApiError(502, f"could not follow logs on {node}: {exc}") from None
    return _passed_on(upstream)


def _passed_on(upstream: requests.Response) -> Iterator[bytes]:
    try:
        yield from upstream.iter_content(chunk_size=None)
    except requests.RequestException:
        return  # the slave went away mid-stream: the client resumes from its last line
    finally:
        upstream.close()
