"""Webview logins by user token with roles, the login throttle and logout revocation (Flask test client)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from taskorg.config import Config
from taskorg.security import auth
from taskorg.security.tokens import TokenStore
from taskorg.webview import create_app
from taskorg.webview.logins import FAILURES_ALLOWED, EndedSessions, LoginThrottle
from tests.webview.conftest import SECRET, csrf_token
from tests.webview.fakes import FakeCluster


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TokenStore]:
    auth.use_tokens(tmp_path / "tokens.json")
    yield TokenStore(tmp_path / "tokens.json")
    auth.use_tokens(None)


def log_in(client: FlaskClient, secret: str) -> int:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"secret": secret, "csrf_token": token}).status_code


def post(client: FlaskClient, path: str, **data: str) -> int:
    token = csrf_token(client.get("/").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data}).status_code


def test_a_read_token_looks_but_cannot_cancel_submit_or_drain(client: FlaskClient, store: TokenStore,
                                                               fake: FakeCluster) -> None:
    _, clear = store.create("alice", "read")
    assert log_in(client, clear) == 302
    assert client.get("/").status_code == 200
    assert post(client, "/tasks/t-0000aaaa/cancel") == 403
    assert post(client, "/members/node2/drain") == 403
    answer = client.post("/submit", data={"csrf_token": csrf_token(client.get("/submit").get_data(as_text=True)),
                                          "spec": "name: x\nimage: busybox\n", "action": "submit"})
    assert answer.status_code == 403
    assert "needs role &#39;submit&#39;" in answer.get_data(as_text=True)
    assert not [c for c in fake.calls if c[0] in ("submit", "cancel", "drain")]


def test_a_submit_token_cancels_but_cannot_drain(client: FlaskClient, store: TokenStore) -> None:
    _, clear = store.create("bob", "submit")
    assert log_in(client, clear) == 302
    assert post(client, "/tasks/t-0000aaaa/cancel") == 302
    answer = client.post("/members/node2/drain",
                         data={"csrf_token": csrf_token(client.get("/").get_data(as_text=True))})
    assert answer.status_code == 403
    assert "needs role 'admin'" in answer.get_data(as_text=True).replace("&#39;", "'")


def test_revoking_the_token_ends_its_session(client: FlaskClient, store: TokenStore) -> None:
    token, clear = store.create("carol", "admin")
    assert log_in(client, clear) == 302
    assert client.get("/").status_code == 200
    store.revoke(token.id)
    assert client.get("/").status_code == 302


def test_a_logged_out_cookie_no_longer_opens_anything(app: Flask) -> None:
    with app.test_client() as first:
        assert log_in(first, SECRET) == 302
        cookie = first.get_cookie("taskorg_session")
        assert cookie is not None
        copied = cookie.value
        assert post(first, "/logout") == 302
    with app.test_client() as thief:
        thief.set_cookie("taskorg_session", copied)
        assert thief.get("/").status_code == 302
        assert thief.get("/api/dashboard").status_code == 401


def test_failed_logins_are_throttled_per_source(client: FlaskClient) -> None:
    for _ in range(FAILURES_ALLOWED):
        assert log_in(client, "wrong-guess-0123456789") == 401
    token = csrf_token(client.get("/login").get_data(as_text=True))
    answer = client.post("/login", data={"secret": SECRET, "csrf_token": token})
    assert answer.status_code == 429  # even the right secret waits: no oracle while throttled
    assert 0 < int(answer.headers["Retry-After"]) <= 60
    assert "Too many failed logins" in answer.get_data(as_text=True)
    other = {"REMOTE_ADDR": "127.0.0.9"}
    page = client.get("/login", environ_overrides=other)
    answer = client.post("/login", environ_overrides=other,
                         data={"secret": SECRET, "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert answer.status_code == 302


def test_the_session_cookie_is_secure_when_tls_is_on(fake: FakeCluster) -> None:
    on = create_app(Config(dns_address="127.0.9.1"), SECRET, api_factory=lambda c, s: fake)
    off = create_app(Config(dns_address="127.0.9.1", tls=False), SECRET, api_factory=lambda c, s: fake)
    assert on.config["SESSION_COOKIE_SECURE"] is True
    assert off.config["SESSION_COOKIE_SECURE"] is False


def test_throttle_forgets_failures_after_the_window() -> None:
    throttle = LoginThrottle(allowed=2, window=10)
    throttle.failed("a", 0)
    throttle.failed("a", 1)
    assert throttle.wait_before_next("a", 2) == 8
    assert throttle.wait_before_next("b", 2) == 0
    assert throttle.wait_before_next("a", 10.5) == 0
    throttle.failed("a", 11)
    throttle.succeeded("a")
    assert throttle.wait_before_next("a", 11) == 0


def test_ended_sessions_expire_with_their_cookies() -> None:
    ended = EndedSessions(lifetime=100)
    ended.end("s1", 0)
    assert ended.ended("s1")
    ended.end("s2", 150)  # s1's cookie expired at 100: forgotten
    assert not ended.ended("s1") and ended.ended("s2")
