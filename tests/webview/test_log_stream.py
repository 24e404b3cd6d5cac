"""The log tab streams (server-sent events, taskorg/webview/log_stream.py) instead of re-fetching: the page
renders the last lines once with the last one's timestamp, the SSE endpoint sends each newer line as an
event whose id is its timestamp (the browser's Last-Event-ID on reconnect), and polling leaves logs alone."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from taskorg.webview.log_stream import sse_events
from tests.webview.fakes import FakeCluster

FIRST = "2026-12-01T10:00:00.000000000Z"


def events_of(text: str) -> list[dict[str, str]]:
    found = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            if key in ("id", "data", "event", "retry"):
                fields[key] = value
        if "data" in fields:
            found.append(fields)
    return found


def test_the_page_shows_the_last_lines_and_where_the_stream_goes_on(logged_in: FlaskClient) -> None:
    html = logged_in.get("/tasks/t-0000aaaa").get_data(as_text=True)
    assert "hello &lt;b&gt;world&lt;/b&gt;" in html and FIRST + " hello" not in html  # stamps are not shown
    assert f'data-after="{FIRST}"' in html
    assert re.search(r'data-stream="/api/tasks/t-0000aaaa/logs/stream\?index=0"', html)


def test_the_stream_sends_each_newer_line_once_as_an_event(logged_in: FlaskClient, fake: FakeCluster) -> None:
    fake.tasks_by_id["t-0000aaaa"]["status"] = "succeeded"  # the stream ends when the task has
    answer = logged_in.get(f"/api/tasks/t-0000aaaa/logs/stream?index=0&after={FIRST}")
    assert answer.status_code == 200 and answer.mimetype == "text/event-stream"
    events = events_of(answer.get_data(as_text=True))
    lines = [e for e in events if "event" not in e]
    assert [e["data"] for e in lines] == ["line 1", "line 2", "line 3"]
    assert lines[-1]["id"] == "2026-12-01T10:00:03.000000000Z"
    assert events[-1]["event"] == "end"


def test_a_reconnect_goes_on_from_last_event_id(logged_in: FlaskClient, fake: FakeCluster) -> None:
    fake.tasks_by_id["t-0000aaaa"]["status"] = "succeeded"
    answer = logged_in.get("/api/tasks/t-0000aaaa/logs/stream",
                           headers={"Last-Event-ID": "2026-12-01T10:00:02.000000000Z"})
    assert [e["data"] for e in events_of(answer.get_data(as_text=True)) if "event" not in e] == ["line 3"]


def test_a_running_task_streams_until_the_duration_and_a_lost_master_is_a_note(fake: FakeCluster) -> None:
    text = "".join(sse_events(fake, "t-0000aaaa", 0, "", duration=0.6))
    assert text.startswith("retry: ") and [e["data"] for e in events_of(text) if "event" not in e][0].startswith("hello")
    fake.master_down = True
    note = events_of("".join(sse_events(fake, "t-0000aaaa", 0, FIRST, duration=5)))
    assert note[-1]["event"] == "note"


def test_bad_positions_are_refused_and_polling_leaves_the_logs_alone(logged_in: FlaskClient) -> None:
    assert logged_in.get("/api/tasks/t-0000aaaa/logs/stream?after=yesterday").status_code == 400
    polled = logged_in.get("/api/tasks/t-0000aaaa").get_json()
    assert "logs" not in polled["fragments"]


def test_the_stream_needs_a_login(client: FlaskClient) -> None:
    assert client.get("/api/tasks/t-0000aaaa/logs/stream").status_code == 401
