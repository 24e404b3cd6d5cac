"""Heartbeats as sealed datagrams: the seal, the challenges that stop replays, and a sender and listener
talking over real UDP on loopback (the arbiter's decision is a stand-in: this is the transport)."""

from __future__ import annotations

import socket

import pytest

from taskorg.dns.beat_listener import BeatListener, Challenges, Coalescing, answer_datagram
from taskorg.net.datagrams import REPLY, REQUEST, DatagramError, datagram_key, seal, unseal
from taskorg.net.server import ApiError
from taskorg.node.beat_sender import BeatRefused, BeatSender
from taskorg.protocol import BeatDatagram, BeatReply, Heartbeat, HeartbeatAnswer, Lease, ReplicaPosition

KEY = datagram_key("cluster secret")
BEAT = Heartbeat(node="node1", address="127.0.0.1", replica=ReplicaPosition(1, 5))


def granted(beat: Heartbeat) -> HeartbeatAnswer:
    return HeartbeatAnswer(3, beat.node, Lease(True, 3, 0.6), arbiter="127.0.0.1")


def test_a_sealed_message_opens_only_with_its_key_and_label() -> None:
    data = seal(KEY, REQUEST, BeatDatagram(beat=BEAT, ask="a1"))
    assert unseal(KEY, REQUEST, data, BeatDatagram).beat == BEAT
    with pytest.raises(DatagramError, match="bad tag"):
        unseal(datagram_key("another cluster"), REQUEST, data, BeatDatagram)
    with pytest.raises(DatagramError):
        unseal(KEY, REPLY, data, BeatDatagram)  # a request never passes for a reply
    tampered = data[:-3] + b'9}}' if data.endswith(b"}}") else data[:-1] + b" "
    with pytest.raises(DatagramError):
        unseal(KEY, REQUEST, tampered, BeatDatagram)
    with pytest.raises(DatagramError):
        unseal(KEY, REQUEST, data[:20], BeatDatagram)


def test_a_sealed_message_of_the_wrong_shape_is_refused() -> None:
    data = seal(KEY, REQUEST, {"beat": {"node": "no spaces allowed"}, "ask": "x"})
    with pytest.raises(DatagramError, match="node"):
        unseal(KEY, REQUEST, data, BeatDatagram)


def test_a_challenge_is_used_once_and_a_rejected_proof_does_not_change_it() -> None:
    numbers = iter(range(100))
    challenges = Challenges(make=lambda: f"c{next(numbers)}")
    assert not challenges.valid("node1", "")
    first = challenges.current_for("node1")
    assert challenges.current_for("node1") == first  # asking again gives the same one
    assert not challenges.valid("node1", "forged")
    assert challenges.current_for("node1") == first
    assert challenges.valid("node1", first)
    second = challenges.renew("node1")
    assert second != first and not challenges.valid("node1", first)


def test_a_replayed_datagram_renews_nothing() -> None:
    challenges = Challenges()
    calls: list[Heartbeat] = []

    def answer(beat: Heartbeat) -> HeartbeatAnswer:
        calls.append(beat)
        return granted(beat)

    first = unseal(KEY, REPLY, answer_datagram(seal(KEY, REQUEST, BeatDatagram(beat=BEAT, ask="a1")), KEY,
                                               challenges, answer), BeatReply)
    assert (first.status, first.answer, calls) == (401, None, [])
    proven = seal(KEY, REQUEST, BeatDatagram(beat=BEAT, ask="a2", proof=first.challenge))
    second = unseal(KEY, REPLY, answer_datagram(proven, KEY, challenges, answer), BeatReply)
    assert second.status == 200 and second.answer == granted(BEAT) and second.ask == "a2" and len(calls) == 1
    replayed = unseal(KEY, REPLY, answer_datagram(proven, KEY, challenges, answer), BeatReply)
    assert (replayed.status, replayed.answer, len(calls)) == (401, None, 1)
    assert replayed.challenge == second.challenge  # the live node's next proof still holds
    assert answer_datagram(b"junk", KEY, challenges, answer) is None


