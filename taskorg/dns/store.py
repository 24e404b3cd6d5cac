"""The member registry and election record in SQLite, as the DNS node kept them before issue 13.

Today the DNS services replicate this state (taskorg.dns.replicated); this
module is the one place the DNS service speaks SQL: it reads an older
cluster's registry.db once, when the first arbiter carries it over into the
replicated state (`carry_over`).

The epoch and master were persisted *before* the DNS record was rewritten,
so a restarted DNS service never went back in time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from taskorg.dns.members import Member
from taskorg.dns.replicated import ReplicatedRegistry
from taskorg.logs import get_logger

log = get_logger("dns")

SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    number INTEGER PRIMARY KEY,
    identity TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'active',
    registered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


class Registry:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Default isolation: `with self._db` wraps each change in one transaction.
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._db.commit()

    # ---- members ----------------------------------------------------------
    def register(self, identity: str, address: str, labels: dict[str, str]) -> tuple[Member, bool]:
        """The member for this identity (created if new); True when it is new."""
        with self._lock, self._db:
            row = self._db.execute("SELECT number FROM members WHERE identity=?", (identity,)).fetchone()
            if row:
                # A member that left stays out until `activate`: its machine may still
                # run the services, and a leave must not be undone by their next heartbeat.
                self._db.execute("UPDATE members SET address=?, labels=? WHERE number=?",
                                 (address, json.dumps(labels), row[0]))
                number, new = row[0], False
            else:
                cur = self._db.execute(
                    "INSERT INTO members(identity, address, labels, registered_at) VALUES (?,?,?,?)",
                    (identity, address, json.dumps(labels), time.time()))
                number, new = int(cur.lastrowid or 0), True
        member = self.member(f"node{number}")
        assert member is not None
        return member, new

    def members(self, include_left: bool = False) -> list[Member]:
        with self._lock:
            rows = self._db.execute(
                "SELECT number, identity, address, labels, state FROM members ORDER BY number").fetchall()
        found = [Member(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]
        return found if include_left else [m for m in found if m.state != "left"]

    def member(self, node: str) -> Member | None:
        return next((m for m in self.members(include_left=True) if m.node == node), None)

    def set_state(self, node: str, state: str) -> None:
        number = int(node.removeprefix("node"))
        with self._lock, self._db:
            self._db.execute("UPDATE members SET state=? WHERE number=?", (state, number))

    # ---- election record --------------------------------------------------
    def election(self) -> tuple[int, str | None]:
        with self._lock:
            rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        return int(rows.get("epoch", 0)), rows.get("master") or None

    def record_election(self, epoch: int, master: str, reason: str, previous: str | None) -> None:
        """Persist the decision durably (synchronous=FULL) before anyone is told."""
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (str(epoch),))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('master', ?)", (master,))
            self._db.execute("INSERT INTO events(time, kind, data) VALUES (?,?,?)", (
                time.time(), "master_elected",
                json.dumps({"epoch": epoch, "master": master, "previous": previous, "reason": reason})))

    # ---- events -----------------------------------------------------------
    def add_event(self, kind: str, **data: Any) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT INTO events(time, kind, data) VALUES (?,?,?)",
                             (time.time(), kind, json.dumps(data)))

    def events(self, since: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, time, kind, data FROM events WHERE id > ? ORDER BY id LIMIT ?", (since, limit)).fetchall()
        return [{"id": r[0], "time": r[1], "kind": r[2], **json.loads(r[3])} for r in rows]

    def close(self) -> None:
        self._db.close()


def carry_over(path: Path, registry: ReplicatedRegistry) -> None:
    """A cluster from before the replicated state (one DNS service, SQLite) keeps its names and epoch.

    Members are registered again in number order into the empty replicated
    state, so each gets the number it had (numbers were never reused).
    """
    if registry.members(include_left=True) or not path.exists():
        return
    old = Registry(path)
    try:
        for member in old.members(include_left=True):
            registry.register(member.identity, member.address, member.labels)
            if member.state != "active":
                registry.set_state(member.node, member.state)
        epoch, master = old.election()
        if master:
            registry.record_election(epoch, master, f"carried over from {path}", None)
    finally:
        old.close()
    log.warning("carried the SQLite registry over into the replicated state", extra={"path": str(path)})
