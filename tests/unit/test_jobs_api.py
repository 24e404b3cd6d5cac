"""The jobs API (issue 17) on the real engine, store and Flask app: list newest first with counts and a
status, paginate with `before`, show one job with its tasks (each naming what it runs `after`), cancel a
whole job in one call; bad arguments get a 400 naming them; event followers are capped (a stream past the
cap is a 503 with Retry-After, a long poll answers at once marked busy) and give their places back."""

from __future__ import annotations

from typing import Iterator

import pytest
from flask.testing import FlaskClient

from taskorg.logstream import LogQuery
from taskorg.master.api import create_app
from tickharness import TickHarness

HEADERS = {"Authorization": "Bearer secret"}
PIPELINE = "job: pipe\ntasks:\n  - name: a\n    image: busybox\n  - name: b\n    image: busybox\n    after: [a]\n"


def client(harness: TickHarness) -> FlaskClient:
    return create_app(harness.engine).test_client()


def test_jobs_are_listed_newest_first_with_counts_and_a_status(harness: TickHarness) -> None:
    first = harness.submit(PIPELINE)
    harness.now += 10
    second = harness.submit("job: one\ntasks:\n  - name: x\n    image: busybox\n")
    harness.tick()
    jobs = client(harness).get("/v1/jobs", headers=HEADERS).get_json()["jobs"]
    assert [j["id"] for j in jobs] == [second["job"], first["job"]]
    pipe = jobs[1]
    assert (pipe["name"], pipe["tasks"], pipe["status"]) == ("pipe", 2, "running")
    assert pipe["counts"] == {"running": 1, "waiting": 1}
    assert set(pipe) == {"id", "name", "tasks", "counts", "status", "submitted_at", "updated_at"}
    older = client(harness).get(f"/v1/jobs?limit=1&before={jobs[0]['submitted_at']}", headers=HEADERS)
    assert [j["id"] for j in older.get_json()["jobs"]] == [first["job"]]


def test_a_job_shows_its_tasks_and_what_each_runs_after(harness: TickHarness) -> None:
    job = harness.submit(PIPELINE)
    shown = client(harness).get(f"/v1/jobs/{job['job']}", headers=HEADERS).get_json()
    assert {t["name"]: t["after"] for t in shown["tasks"]} == {"a": [], "b": ["a"]}
    assert client(harness).get("/v1/jobs/j-nothere", headers=HEADERS).status_code == 404


def test_cancelling_a_job_cancels_every_task(harness: TickHarness) -> None:
    job = harness.submit(PIPELINE)
    harness.tick()
    answer = client(harness).delete(f"/v1/jobs/{job['job']}", headers=HEADERS).get_json()
    assert {t["status"] for t in answer["tasks"]} == {"cancelled"}
    assert len(harness.slaves.stopped) == 1  # a's container; b never ran
    shown = client(harness).get(f"/v1/jobs/{job['job']}", headers=HEADERS).get_json()
    assert shown["status"] == "cancelled"


@pytest.mark.parametrize("query, complaint", [("limit=0", "limit"), ("limit=x", "limit"), ("before=soon", "before")])
def test_bad_arguments_are_named(harness: TickHarness, query: str, complaint: str) -> None:
    answer = client(harness).get(f"/v1/jobs?{query}", headers=HEADERS)
    assert answer.status_code == 400 and answer.get_json()["error"].startswith(complaint)


def test_logs_take_tail_all(harness: TickHarness) -> None:
    job = harness.submit("job: one\ntasks:\n  - name: x\n    image: busybox\n")
    task_id = job["tasks"][0]["id"]
    asked: list[LogQuery] = []
    harness.engine.slaves.logs = lambda node, task, index, query: asked.append(query) or "line\n"  # type: ignore
    harness.tick()
    answer = client(harness).get(f"/v1/tasks/{task_id}/logs?tail=all", headers=HEADERS)
    assert answer.status_code == 200 and answer.get_json()["logs"] == "line\n" and asked[0].tail is None
    bad = client(harness).get(f"/v1/tasks/{task_id}/logs?tail=some", headers=HEADERS)
    assert bad.status_code == 400 and "'all'" in bad.get_json()["error"]


