"""The master's push of service names (`taskorg.master.names`): a changed map is sent whole, an
unchanged one is not sent again, a failed push is sent again on the next tick, and a new activation
sends the map again. The DNS service is a recording stand-in; the pool runs work at once."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable

from taskorg.config import Config
from taskorg.master.names import NamePusher
from taskorg.net.client import ServiceUnavailable


class NowPool:
    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


class RecordingDns:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.down = False

    def request(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        assert (method, path) == ("PUT", "/v1/services")
        if self.down:
            raise ServiceUnavailable("dns down")
        self.sent.append(json)
        return {"epoch": json["epoch"], "names": len(json["names"])}

    def close(self) -> None:
        pass


def pusher() -> tuple[NamePusher, RecordingDns]:
    names = NamePusher(Config(), "secret", NowPool())  # type: ignore[arg-type]
    dns = RecordingDns()
    names.client = dns  # type: ignore[assignment]
    return names, dns


ADDRESSES = {"node1": "10.0.0.2", "node2": "10.0.0.3"}


def test_a_changed_map_is_pushed_once_with_the_epoch() -> None:
    names, dns = pusher()
    rows = [("shop", "web", "node1", "healthy"), ("shop", "web", "node2", "starting")]
    names.update(4, rows, ADDRESSES)
    names.update(4, rows, ADDRESSES)  # unchanged: not sent again
    assert dns.sent == [{"epoch": 4, "names": {"web.shop.taskorg.internal": ["10.0.0.2"]}}]
    names.update(4, [("shop", "web", "node1", "healthy"), ("shop", "web", "node2", "healthy")], ADDRESSES)
    assert dns.sent[-1]["names"] == {"web.shop.taskorg.internal": ["10.0.0.2", "10.0.0.3"]}
    names.update(4, [("shop", "web", "node1", "healthy"), ("shop", "web", "node2", "healthy")],
                 {"node1": "10.0.0.2"})  # node2 is not alive any more
    assert dns.sent[-1]["names"] == {"web.shop.taskorg.internal": ["10.0.0.2"]}
    assert len(dns.sent) == 3


def test_a_failed_push_is_sent_again_on_the_next_tick_and_a_new_term_sends_its_map() -> None:
    names, dns = pusher()
    rows = [("shop", "db", "node2", None)]
    dns.down = True
    names.update(5, rows, ADDRESSES)
    assert dns.sent == []
    dns.down = False
    names.update(5, rows, ADDRESSES)
    assert dns.sent == [{"epoch": 5, "names": {"db.shop.taskorg.internal": ["10.0.0.3"]}}]
    names.reset()  # activated again (a new epoch)
    names.update(6, rows, ADDRESSES)
    assert dns.sent[-1] == {"epoch": 6, "names": {"db.shop.taskorg.internal": ["10.0.0.3"]}}


def test_names_that_are_not_dns_labels_are_left_out() -> None:
    names, dns = pusher()
    names.update(1, [("My_Job", "web", "node1", None), ("shop", "web", "node1", None)], ADDRESSES)
    assert dns.sent == [{"epoch": 1, "names": {"web.shop.taskorg.internal": ["10.0.0.2"]}}]
    assert "web.My_Job" in names.warned


def test_a_failed_push_is_retried_by_a_tick_that_rebuilds_nothing() -> None:
    """The tick rebuilds the map only when the state changed; a push that failed is still retried."""
    names, dns = pusher()
    dns.down = True
    names.update(5, [("shop", "db", "node2", None)], ADDRESSES)
    assert dns.sent == []
    dns.down = False
    names.retry()  # an idle tick
    assert dns.sent == [{"epoch": 5, "names": {"db.shop.taskorg.internal": ["10.0.0.3"]}}]
    names.retry()  # accepted: nothing more to send
    assert len(dns.sent) == 1
