"""The pages' logic on a fake cluster: content, escaping, failover states, actions."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.webview.conftest import SECRET, csrf_token
from tests.webview.fakes import FakeCluster

PAGES = ["/", "/tasks", "/tasks?state=running&name=hel", "/tasks/t-0000aaaa", "/submit", "/login",
         "/api/dashboard", "/api/tasks", "/api/tasks/t-0000aaaa", "/api/cluster", "/tasks/t-missing",
         "/jobs", "/jobs/j-33330000", "/failover", "/api/jobs", "/api/jobs/j-33330000", "/api/failover"]


def test_dashboard_shows_members_master_and_counts(logged_in: FlaskClient) -> None:
    html = logged_in.get("/").get_data(as_text=True)
    for text in ("node1", "node2", "node3", "127.0.9.3", "master", "standby", "alive", "epoch", "running",
                 "47.0 °C", "3.0 GiB / 8.0 GiB"):
        assert text in html, text


def test_task_list_filters_reach_the_master(logged_in: FlaskClient, fake: FakeCluster) -> None:
    html = logged_in.get("/tasks?state=running&node=node2&name=hel").get_data(as_text=True)
    assert "t-0000aaaa" in html
    assert ("tasks", {"state": "running", "node": "node2", "name": "hel", "job": ""}) in fake.calls


def test_task_page_shows_spec_placements_history_and_escaped_logs(logged_in: FlaskClient) -> None:
    html = logged_in.get("/tasks/t-0000aaaa").get_data(as_text=True)
    for text in ("taskorg/busybox:latest", "node2", "placed", "spread"):
        assert text in html, text
    assert "hello &lt;b&gt;world&lt;/b&gt;" in html and "<b>world</b>" not in html
    assert '<span class="badge badge-healthy">healthy</span>' in html  # the instance's Docker health


def test_unknown_task_is_a_404_page(logged_in: FlaskClient) -> None:
    answer = logged_in.get("/tasks/t-missing")
    assert answer.status_code == 404
    assert "No such task" in answer.get_data(as_text=True)


def test_secret_never_appears(logged_in: FlaskClient, fake: FakeCluster) -> None:
    pages = [logged_in.get(path) for path in PAGES]
    fake.master_down = True
    pages += [logged_in.get(path) for path in PAGES]
    fake.dns_down = True
    pages += [logged_in.get(path) for path in PAGES]
    for answer in pages:
        assert SECRET not in answer.get_data(as_text=True)
        assert SECRET not in str(answer.headers)


def test_master_changing_over_is_a_friendly_state(logged_in: FlaskClient, fake: FakeCluster) -> None:
    fake.master_down = True
    for path in ("/", "/tasks", "/tasks/t-0000aaaa", "/jobs", "/jobs/j-33330000", "/failover"):
        answer = logged_in.get(path)
        assert answer.status_code == 200, path
        html = answer.get_data(as_text=True)
        assert "Master changing over" in html and "Traceback" not in html
    data = logged_in.get("/api/dashboard").get_json()
    assert data["cluster"]["state"] == "changing"
    assert data["cluster"]["master"] == "node1"  # membership still comes from the DNS service
    assert "node3" in data["fragments"]["members"]


def test_dns_down_is_said_in_words(logged_in: FlaskClient, fake: FakeCluster) -> None:
    fake.dns_down = True
    fake.master_down = True
    data = logged_in.get("/api/dashboard").get_json()
    assert data["cluster"]["state"] == "dns-down"
    assert "DNS node does not answer" in data["cluster"]["message"]


def test_api_reports_a_new_master(logged_in: FlaskClient, fake: FakeCluster) -> None:
    assert logged_in.get("/api/cluster").get_json()["cluster"]["master"] == "node1"
    fake.master, fake.epoch = "node3", 3
    cluster = logged_in.get("/api/cluster").get_json()["cluster"]
    assert (cluster["master"], cluster["epoch"], cluster["state"]) == ("node3", 3, "ok")


def _post(client: FlaskClient, path: str, data: dict[str, str] | None = None, **kwargs: object) -> object:
    token = csrf_token(client.get("/submit").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)


def test_cancel_restart_drain(logged_in: FlaskClient, fake: FakeCluster) -> None:
    answer = _post(logged_in, "/tasks/t-0000aaaa/cancel")
    assert answer.status_code == 302 and answer.headers["Location"] == "/tasks/t-0000aaaa"  # type: ignore[attr-defined]
    assert "Cancelled t-0000aaaa" in logged_in.get("/tasks/t-0000aaaa").get_data(as_text=True)
    _post(logged_in, "/tasks/t-0000aaaa/restart")
    _post(logged_in, "/members/node2/drain")
    assert fake.calls == [("cancel", "t-0000aaaa"), ("restart", "t-0000aaaa"), ("drain", "node2")]


def test_action_during_failover_says_so(logged_in: FlaskClient, fake: FakeCluster) -> None:
    fake.master_down = True
    _post(logged_in, "/tasks/t-0000aaaa/cancel")
    html = logged_in.get("/tasks").get_data(as_text=True)
    assert "Could not cancel t-0000aaaa" in html


@pytest.mark.parametrize("bad", ["../x", "a b", "x" * 80])
def test_bad_ids_never_reach_the_cluster(logged_in: FlaskClient, fake: FakeCluster, bad: str) -> None:
    assert logged_in.get(f"/tasks/{bad}").status_code == 404
    assert fake.calls == []


def test_submit_success_goes_to_the_task(logged_in: FlaskClient, fake: FakeCluster) -> None:
    answer = _post(logged_in, "/submit", {"spec": "name: hello\n", "action": "submit"})
    assert answer.headers["Location"] == "/tasks/t-0000bbbb"  # type: ignore[attr-defined]
    assert fake.calls[-1] == ("submit", ("name: hello\n", "pasted.yaml", False))


def test_submit_preview_shows_placements(logged_in: FlaskClient, fake: FakeCluster) -> None:
    answer = _post(logged_in, "/submit", {"spec": "name: hello\n", "action": "preview"})
    html = answer.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Where it would run" in html and "node2" in html
    assert fake.calls[-1] == ("submit", ("name: hello\n", "pasted.yaml", True))


def test_submit_error_is_shown_on_its_line(logged_in: FlaskClient, fake: FakeCluster) -> None:
    fake.problems = [{"source": "pasted.yaml", "path": "restart", "line": 3, "message": "must be <never>"},
                     {"source": "pasted.yaml", "path": "", "line": None, "message": "one more thing"}]
    answer = _post(logged_in, "/submit", {"spec": "name: x\nimage: y\nrestart: sometimes\n", "action": "submit"})
    assert answer.status_code == 400  # type: ignore[attr-defined]
    html = answer.get_data(as_text=True)  # type: ignore[attr-defined]
    line3 = html[html.index('id="line-3"'):html.index('id="line-3"') + 600]
    assert 'class="bad"' in line3 and "must be &lt;never&gt;" in line3
    assert 'id="line-2" data-line="2" class=""' in html
    assert "one more thing" in html
    assert 'data-bad-lines="3"' in html


def test_submit_upload(logged_in: FlaskClient, fake: FakeCluster) -> None:
    import io

    _post(logged_in, "/submit", {"action": "submit", "file": (io.BytesIO(b"name: up\n"), "../dir/my spec.yaml")},
          content_type="multipart/form-data")
    assert fake.calls[-1] == ("submit", ("name: up\n", "my_spec.yaml", False))


def test_submit_empty_spec(logged_in: FlaskClient, fake: FakeCluster) -> None:
    answer = _post(logged_in, "/submit", {"spec": "  \n", "action": "submit"})
    assert answer.status_code == 400  # type: ignore[attr-defined]
    assert fake.calls == []


def test_submit_during_failover_keeps_the_text(logged_in: FlaskClient, fake: FakeCluster) -> None:
    fake.master_down = True
    answer = _post(logged_in, "/submit", {"spec": "name: keep-me\n", "action": "submit"})
    assert answer.status_code == 503  # type: ignore[attr-defined]
    html = answer.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "keep-me" in html and "master changing over" in html


def test_dashboard_draws_who_is_who(logged_in: FlaskClient) -> None:
    html = logged_in.get("/").get_data(as_text=True)
    picture = html[html.index('id="cluster-picture"'):]
    for node in ("dns", "node1", "node2", "node3"):
        assert f'data-node="{node}"' in picture, node
    assert 'data-from="node1" data-to="node3"' in picture  # master streams to a standby
    assert "replica seq 8, 2 behind" in picture and "replica in sync, seq 10" in picture
    assert 'data-node="node3" data-health="ok" data-dns="replica"' in picture and "DNS voter" in picture
    assert "DNS servers: 3 voters (3 reachable), 1 replica; arbiter 127.0.9.1" in picture
    assert data_of(logged_in, "/api/dashboard")["fragments"]["picture"].count("<svg") == 2  # wide and phone


def data_of(client: FlaskClient, path: str) -> dict:  # type: ignore[type-arg]
    answer = client.get(path)
    assert answer.status_code == 200, path
    return answer.get_json()  # type: ignore[no-any-return]


def test_jobs_list_links_each_job(logged_in: FlaskClient) -> None:
    html = logged_in.get("/jobs").get_data(as_text=True)
    assert html.index("pipeline") < html.index("hello")  # newest first
    assert 'href="/jobs/j-33330000"' in html and "1 succeeded" in html
    assert set(data_of(logged_in, "/api/jobs")["fragments"]) == {"jobs"}


def test_job_page_draws_the_dependency_graph_with_states(logged_in: FlaskClient, fake: FakeCluster) -> None:
    html = logged_in.get("/jobs/j-33330000").get_data(as_text=True)
    graph = html[html.index('id="job-graph"'):]
    assert graph.count('data-from="prepare" data-to="compute"') == 2  # wide and phone drawings
    assert graph.count('data-from="compute" data-to="report"') == 2
    assert 'href="/tasks/t-0000c001"' in graph and 'data-status="running"' in graph
    assert "running · 1/3 done" in graph and "✓ succeeded" in graph  # state in words and marks, not colour alone
    fragments = data_of(logged_in, "/api/jobs/j-33330000")["fragments"]
    assert set(fragments) == {"job-head", "graph", "tasks"}
    assert sorted(fake.task_reads) == ["t-0000c000", "t-0000c001", "t-0000c002"]  # specs read once, then cached


def test_job_graph_escapes_names(logged_in: FlaskClient, fake: FakeCluster) -> None:
    fake.tasks_by_id["t-0000c002"]["name"] = "<script>x</script>"
    html = logged_in.get("/jobs/j-33330000").get_data(as_text=True)
    assert "<script>x" not in html and "&lt;script&gt;x" in html


def test_unknown_job_is_a_404_page(logged_in: FlaskClient) -> None:
    answer = logged_in.get("/jobs/j-missing")
    assert answer.status_code == 404 and "No such job" in answer.get_data(as_text=True)


def test_failover_page_shows_the_last_change(logged_in: FlaskClient, fake: FakeCluster) -> None:
    html = logged_in.get("/failover").get_data(as_text=True)
    assert "node1 → node2: every task back" in html
    for title in ("node2 is master", "node1 declared dead", "1 instance placed again", "all back running"):
        assert title in html, title
    assert fake.calls.count(("events", 0)) == 1  # one page read: the change is in it
    assert set(data_of(logged_in, "/api/failover")["fragments"]) == {"timeline", "picture"}
