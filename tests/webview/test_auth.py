"""Login, logout, sessions and CSRF, with Flask's test client on a fake cluster."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from taskorg.config import Config
from tests.webview.conftest import SECRET, csrf_token
from tests.webview.fakes import FakeCluster
from taskorg.webview import create_app


@pytest.mark.parametrize("path", ["/", "/tasks", "/tasks/t-0000aaaa", "/submit"])
def test_pages_redirect_to_login(client: FlaskClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/login?next=")


def test_api_says_401_when_logged_out(client: FlaskClient) -> None:
    answer = client.get("/api/dashboard")
    assert answer.status_code == 401
    assert answer.get_json() == {"error": "login required"}


def test_healthz_needs_no_login_and_says_nothing(client: FlaskClient) -> None:
    answer = client.get("/api/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {"ok": True}


def test_login_with_the_secret_then_logout(client: FlaskClient) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    answer = client.post("/login", data={"secret": SECRET, "csrf_token": token, "next": "/tasks"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/tasks"
    assert client.get("/").status_code == 200
    token = csrf_token(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_secret_is_refused_and_not_echoed(client: FlaskClient) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    answer = client.post("/login", data={"secret": "guess-guess-guess", "csrf_token": token})
    assert answer.status_code == 401
    assert "guess-guess-guess" not in answer.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_does_not_redirect_off_site(client: FlaskClient) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        answer = client.post("/login", data={"secret": SECRET, "csrf_token": token, "next": target})
        assert answer.headers["Location"] == "/", target
        client.get("/")  # stay logged in; fresh token below
        token = csrf_token(client.get("/").get_data(as_text=True))


def test_post_without_csrf_token_is_refused(logged_in: FlaskClient, fake: FakeCluster) -> None:
    for path in ("/tasks/t-0000aaaa/cancel", "/tasks/t-0000aaaa/restart", "/members/node2/drain", "/submit",
                 "/logout"):
        answer = logged_in.post(path, data={"spec": "name: x"})
        assert answer.status_code == 400, path
        assert "Form refused" in answer.get_data(as_text=True)
    assert fake.calls == []  # nothing reached the cluster


def test_login_without_csrf_token_is_refused(client: FlaskClient) -> None:
    assert client.post("/login", data={"secret": SECRET}).status_code == 400
    assert client.get("/").status_code == 302


def test_post_with_a_forged_token_is_refused(logged_in: FlaskClient, fake: FakeCluster) -> None:
    answer = logged_in.post("/tasks/t-0000aaaa/cancel", data={"csrf_token": "forged.token.value"})
    assert answer.status_code == 400
    assert fake.calls == []


def test_session_cookie_flags(client: FlaskClient) -> None:
    answer = client.get("/login")
    cookie = answer.headers["Set-Cookie"]
    assert "taskorg_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_every_node_accepts_the_same_session(client: FlaskClient) -> None:
    """The key comes from the cluster secret: another node's webview takes the cookie."""
    token = csrf_token(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"secret": SECRET, "csrf_token": token})
    cookie = client.get_cookie("taskorg_session")
    assert cookie is not None
    other = create_app(Config(dns_address="127.0.9.1", address="127.0.9.3"), SECRET,
                       api_factory=lambda config, secret: FakeCluster())
    with other.test_client() as other_client:
        other_client.set_cookie("taskorg_session", cookie.value)
        assert other_client.get("/").status_code == 200
    rotated = create_app(Config(dns_address="127.0.9.1"), SECRET + "-rotated",
                         api_factory=lambda config, secret: FakeCluster())
    with rotated.test_client() as rotated_client:
        rotated_client.set_cookie("taskorg_session", cookie.value)
        assert rotated_client.get("/").status_code == 302


def test_security_headers(logged_in: FlaskClient) -> None:
    answer = logged_in.get("/")
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"
