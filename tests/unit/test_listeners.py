"""Two listeners for the master and the DNS service (taskorg.net.listeners, no network).

Proves: a call for an internal route goes to the service's internal port, a
client call stays on the public one, from the same route table the servers
check; a listener serves only its own kind of route and names the other port
in its 404; a user token is refused on the internal listener whatever the
route; the internal ports are validated; the follower cap never waits and
gives its places back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskorg.config import Config, ConfigError, load_config
from taskorg.net import listeners
from taskorg.security import auth
from taskorg.security.tokens import TokenStore

SECRET = "s" * 32


def load(**overrides: Any) -> Config:
    return load_config(overrides=overrides, environ={})


def test_internal_routes_go_to_the_internal_port_and_client_routes_stay() -> None:
    listeners.use(Config())
    route = listeners.route
    assert route("https://10.0.0.2:23335", "POST", "/v1/reports") == "https://10.0.0.2:23345"
    assert route("https://10.0.0.2:23335", "POST", "/v1/replica/apply") == "https://10.0.0.2:23345"
    assert route("https://10.0.0.2:23335", "POST", "/v1/jobs") == "https://10.0.0.2:23335"
    assert route("https://10.0.0.2:23335", "GET", "/v1/events?since=3&wait=5") == "https://10.0.0.2:23335"
    assert route("https://10.0.0.1:23333", "POST", "/v1/heartbeat") == "https://10.0.0.1:23343"
    assert route("https://10.0.0.1:23333", "GET", "/v1/members") == "https://10.0.0.1:23333"
    assert route("http://[fd00::2]:23333", "POST", "/v1/register") == "http://[fd00::2]:23343"
    # A service with one listener (the slave), or a port no service of these settings has: unchanged.
    assert route("https://10.0.0.2:23334", "POST", "/v1/containers") == "https://10.0.0.2:23334"
    assert route("http://127.0.0.1:40000", "POST", "/v1/reports") == "http://127.0.0.1:40000"


def test_the_port_pairs_follow_the_settings() -> None:
    try:
        listeners.use(load(master_port=24335, master_internal_port=23350))
        assert listeners.route("https://h:24335", "POST", "/v1/role") == "https://h:23350"
        assert listeners.route("https://h:23335", "POST", "/v1/role") == "https://h:23335"
    finally:
        listeners.use(Config())


def env(listener: str, **extra: str) -> dict[str, Any]:
    other = 23345 if listener == listeners.CLIENT else 23335
    return {"wsgi.url_scheme": "https", listeners.ENVIRON_KEY: listener, listeners.OTHER_PORT_KEY: other, **extra}


def test_each_listener_serves_only_its_own_routes(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    _, admin = store.create("a", "admin")
    auth.use_tokens(store.path)
    try:
        node = {"SSL_CLIENT_VERIFY": "SUCCESS"}
        # Internal routes: not on the client listener, even with a node certificate.
        refusal = auth.decide("master", "POST", "/v1/reports", env(listeners.CLIENT, **node), None, SECRET)
        assert refusal is not None and refusal.status == 404 and "internal port (23345)" in refusal.message
        assert auth.decide("master", "POST", "/v1/reports", env(listeners.INTERNAL, **node), None, SECRET) is None
        # A user token on the internal listener: refused, whichever route it asks for.
        for method, path in (("POST", "/v1/role"), ("POST", "/v1/jobs"), ("GET", "/v1/status"), ("GET", "/metrics")):
            refusal = auth.decide("master", method, path, env(listeners.INTERNAL), f"Bearer {admin}", SECRET)
            assert refusal is not None and refusal.status in (403, 404), (method, path)
        refusal = auth.decide("dns", "GET", "/v1/members", env(listeners.INTERNAL), f"Bearer {admin}", SECRET)
        assert refusal is not None and refusal.status == 404 and "port 23335" in refusal.message
        # Client routes on the client listener as before; probes on both.
        assert auth.decide("master", "POST", "/v1/jobs", env(listeners.CLIENT), f"Bearer {admin}", SECRET) is None
        assert auth.decide("master", "GET", "/healthz", env(listeners.INTERNAL), None, SECRET) is None
        assert auth.decide("master", "GET", "/healthz", env(listeners.CLIENT), None, SECRET) is None
    finally:
        auth.use_tokens(None)


def test_the_defaults_and_bad_internal_ports() -> None:
    config = Config()
    assert (config.master_internal_port, config.dns_internal_port) == (23345, 23343)
    assert {23345, 23343} <= config.service_ports
    with pytest.raises(ConfigError, match="'master_internal_port': 8080 is outside the cluster's port range 23333-23380"):
        load(master_internal_port=8080)
    with pytest.raises(ConfigError, match="'dns_internal_port': port 23335 is also the setting 'master_port'"):
        load(dns_internal_port=23335)
    with pytest.raises(ConfigError, match="'master_internal_port': port 23343 is also the setting 'dns_internal_port'"):
        load(master_internal_port=23343)
