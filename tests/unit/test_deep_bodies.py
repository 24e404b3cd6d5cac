"""No JSON body nests a service into a 500 (issue 15): a few KiB of `[` once raised RecursionError in
the JSON decoder of every service's request bodies. Each POST, PUT and DELETE route of each service is
sent bodies nested far past the interpreter's recursion limit, with a credential that opens it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask

from taskorg import openapi
from taskorg.protocol import ProtocolError, Report, decode
from serviceapps import APPS, SECRET

DEPTH = 100_000
BODIES = {
    "array": "[" * DEPTH + "]" * DEPTH,
    "object": '{"a":' * DEPTH + "1" + "}" * DEPTH,
    # Deep inside a field typed as any JSON: a task's result in a slave's report.
    "result": '{"node":"node1","containers":[{"task_id":"t-1","index":0,"result":' + "[" * DEPTH + "]" * DEPTH
              + "}]}",
}
NODE_ENVIRON = {"wsgi.url_scheme": "https", "SSL_CLIENT_VERIFY": "SUCCESS"}  # a verified node certificate


@pytest.fixture(scope="module", params=openapi.SERVICES)
def service_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    with APPS[request.param](tmp_path_factory.mktemp(request.param)) as app:
        yield app


def test_deeply_nested_bodies_are_refused_with_a_4xx_never_a_500(service_app: Flask) -> None:
    client = service_app.test_client()
    answers = []
    for rule in service_app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            path = re.sub(r"<[^<>]+>", "x1", rule.rule)
            for name, body in BODIES.items():
                answer = client.open(path, method=method, data=body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {SECRET}"}, environ_base=NODE_ENVIRON)
                answers.append((method, path, name, answer.status_code))
    assert answers
    assert [a for a in answers if a[3] >= 500] == []


def test_a_typed_message_nested_too_deeply_names_it() -> None:
    with pytest.raises(ProtocolError, match="report: the JSON nests too deeply"):
        decode(BODIES["result"], Report, "report")
