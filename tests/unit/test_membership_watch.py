"""The membership watch (taskorg.dns.watch): a long poll answers when the view's key moves, or at its
deadline; a watch that starts after a change is answered at once. Pure logic and threads, no I/O."""

from __future__ import annotations

import threading
import time

from taskorg.dns import watch as watch_module
from taskorg.dns.watch import MembershipWatch


def test_a_new_key_moves_the_version_and_the_same_key_does_not() -> None:
    watch = MembershipWatch()
    watch.observe(("epoch 1", "node1"))
    first = watch.version
    watch.observe(("epoch 1", "node1"))
    assert watch.version == first
    watch.observe(("epoch 2", "node2"))
    assert watch.version == first + 1


def test_a_watch_behind_the_version_is_answered_at_once() -> None:
    watch = MembershipWatch()
    watch.observe("a")
    began = time.monotonic()
    assert watch.wait(watch.version - 1, 5.0) == watch.version
    assert time.monotonic() - began < 0.5


def test_a_watch_waits_for_a_change_and_wakes_on_it() -> None:
    watch = MembershipWatch()
    watch.observe("alive: node1, node2")
    since = watch.version
    answered: list[float] = []

    def hold() -> None:
        began = time.monotonic()
        watch.wait(since, 5.0)
        answered.append(time.monotonic() - began)

    waiter = threading.Thread(target=hold)
    waiter.start()
    deadline = time.monotonic() + 5
    while not watch.wanted() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watch.wanted()
    watch.observe("alive: node1")  # node2 declared dead
    waiter.join(5)
    assert answered and answered[0] < 1.0
    assert not watch.wanted()


def test_a_watch_ends_at_its_deadline_without_a_change() -> None:
    watch = MembershipWatch()
    watch.observe("same")
    began = time.monotonic()
    assert watch.wait(watch.version, 0.1) == watch.version
    assert 0.05 <= time.monotonic() - began < 1.0


def test_watches_beyond_the_cap_are_answered_at_once() -> None:
    watch = MembershipWatch()
    watch.observe("same")
    watch.waiting = watch_module.MAX_WATCHERS  # every slot held
    began = time.monotonic()
    watch.wait(watch.version, 5.0)
    assert time.monotonic() - began < 0.5