def test_event_followers_are_capped_and_their_places_come_back(harness: TickHarness) -> None:
    from taskorg.master.api import MAX_FOLLOWERS

    app = client(harness)
    streams = [app.get("/v1/events/stream", headers=HEADERS, buffered=False) for _ in range(MAX_FOLLOWERS)]
    assert {s.status_code for s in streams} == {200}
    refused = app.get("/v1/events/stream", headers=HEADERS)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "(at most 8)" in refused.get_json()["error"]
    # A long poll while every place is taken: answered at once, marked busy, not held.
    polled = app.get("/v1/events?since=0&wait=20", headers=HEADERS).get_json()
    assert polled["busy"] is True
    streams.pop().close()  # a follower goes away: its place is free again
    again = app.get("/v1/events/stream", headers=HEADERS, buffered=False)
    assert again.status_code == 200
    again.close()
    for stream in streams:
        stream.close()
    assert app.get("/v1/events?since=0&wait=0", headers=HEADERS).get_json()["busy"] is False


def test_a_log_follow_passes_the_slaves_stream_through(harness: TickHarness) -> None:
    """`follow=1`: the master asks the instance's slave with the same window and passes its bytes on;
    an instance with no container there yet is an empty stream (the client asks again)."""
    job = harness.submit("job: one\ntasks:\n  - name: x\n    image: busybox\n")
    task_id = job["tasks"][0]["id"]
    asked: list[LogQuery] = []

    class Upstream:
        def iter_content(self, chunk_size: object = None) -> Iterator[bytes]:
            yield b"2026-12-01T10:00:00.000000000Z one\n2026-12-01T10:00:00.1"
            yield b"00000000Z two\n"

        def close(self) -> None:
            pass

    harness.engine.slaves.follow_logs = lambda node, task, index, query: asked.append(query) or Upstream()  # type: ignore
    pending = client(harness).get(f"/v1/tasks/{task_id}/logs?follow=1", headers=HEADERS)
    assert pending.status_code == 200 and pending.get_data() == b"" and not asked  # not placed: nothing to follow
    harness.tick()
    answer = client(harness).get(f"/v1/tasks/{task_id}/logs?follow=1&timestamps=1&tail=all&since=1796119200.5",
                                 headers=HEADERS)
    assert answer.status_code == 200 and answer.headers["X-Taskorg-Node"]
    assert answer.get_data().decode().splitlines() == ["2026-12-01T10:00:00.000000000Z one",
                                                       "2026-12-01T10:00:00.100000000Z two"]
    assert asked[0] == LogQuery(tail=None, since=1796119200.5, timestamps=True, follow=True)
    bad = client(harness).get(f"/v1/tasks/{task_id}/logs?follow=1&duration=600", headers=HEADERS)
    assert bad.status_code == 400 and bad.get_json()["error"].startswith("duration")


COMPOSE = ("name: shop\nservices:\n  db:\n    image: busybox\n    healthcheck: {test: [CMD, 'true']}\n"
           "  web:\n    image: busybox\n    environment: ['MODE=${MODE:-prod}']\n    deploy: {replicas: 2}\n"
           "    depends_on: {db: {condition: service_healthy}}\n")


def test_a_compose_file_is_accepted_as_it_is_by_post_v1_jobs(harness: TickHarness,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The webview's submit page and any API caller send the text: a compose file goes in unchanged
    (issue 16); what needs files beside it is refused with a line saying to convert it first."""
    monkeypatch.setattr(harness.engine.replicator, "wait_for", lambda seq, timeout: True)  # a standby holds it
    answer = client(harness).post("/v1/jobs?source=compose.yaml", data=COMPOSE, headers=HEADERS,
                                  content_type="application/yaml")
    assert answer.status_code in (200, 201), answer.get_data(as_text=True)
    job = answer.get_json()
    assert job["name"] == "shop" and sorted(t["name"] for t in job["tasks"]) == ["db", "web"]
    web = next(t for t in job["tasks"] if t["name"] == "web")
    shown = client(harness).get(f"/v1/tasks/{web['id']}", headers=HEADERS).get_json()
    assert (shown["spec"]["replicas"], shown["spec"]["env"], shown["spec"]["depends_on"]) == \
        (2, {"MODE": "prod"}, {"db": "healthy"})
    refused = client(harness).post("/v1/jobs?source=c.yaml", headers=HEADERS, content_type="application/yaml",
                                   data="services:\n  a:\n    image: busybox\n    env_file: a.env\n")
    assert refused.status_code == 400
    assert [(p["path"], p["line"]) for p in refused.get_json()["problems"]] == [("services.a.env_file", 4)]
    assert "convert" in refused.get_json()["problems"][0]["message"]
