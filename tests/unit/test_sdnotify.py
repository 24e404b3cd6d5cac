"""systemd notifications over a real AF_UNIX datagram socket, as systemd listens for them."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Iterator

import pytest

from taskorg.net import sdnotify
from taskorg.net.httpd import make_server, run_servers


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(5.0)
    yield sock, path
    sock.close()


def test_notify_sends_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert sdnotify.notify("READY=1\nSTATUS=serving", {"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"taskorg-test-{os.getpid()}-{threading.get_ident()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5.0)
        assert sdnotify.notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_nothing_happens_without_notify_socket() -> None:
    assert not sdnotify.notify("READY=1", {})


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    assert not sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_watchdog_interval_from_the_environment() -> None:
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "10000000"}) == 10.0
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}) == 10.0
    # Meant for another process (a parent that exec'd us without clearing it), unset, or nonsense.
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_seconds({}) is None
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "ten"}) is None
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "0"}) is None


def test_watchdog_pings_while_alive_and_stops_when_a_check_fails(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    # 0.3 s WatchdogSec: a ping every 0.1 s.
    watchdog = sdnotify.Watchdog({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "300000"})
    problem: dict[str, str | None] = {"now": None}
    watchdog.watch(lambda: problem["now"])
    assert watchdog.start()
    try:
        assert [sock.recv(64) for _ in range(3)] == [b"WATCHDOG=1"] * 3
        problem["now"] = "the loop is stuck"
        # Drain what may have been sent before the check turned; then nothing more comes.
        sock.settimeout(0.5)
        drained = 0
        with pytest.raises(socket.timeout):
            while drained < 50:
                sock.recv(64)
                drained += 1
        assert drained <= 2
        problem["now"] = None
        sock.settimeout(5.0)
        assert sock.recv(64) == b"WATCHDOG=1"
    finally:
        watchdog.stop()


def test_watchdog_off_without_watchdog_usec(listener: tuple[socket.socket, str]) -> None:
    _, path = listener
    assert not sdnotify.Watchdog({"NOTIFY_SOCKET": path}).start()


def test_beat_is_fresh_until_its_loop_stops() -> None:
    beat = sdnotify.Beat("the tick loop")
    assert beat.stale(0.0) is None  # not started yet: startup is systemd's TimeoutStartSec's business
    beat.mark()
    assert beat.stale(60.0) is None
    problem = beat.stale(-1.0)
    assert problem is not None and "the tick loop" in problem


def test_the_http_server_says_ready_and_its_loop_beats(listener: tuple[socket.socket, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    server = make_server(lambda environ, start: [], "127.0.0.1", 0, threads=1, context=None)
    thread = threading.Thread(target=run_servers, args=([server],), daemon=True)
    thread.start()
    try:
        assert sock.recv(64) == b"READY=1"
        watchdog = sdnotify.process_watchdog()
        # A beat that was ever marked is "stale" against a negative limit: wait (bounded) for the first.
        for _ in range(100):
            if server.loop_beat.stale(-1.0) is not None:
                break
            threading.Event().wait(0.05)
        assert server.loop_beat.stale(-1.0) is not None, "the accept loop never marked its beat"
        assert watchdog.why_not_alive() is None
    finally:
        server.stop()
        thread.join(10)
    assert sdnotify.process_watchdog().why_not_alive() is None  # the stopped server's check is gone
