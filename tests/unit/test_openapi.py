"""The OpenAPI descriptions stay true (issue 15): each validates, names exactly its app's routes, gives
each operation the credential the route policy asks, carries the typed messages as they are, and is
served by its service without a credential."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from taskorg import openapi
from taskorg.openapi import messages
from taskorg.security.policy import NODE, OPEN, required
from serviceapps import APPS, SECRET

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# The webview's HTML pages, login form and form actions are for browsers: its description covers the
# JSON API under /api/ and the probes every service has.
WEBVIEW_DESCRIBED = re.compile(r"^/(api/.*|healthz|readyz|metrics|openapi\.json)$")
SECURITY = {NODE: [{"nodeCertificate": []}], OPEN: []}


@pytest.fixture(scope="module", params=openapi.SERVICES)
def service_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Flask]]:
    with APPS[request.param](tmp_path_factory.mktemp(request.param)) as app:
        yield request.param, app


def app_operations(service: str, app: Flask) -> set[tuple[str, str]]:
    """(METHOD, /openapi/{style}) for every rule of the app's url map."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or (service == "webview" and not WEBVIEW_DESCRIBED.match(rule.rule)):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        found |= {(method, path) for method in (rule.methods or set()) & METHODS}
    return found


def described_operations(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method.upper() in METHODS}


@pytest.mark.parametrize("service", openapi.SERVICES)
def test_each_description_is_valid_openapi_3_1(service: str) -> None:
    document = openapi.document(service)
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert errors == [], f"taskorg/openapi/{service}.yaml does not validate"
    assert document["openapi"] == "3.1.0"


def test_every_route_is_described_and_every_described_path_exists(service_app: tuple[str, Flask]) -> None:
    service, app = service_app
    routes, described = app_operations(service, app), described_operations(openapi.document(service))
    assert routes - described == set(), f"routes of the {service} app missing from taskorg/openapi/{service}.yaml"
    assert described - routes == set(), f"taskorg/openapi/{service}.yaml describes paths the {service} app lacks"


@pytest.mark.parametrize("service", openapi.SERVICES)
def test_each_operation_names_the_credential_the_route_policy_asks(service: str) -> None:
    document = openapi.document(service)
    schemes = document["components"]["securitySchemes"]
    for method, path in described_operations(document):
        operation = document["paths"][path][method.lower()]
        concrete = re.sub(r"{[^}]+}", "x", path)
        access = operation.get("x-taskorg-access")
        where = f"{service}: {method} {path}"
        if service == "webview" and path.startswith("/api/"):
            # The webview's own login guards its API; only /api/healthz is open.
            assert access == (OPEN if path == "/api/healthz" else "read"), where
            continue
        assert access == required(service, method, concrete), where
        security = operation.get("security", document.get("security"))
        if access in SECURITY:
            assert security == SECURITY[access], where
        elif access != "monitor":
            assert security == [{"userToken": []}], where
        assert all(name in schemes for option in security for name in option), where


def test_the_messages_are_the_typed_messages_of_the_protocol() -> None:
    shipped = (Path(openapi.__file__).parent / "messages.yaml").read_text()
    assert shipped == messages.render(), "taskorg/openapi/messages.yaml is stale: python -m taskorg.openapi.messages"


def test_each_service_serves_its_description_without_a_credential(service_app: tuple[str, Flask]) -> None:
    service, app = service_app
    answer = app.test_client().get(openapi.PATH)
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.get_json() == openapi.document(service)
    # ... and nothing else opens without one.
    closed = "/api/cluster" if service == "webview" else "/v1/" + next(
        p for p in openapi.document(service)["paths"] if p.startswith("/v1/")).split("/v1/", 1)[1]
    assert app.test_client().get(closed).status_code in (401, 405)


def test_an_unknown_service_has_no_description() -> None:
    with pytest.raises(ValueError, match="no OpenAPI description for service 'gateway'"):
        openapi.document("gateway")


def test_a_query_parameter_an_operation_does_not_take_is_named_not_ignored(tmp_path: Path) -> None:
    with APPS["master"](tmp_path) as app:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {SECRET}"}
        answer = client.get("/v1/tasks?stat=running", headers=headers)
        assert answer.status_code == 400
        assert answer.get_json()["error"] == ("unknown query parameter(s) 'stat' for GET /v1/tasks: "
                                              "it takes job, name, node, state")
        assert client.get("/v1/status?verbose=1", headers=headers).get_json()["error"].endswith("it takes none")
        assert client.get("/v1/tasks?state=running", headers=headers).status_code == 200
        # The credential is checked first: a stranger learns nothing of the parameters.
        assert client.get("/v1/tasks?stat=running").status_code == 401


@pytest.mark.parametrize("path", ["/v1/events?since={}", "/v1/jobs?limit={}", "/v1/tasks/t-1/logs?tail={}",
                                  "/v1/events/stream?since={}"])
@pytest.mark.parametrize("number", ["³", "9" * 30])
def test_numbers_in_a_query_are_ascii_digits_within_64_bits(tmp_path: Path, path: str, number: str) -> None:
    """'³' passed str.isdigit() and then failed int(); 10**30 overflowed SQLite: both were 500s (schemathesis)."""
    with APPS["master"](tmp_path) as app:
        answer = app.test_client().get(path.format(number), headers={"Authorization": f"Bearer {SECRET}"})
        assert answer.status_code in (400, 404), answer.get_data(as_text=True)
        assert number[:10] in answer.get_json()["error"] or "no such task" in answer.get_json()["error"]


def test_an_epoch_past_64_bits_is_refused_by_name(tmp_path: Path) -> None:
    with APPS["master"](tmp_path) as app:
        answer = app.test_client().post("/v1/role", json={"active": True, "epoch": 10 ** 28},
                                        headers={"Authorization": f"Bearer {SECRET}"})
        assert answer.status_code == 400
        assert answer.get_json()["error"].startswith("role: field 'epoch': expected `int` <= 9223372036854775807")
