"""The DNS service process: HTTP API, lease ticks, record publishing.

One lock serialises every decision (registration, heartbeat, election), so
the arbiter's state, the persisted epoch and the published record always
agree. Ticks run on apscheduler every 50 ms: election latency is a direct
part of failover time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, Response, jsonify, request

from taskorg.config import Config
from taskorg.dns.arbiter import Arbiter, Election, Liveness
from taskorg.dns.dnsmasq import Dnsmasq
from taskorg.dns.publisher import Publisher
from taskorg.dns.registry import Registry
from taskorg.logs import get_logger
from taskorg.net.client import ServiceClient
from taskorg.net.server import ApiError, create_service_app, json_body, serve, typed_body
from taskorg.protocol import (Heartbeat, HeartbeatAnswer, Lease, ProtocolError, Registration, checked_address,
                              encode)
from taskorg.secret import read_secret

log = get_logger("dns")
TICK_SECONDS = 0.05
RECORD_CHECK_SECONDS = 1.0


class DnsService:
    def __init__(self, config: Config, secret: str) -> None:
        self.config = config
        self.secret = secret
        self.lock = threading.RLock()
        self.registry = Registry(config.state_path("dns", "registry.db"))
        epoch, master = self.registry.election()
        self.arbiter = Arbiter(config.lease_timeout, config.lease_margin, time.monotonic, epoch=epoch, master=master)
        self.arbiter.ineligible = {m.node for m in self.registry.members(include_left=True) if m.state != "active"}
        # After a restart we do not know who is alive: give every member the
        # benefit of the doubt until its first heartbeat (or the dead timeout),
        # so a DNS service restart never makes a master reschedule everything.
        for member in self.registry.members():
            self.arbiter.members[member.node] = Liveness(time.monotonic(), (0, 0), member.address)
        self.dnsmasq = Dnsmasq(config)
        self.publisher = Publisher(config, self.dnsmasq)
        self.dead: set[str] = set()
        self.scheduler = BackgroundScheduler(daemon=True)

    # ---- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self.dnsmasq.start()
        with self.lock:
            self.publish()
        self.scheduler.add_job(self.tick, "interval", seconds=TICK_SECONDS, max_instances=1, coalesce=True)
        self.scheduler.add_job(self.check_records, "interval", seconds=RECORD_CHECK_SECONDS, max_instances=1,
                               coalesce=True)
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=False)

    # ---- decisions ------------------------------------------------------------
    def register(self, identity: str, address: str, labels: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            member, new = self.registry.register(identity, address, labels)
            if new:
                self.registry.add_event("node_joined", node=member.node, address=address)
                log.info("node joined", extra={"node": member.node, "address": address})
            if member.state != "left" and member.node not in self.arbiter.members:
                self.arbiter.heartbeat(member.node, (0, 0), address)  # registering is a sign of life
            election = self.arbiter.first_master(member.node) if member.state == "active" else None
            if election:
                self.commit(election)
            else:
                self.publish()
            return {"node": member.node, "number": member.number, "fqdn": f"{member.node}.{self.config.suffix}",
                    "epoch": self.arbiter.epoch, "master": self.arbiter.master}

    def heartbeat(self, node: str, address: str, replica: tuple[int, int]) -> HeartbeatAnswer:
        with self.lock:
            member = self.registry.member(node)
            if member is None:
                raise ApiError(404, f"unknown node {node}: register again")
            if member.state == "left":
                raise ApiError(410, f"{node} has left the cluster: `taskorg node activate {node}` takes it back")
            if address and address != member.address:
                self.registry.register(member.identity, address, member.labels)
                self.publish()
            answer = self.arbiter.heartbeat(node, replica, address)
            if node in self.dead:
                self.dead.discard(node)
                self.registry.add_event("node_back", node=node)
            return HeartbeatAnswer(answer.epoch, answer.master, Lease(answer.holder, answer.epoch, answer.valid_for))

    def tick(self) -> None:
        with self.lock:
            election = self.arbiter.tick()
            if election:
                self.commit(election)
            self._note_deaths()

    def commit(self, election: Election) -> None:
        """Persist, then publish, then nudge the new master: in that order."""
        self.registry.record_election(election.epoch, election.master, election.reason, election.previous)
        log.warning("master elected", extra={"epoch": election.epoch, "master": election.master,
                                             "previous": election.previous, "reason": election.reason})
        self.publish()
        member = self.registry.member(election.master)
        if member:
            threading.Thread(target=self._wake, args=(member.address,), daemon=True).start()

    def handover(self, node: str) -> dict[str, Any]:
        with self.lock:
            member = self.registry.member(node)
            if member is None or member.state != "active":
                raise ApiError(400, f"cannot hand the master role to {node}: not an active member")
            if not self.arbiter.alive(node, self.config.lease_timeout):
                raise ApiError(409, f"cannot hand the master role to {node}: it is not heartbeating")
            self.arbiter.request_handover(node)
            return {"master": self.arbiter.master, "handover_to": self.arbiter.handover_to, "epoch": self.arbiter.epoch}

    def set_state(self, node: str, state: str) -> dict[str, Any]:
        with self.lock:
            member = self.registry.member(node)
            if member is None:
                raise ApiError(404, f"unknown node {node}")
            self.registry.set_state(node, state)
            self.registry.add_event(f"node_{'drained' if state == 'draining' else state}", node=node)
            if state == "active":
                self.arbiter.ineligible.discard(node)
            else:
                self.arbiter.ineligible.add(node)
                if self.arbiter.master == node:
                    others = [n for n in self.arbiter.candidates() if n != node]
                    if others:
                        self.arbiter.request_handover(others[0])
            if state == "left":
                self.arbiter.forget(node)
                self.publish()
            return {"node": node, "state": state}

    # ---- publishing -------------------------------------------------------------
    def publish(self) -> None:
        members = self.registry.members()
        nodes = {m.node: m.address for m in members}
        master = self.arbiter.master
        self.publisher.publish(nodes.get(master) if master else None, nodes)

    def check_records(self) -> None:
        """Every second: a hand edit of the master record is a handover; else dnsmasq answers our decision."""
        with self.lock:
            if self._follow_hand_edit():
                return
            master = self.arbiter.master
            address = next((m.address for m in self.registry.members() if m.node == master), None)
        if address and self.dnsmasq.alive():
            if not self.publisher.ensure_master(address, wait=0.1):
                with self.lock:
                    self.publisher.force_rewrite()
                    self.publish()

    def _follow_hand_edit(self) -> bool:
        """Someone rewrote `master.<suffix>` in our hosts file: hand the role to the node it names.

        The usual election path does the rest (the holder steps down, its
        lease lapses, the epoch goes up, the record is published again), so
        fencing holds exactly as for any other change of master. An edit that
        names no living active member is undone instead.
        """
        address = self.publisher.edited_master()
        if address is None:
            return False
        target = next((m.node for m in self.registry.members() if m.address == address and m.state == "active"), None)
        if target is None or not self.arbiter.alive(target, self.config.lease_timeout):
            log.warning("master record edited by hand to a node that cannot be master; restoring it",
                        extra={"address": address})
            self.publisher.force_rewrite()
            self.publish()
            return True
        if target != self.arbiter.master:
            log.warning("master record edited by hand: handing the master role over",
                        extra={"to": target, "master": self.arbiter.master})
            self.arbiter.request_handover(target)
        self.publisher.adopt_edit()
        return True

    def _note_deaths(self) -> None:
        for member in self.registry.members():
            if member.node in self.arbiter.members and member.node not in self.dead \
                    and not self.arbiter.alive(member.node, self.config.node_dead_after):
                self.dead.add(member.node)
                self.registry.add_event("node_dead", node=member.node)
                log.warning("node dead", extra={"node": member.node})

    def _wake(self, address: str) -> None:
        client = ServiceClient(self.config.url(address, self.config.node_port), self.secret, timeout=0.5)
        try:
            client.post("/v1/wake")
        except Exception:  # best effort: the node also polls
            pass
        finally:
            client.close()

    # ---- views ------------------------------------------------------------------
    def members_view(self) -> dict[str, Any]:
        with self.lock:
            now = time.monotonic()
            rows = []
            for m in self.registry.members():
                seen = self.arbiter.members.get(m.node)
                rows.append({
                    "node": m.node, "number": m.number, "fqdn": f"{m.node}.{self.config.suffix}",
                    "address": m.address, "labels": m.labels, "state": m.state,
                    "alive": bool(seen) and now - seen.last_heartbeat <= self.config.node_dead_after,
                    "last_seen_ago": round(now - seen.last_heartbeat, 3) if seen else None,
                    "replica": list(seen.replica) if seen else None,
                    "role": "master" if m.node == self.arbiter.master else "standby",
                })
            return {"members": rows, "master": self.arbiter.master, "epoch": self.arbiter.epoch}


def _address(text: str, what: str) -> str:
    try:
        return checked_address(text, what)
    except ProtocolError as exc:
        raise ApiError(400, str(exc)) from None


def create_app(service: DnsService) -> Flask:
    app = create_service_app("dns", service.secret)

    @app.post("/v1/register")
    def register() -> Any:
        message = typed_body(Registration, "registration")
        return jsonify(service.register(message.identity, _address(message.address, "registration"),
                                        dict(message.labels)))

    @app.post("/v1/heartbeat")
    def heartbeat() -> Any:
        beat = typed_body(Heartbeat, "heartbeat")
        address = _address(beat.address, "heartbeat") if beat.address else ""
        answer = service.heartbeat(beat.node, address, (beat.replica.epoch, beat.replica.seq))
        return Response(encode(answer), mimetype="application/json")

    @app.get("/v1/members")
    def members() -> Any:
        return jsonify(service.members_view())

    @app.get("/v1/master")
    def master() -> Any:
        view = service.members_view()
        address = next((m["address"] for m in view["members"] if m["node"] == view["master"]), None)
        return jsonify(master=view["master"], address=address, epoch=view["epoch"])

    @app.post("/v1/master")
    def handover() -> Any:
        return jsonify(service.handover(str(json_body(("node",))["node"])))

    @app.post("/v1/members/<node>/drain")
    def drain(node: str) -> Any:
        return jsonify(service.set_state(node, "draining"))

    @app.post("/v1/members/<node>/activate")
    def activate(node: str) -> Any:
        return jsonify(service.set_state(node, "active"))

    @app.post("/v1/members/<node>/leave")
    def leave(node: str) -> Any:
        return jsonify(service.set_state(node, "left"))

    @app.get("/v1/events")
    def events() -> Any:
        since = request.args.get("since", "0")
        if not since.isdigit():
            raise ApiError(400, f"since: expected an event id (a whole number), got {since!r}")
        return jsonify(events=service.registry.events(int(since)))

    return app


def run(config: Config) -> None:
    service = DnsService(config, read_secret(config))
    service.start()
    try:
        serve(create_app(service), config.dns_address, config.dns_api_port)
    finally:
        service.stop()
