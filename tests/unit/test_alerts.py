"""Alert decisions (taskorg/master/alerts.py) and their webhooks (taskorg/master/webhooks.py): each
condition fires once while it holds and resolves once; a change of master fires each time; webhooks
are signed with HMAC-SHA256 of the body and retried with doubling pauses, then given up."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
import requests

from taskorg.config import ConfigError, load_config
from taskorg.master.alerts import AlertBook, Observation, Thresholds, alert_events
from taskorg.master.webhooks import ATTEMPTS, SIGNATURE_HEADER, WebhookSender, pauses, signature


def kinds(alerts: list[Any]) -> list[tuple[str, str, str]]:
    return [(a.kind, a.subject, a.status) for a in alerts]


def test_a_dead_node_fires_once_and_resolves_once() -> None:
    book = AlertBook(Thresholds())
    assert kinds(book.observe(Observation(0.0, dead={"node2"}))) == [("node_dead", "node2", "firing")]
    assert book.observe(Observation(1.0, dead={"node2"})) == []
    assert book.observe(Observation(2.0, dead=None)) == []  # no fresh view: nothing changes
    assert kinds(book.observe(Observation(3.0, dead=set()))) == [("node_dead", "node2", "resolved")]


def test_every_change_of_master_fires() -> None:
    book = AlertBook(Thresholds())
    event = {"id": 5, "kind": "master_changed", "node": "node1", "detail": "epoch 2"}
    fired = book.observe(Observation(0.0, events=[event, {**event, "id": 9, "node": "node3", "detail": "epoch 3"}]))
    assert kinds(fired) == [("master_changed", "epoch 2", "firing"), ("master_changed", "epoch 3", "firing")]
    assert "node3 is now the active master" in fired[1].message


def test_disk_and_temperature_over_thresholds_with_a_margin_to_resolve() -> None:
    book = AlertBook(Thresholds(disk_percent=90, temperature=80))
    hot = {"node1": {"disk": {"percent": 95.0, "mount": "/var/lib/taskorg"}, "temperatures": {"cpu": 81.0}}}
    fired = book.observe(Observation(0.0, telemetry=hot))
    assert kinds(fired) == [("disk_full", "node1", "firing"), ("temperature_high", "node1", "firing")]
    assert "95% full" in fired[0].message and fired[0].value == 95.0 and fired[0].threshold == 90
    edge = {"node1": {"disk": {"percent": 89.0}, "temperatures": {"cpu": 79.0}}}
    assert book.observe(Observation(1.0, telemetry=edge)) == []  # within the margin: still holding
    cool = {"node1": {"disk": {"percent": 50.0}, "temperatures": {"cpu": 40.0}}}
    assert kinds(book.observe(Observation(2.0, telemetry=cool))) == [("disk_full", "node1", "resolved"),
                                                                     ("temperature_high", "node1", "resolved")]


def test_replication_lag_and_a_lost_voter() -> None:
    book = AlertBook(Thresholds(replication_lag=5))
    fired = book.observe(Observation(0.0, lags={"node2": 6.5, "node3": 0.1}, voters=["127.0.1.1", "127.0.1.2"],
                                     reachable=["127.0.1.1"]))
    assert kinds(fired) == [("replication_lag", "node2", "firing"), ("consensus_member_lost", "127.0.1.2", "firing")]
    assert book.observe(Observation(1.0, lags={"node2": 6.0}, voters=None)) == []  # voters unknown: kept
    resolved = book.observe(Observation(2.0, lags={}, voters=["127.0.1.1", "127.0.1.2"],
                                        reachable=["127.0.1.1", "127.0.1.2"]))
    assert kinds(resolved) == [("replication_lag", "node2", "resolved"),
                               ("consensus_member_lost", "127.0.1.2", "resolved")]


def test_a_task_failing_repeatedly_within_the_window() -> None:
    book = AlertBook(Thresholds(task_failures=3, failure_window=60))

    def failure(n: int, at: float, kind: str = "instance_restarting", detail: str = "exited with code 1") -> dict:
        return {"id": n, "kind": kind, "task": "t-1", "name": "web", "time": at, "detail": detail}

    assert book.observe(Observation(10.0, events=[failure(1, 1.0), failure(2, 2.0)])) == []
    ok_exit = failure(3, 3.0, detail="exited with code 0; restart policy always")
    assert book.observe(Observation(10.0, events=[ok_exit])) == []  # a clean exit is no failure
    fired = book.observe(Observation(10.0, events=[failure(4, 4.0, kind="instance_failed")]))
    assert kinds(fired) == [("task_failing", "t-1", "firing")] and "web (t-1) failed 3 times" in fired[0].message
    assert book.observe(Observation(20.0)) == []
    assert kinds(book.observe(Observation(100.0))) == [("task_failing", "t-1", "resolved")]  # aged out


def test_alerts_become_events_of_the_stream() -> None:
    book = AlertBook(Thresholds())
    fired = book.observe(Observation(0.0, dead={"node2"}))
    assert alert_events(fired) == [("alert", "node2", "node_dead node2: node node2 is dead: no heartbeat")]


def test_a_webhook_is_signed_and_retried_with_doubling_pauses() -> None:
    calls: list[tuple[str, bytes, dict[str, str]]] = []
    waits: list[float] = []

    class Answer:
        def __init__(self, code: int) -> None:
            self.status_code = code

    def post(url: str, data: bytes, headers: dict[str, str], timeout: float) -> Answer:
        calls.append((url, data, headers))
        if len(calls) == 1:
            raise requests.ConnectionError("refused")
        return Answer(500 if len(calls) == 2 else 204)

    sender = WebhookSender(("http://127.0.0.1:9/hook",), b"k" * 16, post=post, sleep=waits.append)
    body = json.dumps({"alert": "node_dead"}).encode()
    assert sender.deliver("http://127.0.0.1:9/hook", body)
    assert len(calls) == 3 and waits == [0.5, 1.0]
    expected = "sha256=" + hmac.new(b"k" * 16, body, hashlib.sha256).hexdigest()
    assert calls[0][2][SIGNATURE_HEADER] == expected == signature(b"k" * 16, body)


def test_a_webhook_that_never_answers_is_given_up_after_the_bound() -> None:
    waits: list[float] = []

    def post(*args: Any, **kwargs: Any) -> None:
        raise requests.Timeout("slow")

    sender = WebhookSender(("http://127.0.0.1:9/",), b"k" * 16, post=post, sleep=waits.append)
    assert not sender.deliver("http://127.0.0.1:9/", b"{}")
    assert waits == pauses() and len(waits) == ATTEMPTS - 1


@pytest.mark.parametrize("settings, named", [({"alert_webhooks": ["ftp://x/"]}, "alert_webhooks"),
                                             ({"alert_webhooks": "not a url"}, "alert_webhooks"),
                                             ({"alert_disk_percent": 150}, "alert_disk_percent"),
                                             ({"alert_task_failures": 0}, "alert_task_failures")])
def test_bad_alert_settings_are_named(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(overrides=settings, environ={})


def test_webhook_urls_from_the_environment_are_comma_separated() -> None:
    config = load_config(environ={"TASKORG_ALERT_WEBHOOKS": "http://127.0.0.1:1/a,https://127.0.0.1:2/b"})
    assert config.alert_webhooks == ("http://127.0.0.1:1/a", "https://127.0.0.1:2/b")
