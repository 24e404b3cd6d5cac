"""The active master's alert loop: gathers what it sees, lets `alerts.AlertBook` decide, then records
each alert in the event stream and sends it to the webhooks.

Only the active master alerts (a standby's loop idles), so one cluster
sends each alert once. A new master starts a new book from its own
activation: it says that it became master, and conditions that still hold
fire again from it (a receiver that keys on `alert` and `subject` sees a
repeat, never a gap).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskorg.config import Config, ConfigError
from taskorg.logs import get_logger
from taskorg.master.alerts import Alert, AlertBook, Observation, Thresholds, alert_events
from taskorg.master.events import read_events
from taskorg.master.state import HistoryEvent
from taskorg.master.webhooks import WebhookSender

if TYPE_CHECKING:
    from taskorg.master.engine import Engine

log = get_logger("master.alerts")

INTERVAL = 0.25
FRESH_VIEW = 3.0  # seconds: an older members view (the DNS service unreachable) says nothing
# An older sample (a dead node's last) no longer counts: three resyncs missed, and never under 10 s (the
# window of the 1 s reports before the slaves followed docker's events).
FRESH_TELEMETRY_REPORTS = 3
FRESH_TELEMETRY_MIN = 10.0


def fresh_telemetry(config: Config) -> float:
    """Seconds a node's telemetry sample counts for alerts: it comes with every report, so at least one
    resync (`report_resync_interval`) apart."""
    return max(FRESH_TELEMETRY_MIN, FRESH_TELEMETRY_REPORTS * config.report_resync_interval)


def webhook_secret(config: Config, cluster_secret: str) -> bytes:
    """The HMAC key: the file's content, or the cluster secret when no file is set."""
    if not config.alert_webhook_secret_file:
        return cluster_secret.encode()
    try:
        text = Path(config.alert_webhook_secret_file).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"setting 'alert_webhook_secret_file': cannot read {config.alert_webhook_secret_file}: "
                          f"{exc.strerror}") from None
    if len(text) < 16:
        raise ConfigError(f"setting 'alert_webhook_secret_file': {config.alert_webhook_secret_file} holds "
                          "fewer than 16 characters")
    return text.encode()


class Alerting:
    def __init__(self, engine: "Engine", sender: WebhookSender | None) -> None:
        self.engine = engine
        self.sender = sender
        self.thresholds = Thresholds.from_config(engine.config)
        self.fresh_telemetry = fresh_telemetry(engine.config)
        self.book: AlertBook | None = None
        self.epoch = 0
        self.since = 0

    @classmethod
    def from_engine(cls, engine: "Engine") -> "Alerting":
        config = engine.config
        sender = (WebhookSender(config.alert_webhooks, webhook_secret(config, engine.secret))
                  if config.alert_webhooks else None)
        return cls(engine, sender)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(INTERVAL):
            try:
                self.step()
            except Exception:
                log.exception("alert loop failed")

    def step(self) -> list[Alert]:
        engine = self.engine
        if not engine.role.valid():
            self.book = None
            return []
        if self.book is None or engine.activated_epoch != self.epoch:
            with engine.lock:  # held while a master activates: its master_activated event is in once we hold it
                if engine.activated_epoch != engine.role.epoch:
                    return []  # valid, but not activated yet
                self.book, self.epoch = AlertBook(self.thresholds), engine.activated_epoch
                self.since = activation_event_id(engine) - 1
        seen = self.observe()
        alerts = self.book.observe(seen)
        if alerts:
            self.publish(alerts)
        return alerts

    def observe(self) -> Observation:
        engine = self.engine
        events = read_events(engine, self.since)
        if events:
            self.since = events[-1]["id"]
        now = time.monotonic()
        telemetry = {node: sample for node, sample in list(engine.telemetry_book.by_node.items())
                     if now - sample.get("received", 0.0) <= self.fresh_telemetry}
        lags = {node: seconds for node, (_, seconds) in engine.replicator.lag(engine.store.position()[1]).items()}
        seen = Observation(engine.clock(), events, telemetry, lags)
        members = engine.members
        with members.lock:
            view, fetched_at = members.view, members.fetched_at
        if now - fetched_at <= FRESH_VIEW:
            seen.dead = {m["node"] for m in view.get("members") or [] if not m.get("alive") and m.get("state") != "left"}
            group = view.get("dns_servers") or {}
            if group.get("voters") is not None:
                seen.voters, seen.reachable = list(group["voters"]), list(group.get("reachable") or [])
        return seen

    def publish(self, alerts: list[Alert]) -> None:
        engine = self.engine
        now = engine.clock()
        engine.commit([HistoryEvent(None, None, event, node, detail, now)
                       for event, node, detail in alert_events(alerts)])
        for alert in alerts:
            log.warning("alert", extra={"alert": alert.kind, "status": alert.status, "subject": alert.subject})
            if self.sender:
                self.sender.send(payload(alert, engine.config.cluster, engine.role.node, engine.role.epoch, now))


def payload(alert: Alert, cluster: str, master: str | None, epoch: int, now: float) -> dict[str, Any]:
    """The JSON a webhook receives."""
    when = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {**alert.to_dict(), "cluster": cluster, "master": master, "epoch": epoch, "time": when}


def activation_event_id(engine: "Engine") -> int:
    """The id of this master's `master_activated` event (the newest one), or the newest event's."""
    with engine.store.lock:
        row = engine.store.row("SELECT max(id) AS id FROM history WHERE event = 'master_activated'")
    return int((row or {}).get("id") or 0)


def start_alerting(engine: "Engine", stop: threading.Event) -> Alerting:
    alerting = Alerting.from_engine(engine)
    threading.Thread(target=alerting.run, args=(stop,), daemon=True, name="master-alerts").start()
    return alerting
