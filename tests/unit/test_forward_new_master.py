"""A node DNS already names as master answers a client itself once active, never via the dead old master.

In a testbed failover round, a submission reached the new master before its
role did; it forwarded to the master it knew (powered off) and waited 2 s to
connect. The forwarding decision is pure logic over the engine's answers, so
a stand-in engine is enough here; tests/cluster covers real forwarding.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Flask

from taskorg.master.forward import install_forwarding


class Role:
    def __init__(self) -> None:
        self.active = False

    def valid(self) -> bool:
        return self.active


class StandInEngine:
    """Elected (DNS names it) but its role arrives only after `delay`; it knows a dead old master."""

    def __init__(self, named: bool, delay: float, lapsed: bool = False) -> None:
        self.role = Role()
        self.named = named
        self.lapsed = lapsed
        self.dns_asked = 0
        self.forward_attempts = 0
        timer = threading.Timer(delay, lambda: setattr(self.role, "active", True))
        timer.daemon = True
        timer.start()

    def named_master_by_dns(self) -> bool:
        self.dns_asked += 1
        return self.named

    def still_named(self) -> bool:
        return self.lapsed and not self.role.valid()

    def wait_active(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.role.valid() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.role.valid()

    def current_master(self) -> tuple[str | None, str | None]:
        self.forward_attempts += 1
        return None, None  # nothing to forward to: the view answers


def app_for(engine: Any) -> Flask:
    app = Flask("test")
    install_forwarding(app, engine)

    @app.post("/v1/jobs")
    def submit() -> Any:
        return {"served_by": "this node", "active": engine.role.valid()}, 201

    return app


def test_named_master_waits_for_its_role_and_answers_itself() -> None:
    engine = StandInEngine(named=True, delay=0.2)
    answer = app_for(engine).test_client().post("/v1/jobs")
    assert answer.status_code == 201 and answer.get_json() == {"served_by": "this node", "active": True}
    assert engine.forward_attempts == 0


def test_a_standby_not_named_by_dns_looks_for_the_master_to_forward_to() -> None:
    engine = StandInEngine(named=False, delay=5.0)
    answer = app_for(engine).test_client().post("/v1/jobs")
    assert engine.forward_attempts == 1
    assert answer.get_json()["active"] is False


def test_a_master_a_renewal_late_waits_for_it_without_asking_dns() -> None:
    """Its lease lapsed a moment ago, the arbiter's last word still names it: a DNS look-up timing out on
    a loaded machine must not turn that into "no master is active" for its client."""
    engine = StandInEngine(named=False, delay=0.2, lapsed=True)
    answer = app_for(engine).test_client().post("/v1/jobs")
    assert answer.status_code == 201 and answer.get_json() == {"served_by": "this node", "active": True}
    assert engine.forward_attempts == 0 and engine.dns_asked == 0
