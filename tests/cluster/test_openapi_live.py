"""Every service of a real local cluster serves its OpenAPI description and answers as it says, over
mutual TLS (issue 15).

The in-process run (tests/unit/test_openapi_conformance.py) sends every
operation valid and breaking input; this one checks the same descriptions
hold on the wire: the description is served without a credential, and
schemathesis calls every read operation of every service with the test
harness's node certificate and an `admin` user token (the webview with the
session its login form gives), on a one-node cluster of its own with the
webview. Only reads: what writes do is the in-process run's to test.
Bounded: EXAMPLES per operation, 5 s per request.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from taskorg import openapi
from taskorg.devtools.localcluster import LocalCluster
from taskorg.net import listeners
from taskorg.security import tls
from tests.conftest import ClusterPool
from tests.openapi_checks import CHECKS

EXAMPLES = 10
STREAM = "/v1/events/stream"  # holds its connection 60 s: not a read to fuzz here
PORTS = {"dns": "dns_api_port", "master": "master_port", "slave": "slave_port", "node": "node_port",
         "webview": "webview_port"}


def session_for(cluster: LocalCluster, address: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    tls.mount(session, address)  # the cluster CA, and the harness's node certificate
    return session


def webview_login(session: requests.Session, url: str, token: str) -> None:
    page = session.get(f"{url}/login", timeout=5).text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the login page has no CSRF token"
    # Over HTTPS the CSRF check also wants a Referer of this site, as a browser sends.
    answer = session.post(f"{url}/login", data={"secret": token, "csrf_token": match.group(1)},
                          headers={"Referer": f"{url}/login"}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text[:200]


@pytest.fixture(scope="module")
def live(cluster_pool: ClusterPool) -> Iterator[LocalCluster]:
    """One node (and the DNS node) with its webview: every service of a node, over TLS."""
    made = cluster_pool.make(1, webview=True)
    yield made
    cluster_pool.stop(made)


@pytest.mark.parametrize("service", openapi.SERVICES)
def test_every_read_answers_as_described_over_tls(live: LocalCluster, service: str) -> None:
    cluster = live
    admin = cluster.admin_token
    address = cluster.node_address(1)
    url = cluster.config.url(address, getattr(cluster.config, PORTS[service]))
    assert url.startswith("https://")
    session = session_for(cluster, address)
    stranger = requests.Session()
    stranger.trust_env = False
    tls.mount(stranger, address, tls.TlsMaterial(str(cluster.ca_file)))  # the CA, no certificate
    served = stranger.get(f"{url}{openapi.PATH}", timeout=5)
    assert served.status_code == 200 and served.json() == openapi.document(service)

    listeners.use(cluster.config)
    headers = {"Authorization": f"Bearer {admin}"}
    if service == "webview":
        webview_login(session, url, admin)
        headers = {}
    schema = schemathesis.openapi.from_dict(served.json())
    reads = [(path, item["get"]) for path, item in served.json()["paths"].items()
             if "get" in item and path != STREAM]
    statuses: dict[str, list[int]] = {}
    for path, _ in reads:
        operation = schema[path]["GET"]

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def conforms(case: Any) -> None:
            if service == "webview":
                case.cookies = {}  # the session's own cookie jar carries the login
            # An internal operation is served on its service's internal port only (taskorg/net/listeners.py).
            base = listeners.route(url, "GET", case.formatted_path)
            response = case.call(base_url=base, session=session, headers=headers, timeout=5)
            statuses.setdefault(path, []).append(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=headers)

        conforms()
    opened = {path for path, codes in statuses.items() if set(codes) - {401, 403}}
    assert opened == {path for path, _ in reads}, f"refused every time: {sorted(set(statuses) - opened)}"
    print(f"\n{service} over TLS: {sum(map(len, statuses.values()))} reads of {len(reads)} operations, "
          f"statuses {sorted({c for codes in statuses.values() for c in codes})}")
