"""The one master client's retry rules, with a scripted connection (no network).

The rules are what make a failover invisible to a user and safe for the
state: reads follow the new master, every write carries one idempotency key
for all its tries, and a write that may have landed is re-sent only when the
master dedupes it by that key.
"""

from __future__ import annotations

import threading
import time
from typing import Any


import pytest

from taskorg.client import Client, ClusterUnavailable, RetryBudget, _Workers
from taskorg.config import Config
from taskorg.net.client import ServiceError
from taskorg.net.resolve import ResolveError
from tests.scripted import BROKEN, REFUSED, Script


NOT_MASTER = ServiceError(409, "not the master: the master is node3", {"address": "127.0.9.4"})


def client_of(script: Script, tries: int = 5) -> Client:
    return Client(Config(dns_address="127.0.9.1"), "s", budget=RetryBudget(seconds=60, tries=tries, pause=0),
                  resolver=script.resolve, sleep=lambda s: None, connect=script.connect)


def keys_of(script: Script) -> list[str]:
    return [kwargs["headers"]["Idempotency-Key"] for *_, kwargs in script.sent]


def test_a_read_follows_the_standby_pointer_while_dns_lags() -> None:
    script = Script(["127.0.9.2", "127.0.9.2"], [NOT_MASTER, {"active": True}])
    assert client_of(script).status() == {"active": True}
    assert script.urls == ["https://127.0.9.2:23335", "https://127.0.9.4:23335"]


def test_a_read_rides_out_dns_gaps_and_503s_within_the_budget() -> None:
    busy = ServiceError(503, "not the master, and the master did not answer")
    script = Script([ResolveError("no record"), "127.0.9.2", "127.0.9.3"], [busy, {"tasks": []}])
    assert client_of(script).tasks() == []


def test_the_budget_ends_with_the_last_reason() -> None:
    script = Script(["127.0.9.2"] * 3, [REFUSED, REFUSED, REFUSED])
    with pytest.raises(ClusterUnavailable, match="Connection refused") as caught:
        client_of(script, tries=3).status()
    assert not caught.value.maybe_applied and len(script.sent) == 3


def test_every_write_carries_one_key_for_all_its_tries() -> None:
    script = Script(["127.0.9.2", "127.0.9.3"], [REFUSED, {"id": "t-1", "status": "cancelled"}])
    assert client_of(script).cancel("t-1")["status"] == "cancelled"
    keys = keys_of(script)
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) >= 16


def test_a_write_that_may_have_landed_is_not_sent_again() -> None:
    script = Script(["127.0.9.2", "127.0.9.3"], [BROKEN, {"id": "t-1"}])
    with pytest.raises(ClusterUnavailable) as caught:
        client_of(script).restart("t-1")
    assert caught.value.maybe_applied and len(script.sent) == 1


def test_a_submission_is_sent_again_with_its_key_because_the_master_dedupes_it() -> None:
    accepted = {"job": "j-1", "tasks": [], "repeated": True}
    script = Script(["127.0.9.2", "127.0.9.3", "127.0.9.3"],
                    [BROKEN, ServiceError(503, "no standby confirmed it in time"), accepted])
    assert client_of(script).submit("name: x\nimage: i\n", source="x.yaml") == accepted
    keys = keys_of(script)
    assert len(set(keys)) == 1 and len(keys) == 3


def test_a_refusal_is_not_retried() -> None:
    script = Script(["127.0.9.2"], [ServiceError(400, "x.yaml:1: image: required")])
    with pytest.raises(ServiceError, match="image: required"):
        client_of(script).submit("name: x\n")
    assert len(script.sent) == 1


def test_connections_are_kept_per_address() -> None:
    client = client_of(Script([], []))
    assert client.connection("127.0.9.2") is client.connection("127.0.9.2")
    assert client.connection("127.0.9.2") is not client.connection("127.0.9.3")


def test_a_slow_read_tries_the_address_dns_moved_to_side_by_side() -> None:
    """The old master's host is powered off: its connect hangs. DNS moves meanwhile; the client must
    not wait out that connect but take the new master's answer while the first try still hangs."""
    release = threading.Event()
    resolves = iter(["127.0.9.2", "127.0.9.2", "127.0.9.3"] + ["127.0.9.3"] * 50)

    class Connection:
        def __init__(self, base_url: str, secret: str, timeout: float) -> None:
            self.base_url = base_url

        def request(self, method: str, path: str, **kwargs: Any) -> Any:
            if "127.0.9.2" in self.base_url:
                release.wait(10)
                raise REFUSED
            return {"active": True, "at": self.base_url}

    client = Client(Config(dns_address="127.0.9.1"), "s", budget=RetryBudget(seconds=60, tries=1),
                    resolver=lambda config: next(resolves), connect=Connection)
    try:
        assert client.status() == {"active": True, "at": "https://127.0.9.3:23335"}
        assert not release.is_set()  # answered while the first try still hung
    finally:
        release.set()


def test_a_write_that_is_not_deduped_is_never_sent_twice_side_by_side() -> None:
    script = Script(["127.0.9.2"], [BROKEN])
    with pytest.raises(ClusterUnavailable):
        client_of(script, tries=1).cancel("t-1")
    assert len(script.sent) == 1



# ---- the kept worker threads of a call's tries --------------------------------------------------
def _until(check: Any, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(check())


def test_workers_reuse_an_idle_thread_and_run_a_try_beside_a_stuck_one() -> None:
    workers = _Workers()
    ran = threading.Event()
    workers.run(ran.set)
    assert ran.wait(2)
    assert _until(lambda: workers._idle == 1)  # kept for the next call, not ended
    # A try stuck on a dead master must not hold the next one: the second runs beside it.
    release, second = threading.Event(), threading.Event()
    workers.run(lambda: release.wait(2))
    workers.run(second.set)
    assert second.wait(2)
    release.set()


def test_an_unclaimed_worker_ends_after_its_idle_time() -> None:
    workers = _Workers()
    workers.IDLE_SECONDS = 0.3
    ran = threading.Event()
    workers.run(ran.set)
    assert ran.wait(2)
    assert _until(lambda: workers._idle == 1)
    assert _until(lambda: workers._idle == 0)  # it ended: the next call starts a thread again
    again = threading.Event()
    workers.run(again.set)
    assert again.wait(2)