def test_a_refusal_goes_back_with_its_status() -> None:
    challenges = Challenges()

    def refuse(beat: Heartbeat) -> HeartbeatAnswer:
        raise ApiError(404, f"unknown node {beat.node}: register again")

    challenge = challenges.current_for("node1")
    reply = unseal(KEY, REPLY, answer_datagram(seal(KEY, REQUEST, BeatDatagram(beat=BEAT, ask="a", proof=challenge)),
                                               KEY, challenges, refuse), BeatReply)
    assert (reply.status, reply.answer) == (404, None) and "register again" in reply.message


@pytest.fixture
def listener() -> BeatListener:
    beats = BeatListener("127.0.0.1", 0, KEY, granted)
    beats.start()
    yield beats
    beats.close()


def sender_to(listener: BeatListener, key: bytes = KEY, wait: float = 0.5) -> BeatSender:
    return BeatSender("127.0.0.1", listener.sock.getsockname()[1], key, wait=wait)


def test_a_sender_and_a_listener_over_udp(listener: BeatListener) -> None:
    sender = sender_to(listener)
    try:
        for _ in range(3):
            answered = sender.send("127.0.0.1", BEAT)
            assert answered is not None
            answer, sent_at = answered
            assert answer.lease.holder and sent_at > 0
    finally:
        sender.close()


def test_a_sender_with_another_key_gets_no_answer_and_rests(listener: BeatListener) -> None:
    sender = sender_to(listener, key=datagram_key("not this cluster"), wait=0.1)
    try:
        assert sender.send("127.0.0.1", BEAT) is None  # dropped unanswered
        assert sender.resting is not None
        assert sender.send("127.0.0.1", BEAT) is None  # resting: no wait this time
    finally:
        sender.close()


def test_a_refusal_reaches_the_sender(listener: BeatListener) -> None:
    def left(beat: Heartbeat) -> HeartbeatAnswer:
        raise ApiError(410, f"{beat.node} has left the cluster")

    listener.answer = left
    sender = sender_to(listener)
    try:
        with pytest.raises(BeatRefused) as refused:
            sender.send("127.0.0.1", BEAT)
        assert refused.value.status == 410
    finally:
        sender.close()


def test_nothing_listening_means_https_this_time() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a port nobody listens on
    sender = BeatSender("127.0.0.1", port, KEY, wait=0.05)
    try:
        assert sender.send("127.0.0.1", BEAT) is None
    finally:
        sender.close()


def test_datagrams_gather_only_while_the_last_second_was_busy() -> None:
    coalescing = Coalescing(rate=100.0, linger=0.02, window=1.0)
    assert coalescing.after(1, 10.0) == 0.0  # nothing measured yet
    for n in range(1, 30):
        assert coalescing.after(1, 10.0 + n / 30) == 0.0  # 30 a second: each answered at once
    assert coalescing.after(1, 11.0) == 0.0
    for n in range(1, 200):
        coalescing.after(1, 11.0 + n / 200)
    assert coalescing.after(1, 12.0) == 0.02  # 200 in the last second: gather for 20 ms
    assert coalescing.after(40, 12.5) == 0.02
    assert coalescing.after(1, 13.0) == 0.0  # it calmed down (41 in that second)


def test_a_busy_listener_answers_every_sender_in_batches(listener: BeatListener) -> None:
    """Twenty senders beating every 5 ms: the listener is busy and gathers, and each beat is answered."""
    import threading
    import time

    listener.coalescing = coalescing = Coalescing(rate=100.0, linger=0.02, window=0.1)
    lingered: list[float] = []
    measure = coalescing.after
    coalescing.after = lambda handled, now: lingered.append(measure(handled, now)) or lingered[-1]  # type: ignore[method-assign]
    answered: list[float] = []
    lock = threading.Lock()

    def node(number: int) -> None:
        sender = sender_to(listener, wait=0.5)
        beat = Heartbeat(node=f"node{number}", address="127.0.0.1", replica=ReplicaPosition(1, 5))
        try:
            for _ in range(40):
                began = time.monotonic()
                assert sender.send("127.0.0.1", beat) is not None
                with lock:
                    answered.append(time.monotonic() - began)
                time.sleep(0.005)
        finally:
            sender.close()

    threads = [threading.Thread(target=node, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answered) == 800
    assert any(lingered)  # it did gather
    assert len(lingered) < 800  # and read more than one datagram per wake-up
    assert max(answered) < 0.5  # every reply inside the sender's wait
