"""Fixtures for the webview tests: an app on a fake cluster (unit tier)."""

from __future__ import annotations

import re
from typing import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from taskorg.config import Config
from tests.webview.fakes import FakeCluster
from taskorg.webview import create_app

SECRET = "unit-test-secret-Zq8xW3vN5pL2"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token a page embeds in its forms."""
    match = _CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


@pytest.fixture
def fake() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def app(fake: FakeCluster) -> Flask:
    return create_app(Config(dns_address="127.0.9.1"), SECRET, api_factory=lambda config, secret: fake)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def logged_in(client: FlaskClient) -> FlaskClient:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    answer = client.post("/login", data={"secret": SECRET, "csrf_token": token})
    assert answer.status_code == 302
    return client
