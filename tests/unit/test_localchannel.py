"""The local role channel (taskorg/net/localchannel.py) on real Unix datagram sockets: a role message
reaches its handler and the answer comes back, a bad datagram is dropped unanswered, the socket is
the owner's alone, and where the channel cannot work the caller is told so (it then uses HTTP)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import pytest

from taskorg.net.localchannel import ChannelError, Listener, Sender
from taskorg.protocol import ReplicaPosition, RoleAnswer, RolePush


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tch-", dir="/tmp"))  # short: a socket path holds 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_role_message_is_handled_and_answered(folder: Path) -> None:
    received: list[RolePush] = []
    answers: list[RoleAnswer] = []
    answered = threading.Event()

    def handle(push: RolePush) -> RoleAnswer:
        received.append(push)
        return RoleAnswer(active=push.active, replica=ReplicaPosition(epoch=push.epoch, seq=7))

    listener = Listener(folder / "master" / "role.sock", RolePush, handle, name="test-role")
    sender = Sender(folder / "node" / "answers.sock", folder / "master" / "role.sock", RoleAnswer,
                    lambda a: (answers.append(a), answered.set()), name="test-answers")
    try:
        sender.send(RolePush(active=True, epoch=3, lease_until_monotonic=12.5, node="node1"))
        assert answered.wait(5), "no answer came back"
        assert received == [RolePush(active=True, epoch=3, lease_until_monotonic=12.5, node="node1")]
        assert answers == [RoleAnswer(active=True, replica=ReplicaPosition(epoch=3, seq=7))]
        assert stat.S_IMODE(os.stat(folder / "master" / "role.sock").st_mode) == 0o600
    finally:
        sender.close()
        listener.close()
    assert not (folder / "master" / "role.sock").exists()


def test_a_bad_datagram_is_dropped_and_the_listener_goes_on(folder: Path) -> None:
    handled = threading.Event()
    listener = Listener(folder / "role.sock", RolePush, lambda push: handled.set() or RoleAnswer(
        active=False, replica=ReplicaPosition(epoch=0, seq=0)), name="test-role")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.sendto(b'{"active": "yes", "epoch": -1}', str(folder / "role.sock"))
        probe.sendto(b"not json", str(folder / "role.sock"))
        probe.sendto(b'{"active": false, "epoch": 1}', str(folder / "role.sock"))
        assert handled.wait(5), "the valid message after two bad ones was not handled"
    finally:
        probe.close()
        listener.close()


def test_no_listener_or_a_path_too_long_is_a_channel_error(folder: Path) -> None:
    sender = Sender(folder / "answers.sock", folder / "nobody.sock", RoleAnswer, lambda a: None, name="test")
    try:
        with pytest.raises(ChannelError):
            sender.send(RolePush(active=False, epoch=1))
    finally:
        sender.close()
    deep = folder / ("x" * 120) / "role.sock"
    with pytest.raises(ChannelError, match="longer than"):
        Listener(deep, RolePush, lambda push: None, name="test")


def test_a_role_push_goes_inline_in_order_and_a_full_queue_falls_back_to_the_thread(folder: Path) -> None:
    """The heartbeat sends its push itself (no thread woken); when the master's queue is full the
    pusher's thread takes it, and nothing newer overtakes what the thread holds."""
    from taskorg.node.role_push import RolePusher

    received: list[int] = []
    gate = threading.Event()
    newest_in = threading.Event()

    def handle(push: RolePush) -> RoleAnswer:
        gate.wait(5)  # a master busy elsewhere: its socket queue fills up meanwhile
        received.append(push.epoch)
        if push.epoch == 400:
            newest_in.set()
        return RoleAnswer(active=False, replica=ReplicaPosition(epoch=0, seq=0))

    listener = Listener(folder / "role.sock", RolePush, handle, name="test-role")
    sender = Sender(folder / "answers.sock", folder / "role.sock", RoleAnswer, lambda a: None, name="test-answers")
    pusher = RolePusher(master=None, on_answer=lambda a: None, channel=sender)  # type: ignore[arg-type]
    try:
        for epoch in range(1, 401):
            pusher.push(RolePush(active=False, epoch=epoch, lease_until_monotonic=0.0, node="node1"))
        fell_back = pusher.sending or pusher.pending is not None
        gate.set()
        assert newest_in.wait(5), "the newest push never arrived"
        assert fell_back, "the master's queue never filled: the test proved nothing"
        assert received[0] == 1 and received[-1] == 400
        assert received == sorted(received), "a newer push overtook an older one"
    finally:
        sender.close()
        listener.close()
