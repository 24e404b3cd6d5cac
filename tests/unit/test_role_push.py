"""A role push whose lease lapsed before it arrived is never acted on (found by schemathesis, issue 15).

`POST /v1/role {"active": true, "epoch": 409}` (no lease) once raised the
fence, began an activation, and then answered 409 when the activation could
not commit: half a change. Now such a push makes a standby, and says so.
"""

from __future__ import annotations

import time
from pathlib import Path

from taskorg.master.api import create_app
from tickharness import TickHarness

HEADERS = {"Authorization": "Bearer secret"}


def test_a_push_without_a_live_lease_makes_a_standby(tmp_path: Path) -> None:
    harness = TickHarness(tmp_path)
    try:
        client = create_app(harness.engine).test_client()
        fence = harness.store.fence_epoch()
        for lease in ({}, {"lease_until_monotonic": time.monotonic() - 1}):
            answer = client.post("/v1/role", json={"active": True, "epoch": 409, **lease}, headers=HEADERS)
            assert answer.status_code == 200 and answer.get_json()["active"] is False
            assert harness.store.fence_epoch() == fence and harness.engine.activated_epoch == 1
            assert harness.engine.role.epoch == 409 and not harness.engine.role.active
    finally:
        harness.close()
