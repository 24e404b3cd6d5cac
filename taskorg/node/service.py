"""The node service process: register, heartbeat, follow the master record.

The local master service is *enabled* (active) only while both hold:
`master.<suffix>` resolves to this node's address, and this node holds an
unexpired lease from the DNS service, counted from when the renewal was
*sent*. The master service receives the lease deadline on every renewal and
fences itself when it passes, even if this process dies.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify

from taskorg.config import Config
from taskorg.logs import get_logger
from taskorg.metrics import http as probes, node as metrics
from taskorg.net import sdnotify
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.datagrams import datagram_key
from taskorg.net.localchannel import ChannelError, Sender, role_channel_path
from taskorg.net.loops import run_every
from taskorg.net.resolve import ResolveError, Unanswered, resolve_master
from taskorg.net.server import create_service_app, serve
from taskorg.net.sharedposition import PositionReader, position_path
from taskorg.node.beat_sender import BeatRefused, BeatSender
from taskorg.node.identity import node_identity
from taskorg.node.role_push import RolePusher
from taskorg.protocol import (Heartbeat, HeartbeatAnswer, ProtocolError, Registration, ReplicaPosition, RoleAnswer,
                              RolePush, convert, to_wire)
from taskorg.secret import read_secret
from taskorg.security.files import write_private

log = get_logger("node")
BEAT_REPLY_WAIT = 0.2  # at most, for a datagram's reply: a LAN answers in a millisecond; then HTTPS
ROLE_RESEND = 1.0  # an unchanged role message is pushed again this often (a restarted master service hears it)


@dataclass
class RoleState:
    epoch: int = 0
    lease_until: float = 0.0  # monotonic; valid only while we hold the lease
    dns_master: str | None = None
    arbiter_master: str | None = None
    active: bool = False


class NodeService:
    def __init__(self, config: Config, secret: str) -> None:
        self.config = config
        self.secret = secret
        self.address = config.node_address
        self.identity = node_identity(self.address)
        self.node: str | None = None
        self.fqdn: str | None = None
        self.role = RoleState()
        self.lock = threading.Lock()
        self.identity_lock = threading.Lock()
        # The arbiter that answered last first (no relay), then this machine's own DNS service, then every
        # other: any of them answers (it relays to the arbiter).
        self.dns = {address: ServiceClient(config.url(address, config.dns_api_port), secret,
                                           timeout=max(0.3, config.lease_timeout / 2))
                    for address in config.dns_server_list}
        self.arbiter: str | None = None
        self.beats = self._beat_sender()
        self.master = ServiceClient(config.url(self.address, config.master_port), secret, timeout=0.3)
        # The replica position each heartbeat carries: read from the file the master service's store
        # writes after every commit (taskorg.net.sharedposition); until that file exists, the master
        # service's answer to the last role push, or asked for directly at most once a second.
        self.positions = PositionReader(position_path(config)) if config.master_service else None
        self.replica: ReplicaPosition | None = None
        self.replica_asked_after = 0.0  # monotonic time before which the master service is not asked again
        # The last role message pushed and when: an unchanged one (a standby's, beat after beat) is
        # pushed again only every ROLE_RESEND seconds, so a restarted master service still hears it.
        self.last_push: tuple[RolePush, float] | None = None
        # A node without a master service (setting master_service: false) has nobody to tell its role.
        self.pusher = (RolePusher(self.master, self._on_role_answer, self._role_channel())
                       if config.master_service else None)
        self.stopping = threading.Event()
        self.last_answer = 0.0  # monotonic time of the last answered heartbeat
        # Marked by every heartbeat run (answered or not): systemd's watchdog restarts a node service
        # whose heartbeat job hangs.
        self.heartbeat_beat = sdnotify.Beat("the node's heartbeat job")

    def _beat_sender(self) -> BeatSender | None:
        """Heartbeats as sealed datagrams to the arbiter (None: over HTTPS only)."""
        if not self.config.beat_port:
            return None
        try:
            return BeatSender(self.address, self.config.beat_port, datagram_key(self.secret),
                              wait=min(BEAT_REPLY_WAIT, max(0.05, self.config.lease_timeout / 3)))
        except OSError as exc:
            log.warning("heartbeat datagrams unavailable: heartbeats use HTTPS", extra={"reason": str(exc)})
            return None

    def _role_channel(self) -> Sender[RoleAnswer] | None:
        """The local role channel to this machine's master service (None: role pushes go by HTTP)."""
        try:
            return Sender(self.config.state_path("node", "role-answer.sock"), role_channel_path(self.config),
                          RoleAnswer, self._on_role_answer, name="role-answers")
        except (ChannelError, OSError) as exc:
            log.warning("local role channel unavailable: role pushes use HTTP", extra={"reason": str(exc)})
            return None

    # ---- registration ---------------------------------------------------------
    def register(self, wait: bool = True) -> None:
        delay = 0.2
        while True:
            try:
                answer = self._dns_post("/v1/register", to_wire(Registration(
                    identity=self.identity, address=self.address, labels=dict(self.config.node_labels))))
                break
            except (ServiceUnavailable, ServiceError) as exc:
                if not wait:
                    raise
                log.warning("cannot register yet", extra={"dns": self.config.dns_server_list, "error": str(exc)})
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.node, self.fqdn = answer["node"], answer["fqdn"]
        identity = {"node": self.node, "number": answer["number"], "fqdn": self.fqdn,
                    "address": self.address, "identity": self.identity}
        # Written whole and fsynced (the slave reads it), one writer at a time: the start and the heartbeat
        # loop both register.
        with self.identity_lock:
            write_private(self.config.state_path("node.json"), json.dumps(identity).encode())
        log.info("registered", extra=identity)

    def _dns_post(self, path: str, body: dict[str, Any]) -> Any:
        """POST to the first DNS service that answers: unreachable or 503 (no arbiter there) means the next."""
        failure: Exception = ServiceUnavailable("no DNS server configured")
        order = ([self.arbiter] if self.arbiter in self.dns else []) + [a for a in self.dns if a != self.arbiter]
        self.arbiter = None  # until an answer names it again
        for address in order:
            try:
                answer = self.dns[address].post(path, body)
            except ServiceUnavailable as exc:
                failure = exc
                continue
            except ServiceError as exc:
                if exc.status != 503:
                    raise
                failure = exc
                continue
            self.arbiter = answer.get("arbiter") if isinstance(answer, dict) else None
            return answer
        raise failure

    # ---- periodic work ----------------------------------------------------------
    def start(self) -> None:
        self.register()
        run_every(self.config.heartbeat_interval, self.heartbeat, "heartbeat", self.stopping)
        run_every(self.config.role_check_interval, self.check_role, "role-check", self.stopping)

    def heartbeat(self) -> None:
        self.heartbeat_beat.mark()
        if self.node is None:
            return  # not registered yet (a wake-up can come first)
        beat = Heartbeat(node=self.node, address=self.address, replica=self._replica_position())
        try:
            answer, sent_at, transport = self._send_beat(beat)
        except ServiceError as exc:
            metrics.HEARTBEATS.labels("refused").inc()
            if exc.status == 404:
                self.register(wait=False)
            # 410: this node has left the cluster; keep asking (quietly) until it is activated again.
            return
        except (ServiceUnavailable, ProtocolError):
            metrics.HEARTBEATS.labels("unreachable").inc()
            return
        self.last_answer = time.monotonic()
        metrics.HEARTBEATS.labels("answered").inc()
        metrics.BEATS_BY_TRANSPORT.labels(transport).inc()
        lease = answer.lease
        if lease.holder and lease.valid_for > 0:
            metrics.LEASE_RENEWALS.inc()
            metrics.LEASE_RENEWAL_SECONDS.observe(self.last_answer - sent_at)
        with self.lock:
            self.role.arbiter_master = answer.master
            if lease.holder and lease.valid_for > 0:
                self.role.epoch = lease.epoch
                self.role.lease_until = sent_at + lease.valid_for
                self._log_lease(self.last_answer)
            else:
                self.role.epoch = max(self.role.epoch, answer.epoch)
                self.role.lease_until = 0.0
            # The record is rewritten just before a new holder hears of it: look again.
            stale = lease.holder != (self.role.dns_master == self.address)
        self.check_role(resolve=stale, push=True)

    def _replica_position(self) -> ReplicaPosition:
        """This machine's replica position, as the master service's store last wrote it."""
        found = self.positions.read() if self.positions is not None else None
        if found is not None:
            return ReplicaPosition(epoch=found[0], seq=found[1])
        if self.replica is None and self.config.master_service and time.monotonic() >= self.replica_asked_after:
            # At most once a second: a master service that is not up yet costs no request per beat.
            self.replica_asked_after = time.monotonic() + 1.0
            try:
                self.replica = convert(self.master.get("/v1/replica", timeout=0.2), ReplicaPosition, "replica")
            except (ServiceUnavailable, ServiceError, ProtocolError):
                pass  # the master service is starting: report no position yet
        return self.replica or ReplicaPosition(epoch=0, seq=0)

    def _send_beat(self, beat: Heartbeat) -> tuple[HeartbeatAnswer, float, str]:
        """The answer, when the answered request was sent (the lease counts from there) and how it went:
        a datagram to the arbiter that answered last, else HTTPS through any DNS service (it relays)."""
        arbiter = self.arbiter
        if self.beats is not None and arbiter:
            try:
                answered = self.beats.send(arbiter, beat)
            except BeatRefused as exc:
                raise ServiceError(exc.status, exc.message) from None
            if answered is not None:
                answer, sent_at = answered
                self.arbiter = answer.arbiter or arbiter
                return answer, sent_at, "datagram"
        sent_at = time.monotonic()
        answer = convert(self._dns_post("/v1/heartbeat", to_wire(beat)), HeartbeatAnswer, "heartbeat answer")
        return answer, sent_at, "https"

    def _log_lease(self, received_at: float) -> None:
        """One line per lease held: from when this node heard of it (it cannot act on it before) until
        it runs out (counted from when the heartbeat was sent, so never later than the arbiter's)."""
        if self.config.lease_log:
            with open(self.config.lease_log, "a") as handle:
                handle.write(f"{self.role.epoch} {self.node} {received_at:.6f} {self.role.lease_until:.6f}\n")

    def check_role(self, resolve: bool = True, push: bool = False) -> None:
        """Decide the role; tell the master service on a change or a lease renewal (`push`)."""
        if resolve:
            try:
                dns_master: str | None = resolve_master(self.config, timeout=0.3)
            except Unanswered:
                # No DNS server answered in time (a loaded machine): that says nothing about the record,
                # so the last answer stands; the lease still bounds the role. Dropping it fenced a valid
                # master for a beat and refused its clients.
                dns_master = self.role.dns_master
            except ResolveError:
                dns_master = None
            with self.lock:
                self.role.dns_master = dns_master
        with self.lock:
            active = self.role.dns_master == self.address and time.monotonic() < self.role.lease_until
            changed = active != self.role.active
            self.role.active = active
            message = RolePush(active=active, epoch=self.role.epoch, lease_until_monotonic=self.role.lease_until,
                               master=self.role.arbiter_master, master_address=self.role.dns_master, node=self.node)
        if changed:
            log.warning("role changed", extra={"role": "master" if active else "standby", "epoch": message.epoch})
        if (changed or push) and self.pusher is not None and self._worth_pushing(message):
            self.pusher.push(message)

    def _worth_pushing(self, message: RolePush) -> bool:
        """A message that differs from the last one pushed (a lease renewal always does: it carries the
        new end), or the same again after ROLE_RESEND seconds. A standby's message stays the same beat
        after beat, and each push woke the master service's channel thread ten times a second."""
        now = time.monotonic()
        with self.lock:
            if self.last_push and self.last_push[0] == message and now - self.last_push[1] < ROLE_RESEND:
                return False
            self.last_push = (message, now)
            return True

    def _on_role_answer(self, answer: RoleAnswer) -> None:
        self.replica = answer.replica

    def wake(self) -> None:
        threading.Thread(target=self.heartbeat, daemon=True).start()

    def not_ready(self) -> str | None:
        """Readiness: registered, and a DNS service answered a heartbeat lately."""
        if self.node is None:
            return "not registered with the DNS service yet"
        silent = time.monotonic() - self.last_answer
        if silent > max(2.0, 10 * self.config.heartbeat_interval):
            return f"no heartbeat answered for {silent:.1f} s (DNS servers: {', '.join(self.config.dns_server_list)})"
        return None

    def role_view(self) -> dict[str, Any]:
        with self.lock:
            return {"node": self.node, "role": "master" if self.role.active else "standby",
                    "epoch": self.role.epoch, "dns_master": self.role.dns_master,
                    "lease_valid_for": max(0.0, round(self.role.lease_until - time.monotonic(), 3))}


def create_app(service: NodeService) -> Flask:
    app = create_service_app("node", service.secret)

    @app.get("/v1/identity")
    def identity() -> Any:
        return jsonify(node=service.node, fqdn=service.fqdn, address=service.address, identity=service.identity)

    @app.get("/v1/role")
    def role() -> Any:
        return jsonify(service.role_view())

    @app.post("/v1/wake")
    def wake() -> Any:
        service.wake()
        return jsonify(ok=True)

    probes.install(app, "node", service.not_ready, {"node": lambda: metrics.read(service)})
    return app


HEARTBEAT_STALE_AFTER = 30.0  # a heartbeat run takes at most a few seconds (its calls have timeouts)


def run(config: Config) -> None:
    service = NodeService(config, read_secret(config))
    sdnotify.process_watchdog().watch(lambda: service.heartbeat_beat.stale(HEARTBEAT_STALE_AFTER))
    app = create_app(service)
    threading.Thread(target=service.start, daemon=True, name="node-start").start()
    serve(app, service.address, config.node_port)
