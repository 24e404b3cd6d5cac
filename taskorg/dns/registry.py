"""The member registry and election record, in SQLite on the DNS node (before issue 13).

Today the DNS services replicate this state (taskorg.dns.replicated); this
module keeps the `Member` record and reads an older cluster's registry.db
once, when it is carried over.

Names are stable: an identity (MAC address, or MAC@address where machines
share a MAC, as loopback test nodes do) keeps its node number forever. The
epoch and master are persisted *before* the DNS record is rewritten, so a
restarted DNS service never goes back in time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Member:
    number: int
    identity: str
    address: str
    labels: dict[str, str]
    state: str  # active | draining | left

    @property
    def node(self) -> str:
        return f"node{self.number}"


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
