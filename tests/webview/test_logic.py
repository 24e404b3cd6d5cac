"""Pure pieces: problem placement, filters, the master-following retry."""

from __future__ import annotations

import pytest

from taskorg.config import Config
from taskorg.net.client import ServiceError
from taskorg.net.resolve import ResolveError
from taskorg.webview.cluster import LiveCluster, MasterUnavailable, never_sent
from taskorg.webview.filters import ago, size
from taskorg.webview.security import derive_key, safe_next
from taskorg.webview.submit import annotate, source_name
from taskorg.webview.views import count_rows, merge_members
from tests.scripted import BROKEN, REFUSED, Script


def test_annotate_places_problems_on_lines() -> None:
    result = annotate("a: 1\nb: 2\n", [
        {"source": "s.yaml", "path": "b", "line": 2, "message": "bad b"},
        {"source": "s.yaml", "path": "", "line": 9, "message": "past the end"},
        {"source": "other.yaml", "path": "x", "line": 1, "message": "other file"},
        {"source": "s.yaml", "path": "", "line": None, "message": "no line"},
    ], "s.yaml")
    assert [line.number for line in result.lines if line.problems] == [2]
    assert result.first_bad_line == 2
    assert [p["message"] for p in result.general] == ["past the end", "other file", "no line"]


def test_source_name_is_a_safe_base_name() -> None:
    assert source_name(None) == "pasted.yaml"
    assert source_name("C:\\x\\job.yaml") == "job.yaml"
    assert source_name("../../etc/<x>.yaml") == "_x_.yaml"


def test_filters() -> None:
    assert ago(0.15) == "0.1 s ago" or ago(0.15) == "0.2 s ago"
    assert ago(None) == "never"
    assert size(8 * 2**30) == "8.0 GiB"


def test_safe_next() -> None:
    from flask import Flask

    app = Flask(__name__)
    app.add_url_rule("/", "pages.dashboard", lambda: "")
    with app.test_request_context():
        assert safe_next("/tasks?state=running") == "/tasks?state=running"
        assert safe_next("http://evil/") == "/"
        assert safe_next("//evil/") == "/"


def test_keys_are_derived_per_purpose() -> None:
    assert derive_key("s", "session") != derive_key("s", "csrf")
    assert derive_key("s", "session") == derive_key("s", "session")
    assert b"s" != derive_key("s", "session")


def test_counts_and_members() -> None:
    assert count_rows({"running": 2, "weird": 1})[2] == ("running", 2)
    assert count_rows({"weird": 1})[-1] == ("weird", 1)
    rows = merge_members({"master": "node2", "members": [{"node": "node1"}, {"node": "node2"}]},
                         {"members": [{"node": "node1", "telemetry": {"speed": 1}, "role": "wrong"}]})
    assert rows[0]["telemetry"] == {"speed": 1} and rows[0]["role"] == "standby"
    assert rows[1]["role"] == "master"


def test_never_sent() -> None:
    assert never_sent(REFUSED)
    assert not never_sent(BROKEN)


def test_follows_the_new_master() -> None:
    not_master = ServiceError(409, "not the master: the master is node3", {"address": "127.0.9.4"})
    script = Script(["127.0.9.2", ResolveError("no record"), "127.0.9.2"],
                     [REFUSED, not_master, {"ok": 1}])
    api = LiveCluster(Config(dns_address="127.0.9.1"), "s", resolver=script.resolve, sleep=lambda s: None,
                      connect=script.connect)
    # refused, then no DNS answer, then a standby: the 3 tries are spent
    with pytest.raises(MasterUnavailable):
        api.status()
    script = Script(["127.0.9.2", "127.0.9.2"], [not_master, {"ok": 1}])
    api = LiveCluster(Config(dns_address="127.0.9.1"), "s", resolver=script.resolve, sleep=lambda s: None,
                      connect=script.connect)
    assert api.status() == {"ok": 1}
    assert script.urls == ["http://127.0.9.2:23335", "http://127.0.9.4:23335"]


def test_a_write_that_may_have_landed_is_not_retried() -> None:
    script = Script(["127.0.9.2", "127.0.9.3"], [BROKEN, {"id": "t"}])
    api = LiveCluster(Config(dns_address="127.0.9.1"), "s", resolver=script.resolve, sleep=lambda s: None,
                      connect=script.connect)
    with pytest.raises(MasterUnavailable) as caught:
        api.cancel("t-1")
    assert caught.value.maybe_applied
    assert len(script.urls) == 1


def test_a_refused_write_is_retried() -> None:
    script = Script(["127.0.9.2", "127.0.9.3"], [REFUSED, {"id": "t", "status": "cancelled"}])
    api = LiveCluster(Config(dns_address="127.0.9.1"), "s", resolver=script.resolve, sleep=lambda s: None,
                      connect=script.connect)
    assert api.cancel("t-1")["status"] == "cancelled"
    assert script.urls == ["http://127.0.9.2:23335", "http://127.0.9.3:23335"]


def test_bad_spec_is_a_result_not_an_exception() -> None:
    bad = ServiceError(400, "invalid", {"error": "invalid", "problems": [{"line": 1, "message": "m"}]})
    script = Script(["127.0.9.2"], [bad])
    api = LiveCluster(Config(dns_address="127.0.9.1"), "s", resolver=script.resolve, sleep=lambda s: None,
                      connect=script.connect)
    result = api.submit("x: 1", "x.yaml")
    assert not result.ok and result.body["problems"][0]["line"] == 1
