"""Heartbeats as datagrams, on the DNS service's side (the node's is taskorg.node.beat_sender).

Every DNS service listens on UDP `beat_port` of its own address; only the
arbiter answers with a lease, the others answer 503 and the node asks over
HTTPS (which relays). A datagram is acted on only when

- its tag is right (taskorg.net.datagrams: sealed with the cluster key), and
- its `proof` is the challenge this listener last gave that node, which it
  then replaces: a datagram captured and sent again later renews nothing,
  so nobody can keep a dead master's lease alive by replaying its beats.

A datagram whose proof is stale (the node's first, or its first to a new
arbiter) gets the current challenge back and no lease (status 401); the node
sends again at once, one round trip more. A rejected proof never changes
the challenge, so replays cannot knock a live node's next beat out.

On a busy arbiter the datagrams are answered in small batches: above
COALESCE_RATE datagrams a second the thread lets LINGER pass after each
batch, and reads everything that arrived meanwhile in one wake-up. Each
wake-up of an idle process cost far more than the answer itself (about
270 against 35 µs of CPU per datagram, measured with 20 nodes beating ten
times a second), so a wake-up per datagram was most of the DNS node's idle
cost. A reply then comes up to LINGER later; the lease counts from when the
node sent its datagram, so a late reply shortens no lease beyond the wait.
Below the rate, every datagram is answered at once, as before.

`Challenges` and `Coalescing` are pure; `BeatListener` is the socket and its thread.
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
from typing import Callable

from taskorg.logs import get_logger
from taskorg.metrics import dns as metrics
from taskorg.net.datagrams import MAX_DATAGRAM, REPLY, REQUEST, DatagramError, nonce, seal, unseal
from taskorg.net.server import ApiError
from taskorg.protocol import BeatDatagram, BeatReply, Heartbeat, HeartbeatAnswer

log = get_logger("dns")
# The counters' children, looked up once (labels() takes a lock and builds a key on every call).
_COUNTED = {outcome: metrics.BEAT_DATAGRAMS.labels(outcome) for outcome in ("answered", "challenged", "refused",
                                                                           "dropped")}
MAX_NODES = 10_000  # challenges kept at most (only sealed datagrams, from holders of the key, make one)
COALESCE_RATE = 100.0  # datagrams a second above which they are read in batches (10 nodes at the default beat)
LINGER = 0.02  # seconds let pass after a batch, at that rate: well inside a beat's reply wait (50 ms or more)


class Challenges:
    """Per node, the one challenge its next datagram must carry; a valid datagram consumes it."""

    def __init__(self, make: Callable[[], str] = nonce) -> None:
        self.make = make
        self.current: dict[str, str] = {}

    def valid(self, node: str, proof: str) -> bool:
        current = self.current.get(node)
        return bool(proof) and current is not None and hmac.compare_digest(current, proof)

    def current_for(self, node: str) -> str:
        if node not in self.current:
            if len(self.current) >= MAX_NODES:
                self.current.clear()  # every node then proves itself again: one round trip each
            self.current[node] = self.make()
        return self.current[node]

    def renew(self, node: str) -> str:
        """Consume the node's challenge: the next datagram must carry the one returned."""
        self.current[node] = self.make()
        return self.current[node]


def answer_datagram(data: bytes, key: bytes, challenges: Challenges,
                    answer: Callable[[Heartbeat], HeartbeatAnswer]) -> bytes | None:
    """The sealed reply to one datagram, or None to drop it (not sealed with the cluster key)."""
    try:
        datagram = unseal(key, REQUEST, data, BeatDatagram)
    except DatagramError:
        _COUNTED["dropped"].inc()
        return None
    node = datagram.beat.node
    if not challenges.valid(node, datagram.proof):
        _COUNTED["challenged"].inc()
        return seal(key, REPLY, BeatReply(ask=datagram.ask, challenge=challenges.current_for(node), status=401,
                                          message="prove freshness: send again with this challenge"))
    challenge = challenges.renew(node)
    try:
        result = answer(datagram.beat)
    except ApiError as exc:
        _COUNTED["refused"].inc()
        return seal(key, REPLY, BeatReply(ask=datagram.ask, challenge=challenge, status=exc.status,
                                          message=exc.message[:300]))
    _COUNTED["answered"].inc()
    return seal(key, REPLY, BeatReply(ask=datagram.ask, challenge=challenge, answer=result))


class Coalescing:
    """How long to let datagrams gather after a batch: LINGER while the last whole second saw more than
    COALESCE_RATE of them, else nothing (each is answered at once)."""

    def __init__(self, rate: float = COALESCE_RATE, linger: float = LINGER, window: float = 1.0) -> None:
        self.rate, self.linger, self.window = rate, linger, window
        self.started = 0.0
        self.count = 0
        self.busy = False

    def after(self, handled: int, now: float) -> float:
        """Seconds to wait before reading again, after a batch of `handled` datagrams at `now`."""
        if now - self.started >= self.window:
            self.busy = self.started > 0 and self.count / (now - self.started) > self.rate
            self.started, self.count = now, 0
        self.count += handled
        return self.linger if self.busy else 0.0


class BeatListener:
    """The UDP socket on `address:port` and the thread that answers it, one datagram at a time."""

    def __init__(self, address: str, port: int, key: bytes, answer: Callable[[Heartbeat], HeartbeatAnswer]) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
        self.where = (address, port)
        self.key = key
        self.answer = answer
        self.challenges = Challenges()  # touched by the one serving thread only
        self.coalescing = Coalescing()
        self.thread = threading.Thread(target=self._serve, name="beat-listener", daemon=True)

    def start(self) -> None:
        """Bind and answer (bound here, not before: a service object may be made and never started)."""
        self.sock.bind(self.where)
        self.thread.start()

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                data, source = self.sock.recvfrom(MAX_DATAGRAM + 1)
            except OSError:
                return  # closed
            handled = 0
            while True:  # this one and every one already waiting, in one wake-up
                self._answer(data, source)
                handled += 1
                try:
                    data, source = self.sock.recvfrom(MAX_DATAGRAM + 1, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:
                    return  # closed
            linger = self.coalescing.after(handled, time.monotonic())
            if linger:
                time.sleep(linger)

    def _answer(self, data: bytes, source: tuple[str, int]) -> None:
        try:
            reply = answer_datagram(data, self.key, self.challenges, self.answer)
            if reply is not None:
                self.sock.sendto(reply, source)
        except OSError as exc:
            log.info("heartbeat reply not sent", extra={"to": str(source[0]), "error": str(exc)})
        except Exception:  # one bad datagram must never stop the listener
            log.exception("heartbeat datagram failed", extra={"from": str(source[0])})
