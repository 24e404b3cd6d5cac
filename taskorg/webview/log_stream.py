"""The log tab's stream: server-sent events of a task instance's output, instead of re-fetching.

The task page renders the last lines once, with the timestamp of the last
one (`data-after`); the page's EventSource then asks here for what comes
after it. Each line is one event whose id is its Docker timestamp, so when
the stream ends (after `DURATION` seconds, or when the master fails over)
the browser reconnects with `Last-Event-ID` and goes on from there. Streams
are capped (`STREAM_LIMIT` of the webview's 8 workers) so pages still load.
A line written in the very nanosecond of the last one shown before a
reconnect is skipped: a person's view, unlike `taskorg logs -f`, keeps no
list of the lines at that instant.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from flask import Blueprint, abort, current_app, request

from taskorg.client import ClusterUnavailable
from taskorg.logstream import LogQuery, newer, split_stamp, stamp_seconds
from taskorg.net.client import ServiceError, ServiceUnavailable
from taskorg.net.server import whole_number
from taskorg.net.streams import StreamSlots, stream_response
from taskorg.webview import views

bp = Blueprint("log_stream", __name__, url_prefix="/api")

DURATION = 25.0  # seconds one SSE answer lasts; the browser reconnects from its last event
PAUSE = 0.5  # between follows while the instance has no container (pending, restarting)
STREAM_LIMIT = 4
RETRY_MS = 1000
_STAMP_TEXT = 40


def _slots() -> StreamSlots:
    return current_app.extensions.setdefault("taskorg_log_streams", StreamSlots(STREAM_LIMIT, "log streams"))


@bp.get("/tasks/<task_id>/logs/stream")
def task_log_stream(task_id: str) -> Any:
    if not views.TASK_ID.match(task_id):
        abort(404)
    index = whole_number(request.args.get("index", "0")) or 0
    after = request.headers.get("Last-Event-ID") or request.args.get("after", "")
    if after and (len(after) > _STAMP_TEXT or not split_stamp(after)[0]):
        abort(400, "after / Last-Event-ID: expected a Docker timestamp (RFC 3339)")
    api = current_app.extensions["taskorg_api"]
    return stream_response(_slots().hold(lambda: sse_events(api, task_id, index, after)), "text/event-stream")


def sse_events(api: Any, task_id: str, index: int, after: str, duration: float = DURATION) -> Iterator[str]:
    """`retry`, then one event per new line for up to `duration` seconds, across the instance's
    restarts; a note event when the master does not answer (the browser then reconnects)."""
    yield f"retry: {RETRY_MS}\n\n"
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        query = LogQuery(tail=None, since=stamp_seconds(after) if after else None, timestamps=True,
                         follow=True, duration=max(1.0, deadline - time.monotonic()))
        began = time.monotonic()
        try:
            pending = b""
            for chunk in api.log_stream(task_id, index, query):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", errors="replace")
                    if newer(line, after):
                        stamp, text = split_stamp(line)
                        after = stamp or after
                        yield (f"id: {stamp}\n" if stamp else "") + f"data: {text}\n\n"
            if api.task(task_id).get("status") in views.FINISHED_STATES:
                yield "event: end\ndata: the task has finished\n\n"  # the page stops listening
                return
        except (ClusterUnavailable, ServiceError, ServiceUnavailable) as exc:
            message = exc.message if isinstance(exc, ServiceError) else str(exc)
            yield f"event: note\ndata: {message.splitlines()[0] if message else 'no master'}\n\n"
            return
        if time.monotonic() - began < PAUSE:
            time.sleep(PAUSE)
        yield ": alive\n\n"
