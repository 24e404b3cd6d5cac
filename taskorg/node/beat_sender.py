"""Heartbeats as datagrams, on the node's side (the arbiter's is taskorg.dns.beat_listener).

The node sends each heartbeat as one sealed UDP datagram straight to the
arbiter that answered last, and takes only a reply that is sealed with the
cluster key and echoes this datagram's own `ask`. The lease counts from
when the answered datagram was sent, as over HTTPS. A stale proof (the
first datagram, or the first to a new arbiter) costs one more round trip.

Whenever the datagram path gives no lease (no reply in time, not the
arbiter, a network that drops UDP) the caller asks over HTTPS instead, as
before; after a silence the datagram path rests for `REST_AFTER_SILENCE`
seconds, or until another arbiter answers, so a firewall that drops UDP
does not cost every heartbeat a wait.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from taskorg.net.datagrams import MAX_DATAGRAM, REPLY, REQUEST, DatagramError, nonce, seal, unseal
from taskorg.protocol import BeatDatagram, BeatReply, Heartbeat, HeartbeatAnswer

REST_AFTER_SILENCE = 5.0
ATTEMPTS = 2  # a stale proof, then the fresh challenge


@dataclass(frozen=True)
class BeatRefused(Exception):
    """The arbiter refused the heartbeat as its HTTP route would (404 unknown node, 410 left)."""

    status: int
    message: str


class BeatSender:
    """One UDP socket on the node's address; heartbeats one at a time (the node's calls are serialised)."""

    def __init__(self, source_address: str, port: int, key: bytes, wait: float) -> None:
        family = socket.AF_INET6 if ":" in source_address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((source_address, 0))
        self.port = port
        self.key = key
        self.wait = wait
        self.lock = threading.Lock()
        self.proof = ""
        self.proof_from: str | None = None  # the arbiter whose challenge `proof` is
        self.resting: tuple[str, float] | None = None  # (arbiter, until): no datagrams to it until then

    def send(self, arbiter: str, beat: Heartbeat) -> tuple[HeartbeatAnswer, float] | None:
        """The arbiter's answer and the monotonic time the answered datagram was sent; None: ask
        over HTTPS this time. BeatRefused for an answer the HTTP route would have given as an error."""
        with self.lock:
            if self.resting and self.resting[0] == arbiter and time.monotonic() < self.resting[1]:
                return None
            self.resting = None
            if arbiter != self.proof_from:
                self.proof, self.proof_from = "", arbiter
            for _ in range(ATTEMPTS):
                ask, sent_at = nonce(), time.monotonic()
                try:
                    self.sock.sendto(seal(self.key, REQUEST, BeatDatagram(beat=beat, ask=ask, proof=self.proof)),
                                     (arbiter, self.port))
                except OSError:
                    reply = None
                else:
                    reply = self._reply_to(ask, sent_at + self.wait)
                if reply is None:
                    self.resting = (arbiter, time.monotonic() + REST_AFTER_SILENCE)
                    return None
                self.proof = reply.challenge
                if reply.status == 200 and reply.answer is not None:
                    return reply.answer, sent_at
                if reply.status in (404, 410):
                    raise BeatRefused(reply.status, reply.message)
                if reply.status != 401:
                    return None  # not the arbiter (any more): HTTPS finds the one that is
            return None

    def _reply_to(self, ask: str, deadline: float) -> BeatReply | None:
        """The reply that echoes `ask`; others (late replies to earlier datagrams, junk) are skipped."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(MAX_DATAGRAM + 1)
            except (socket.timeout, OSError):
                return None
            try:
                reply = unseal(self.key, REPLY, data, BeatReply)
            except DatagramError:
                continue
            if reply.ask == ask:
                return reply

    def close(self) -> None:
        self.sock.close()
