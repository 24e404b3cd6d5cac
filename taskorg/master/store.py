"""Master state in SQLite (WAL), changed only through a numbered change log.

Every change is a whole-row upsert, so applying it is deterministic and
idempotent: the active master commits rows and log entries in one
transaction, and a standby applies the same entries (or a snapshot) to its
replica. The replica position is (epoch of the last change, its sequence
number); the DNS service elects the node with the freshest one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

TABLES: dict[str, tuple[str, ...]] = {
    "jobs": ("id", "name", "seed", "source", "submitted_at", "request_id"),
    "tasks": ("id", "job", "name", "spec", "desired", "status", "reason", "result", "created_at", "updated_at"),
    "instances": ("task_id", "idx", "node", "status", "attempt", "restarts", "exit_code", "container_id",
                  "error", "started_at", "finished_at", "not_before", "updated_at", "result"),
    "history": ("id", "task_id", "idx", "time", "event", "node", "detail"),
}
KEYS = {"jobs": "id", "tasks": "id", "instances": "task_id, idx", "history": "id"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, name TEXT, seed INTEGER, source TEXT, submitted_at REAL,
    request_id TEXT);
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, job TEXT, name TEXT, spec TEXT, desired TEXT,
    status TEXT, reason TEXT, result TEXT, created_at REAL, updated_at REAL);
CREATE INDEX IF NOT EXISTS tasks_by_job ON tasks(job);
CREATE TABLE IF NOT EXISTS instances (task_id TEXT, idx INTEGER, node TEXT, status TEXT, attempt INTEGER,
    restarts INTEGER, exit_code INTEGER, container_id TEXT, error TEXT, started_at REAL, finished_at REAL,
    not_before REAL, updated_at REAL, result TEXT, PRIMARY KEY (task_id, idx));
CREATE INDEX IF NOT EXISTS instances_by_status ON instances(status);
CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY, task_id TEXT, idx INTEGER, time REAL,
    event TEXT, node TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS history_by_task ON history(task_id);
CREATE TABLE IF NOT EXISTS changelog (seq INTEGER PRIMARY KEY, epoch INTEGER, tbl TEXT, row TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""

Change = tuple[str, dict[str, Any]]  # (table, full row)
KEEP_CHANGES = 20000


class GapError(Exception):
    """Replicated entries do not follow this replica's position."""


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._migrate()
        self._next_history = (self.db.execute("SELECT MAX(id) FROM history").fetchone()[0] or 0) + 1

    def _migrate(self) -> None:
        """Bring a state file from an older version up to this schema."""
        for table, column in (("jobs", "request_id"), ("instances", "result")):
            columns = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
        self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_request ON jobs(request_id)")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """All or nothing: a crash part-way leaves the store as it was."""
        history = self._next_history
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            self._next_history = history
            raise
        self.db.execute("COMMIT")

    # ---- position -----------------------------------------------------------------
    def _meta(self, key: str, default: int = 0) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def position(self) -> tuple[int, int]:
        with self.lock:
            return self._meta("epoch"), self._meta("seq")

    def fence_epoch(self) -> int:
        """The highest master epoch this store has taken orders from."""
        with self.lock:
            return max(self._meta("fence"), self._meta("epoch"))

    def raise_fence(self, epoch: int) -> None:
        with self.lock, self._transaction():
            if epoch > self._meta("fence"):
                self._set_meta("fence", epoch)

    # ---- writing ----------------------------------------------------------------------
    def history_id(self) -> int:
        with self.lock:
            value = self._next_history
            self._next_history += 1
            return value

    def commit(self, changes: Iterable[Change], epoch: int) -> int:
        """Apply changes and log them in one durable transaction; the last seq."""
        with self.lock, self._transaction():
            seq = self._meta("seq")
            for table, row in changes:
                seq += 1
                self._upsert(table, row)
                self.db.execute("INSERT INTO changelog VALUES (?,?,?,?)", (seq, epoch, table, json.dumps(row)))
            self._set_meta("seq", seq)
            self._set_meta("epoch", epoch)
            if seq % 1000 == 0:
                self.db.execute("DELETE FROM changelog WHERE seq <= ?", (seq - KEEP_CHANGES,))
            return seq

    def _upsert(self, table: str, row: dict[str, Any]) -> None:
        columns = TABLES[table]
        values = [row.get(c) for c in columns]
        self.db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES "
                        f"({', '.join('?' * len(columns))})", values)
        if table == "history" and row["id"] >= self._next_history:
            self._next_history = row["id"] + 1

    # ---- replication --------------------------------------------------------------------
    def changes_since(self, seq: int, limit: int = 2000) -> list[dict[str, Any]] | None:
        """Log entries after `seq`; None when they were pruned (send a snapshot)."""
        with self.lock:
            rows = self.db.execute("SELECT seq, epoch, tbl, row FROM changelog WHERE seq > ? ORDER BY seq LIMIT ?",
                                   (seq, limit)).fetchall()
            if rows and rows[0][0] != seq + 1:
                return None
            if not rows and seq < self._meta("seq"):
                return None
        return [{"seq": r[0], "epoch": r[1], "table": r[2], "row": json.loads(r[3])} for r in rows]

    def apply_replicated(self, entries: list[dict[str, Any]]) -> tuple[int, int]:
        with self.lock, self._transaction():
            seq, epoch = self._meta("seq"), self._meta("epoch")
            for entry in entries:
                if entry["seq"] <= seq:
                    continue  # already applied (a retried batch)
                if entry["seq"] != seq + 1:
                    raise GapError(f"expected change {seq + 1}, got {entry['seq']}")
                self._upsert(entry["table"], entry["row"])
                self.db.execute("INSERT OR REPLACE INTO changelog VALUES (?,?,?,?)",
                                (entry["seq"], entry["epoch"], entry["table"], json.dumps(entry["row"])))
                seq, epoch = entry["seq"], entry["epoch"]
            self._set_meta("seq", seq)
            self._set_meta("epoch", epoch)
            return epoch, seq

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            epoch, seq = self._meta("epoch"), self._meta("seq")
            tables = {name: [dict(r) for r in self.db.execute(f"SELECT * FROM {name}")] for name in TABLES}
        return {"epoch": epoch, "seq": seq, "tables": tables}

    def load_snapshot(self, snapshot: dict[str, Any]) -> tuple[int, int]:
        with self.lock, self._transaction():
            for name in TABLES:
                self.db.execute(f"DELETE FROM {name}")
                for row in snapshot["tables"].get(name, []):
                    self._upsert(name, row)
            self.db.execute("DELETE FROM changelog")
            self._set_meta("seq", snapshot["seq"])
            self._set_meta("epoch", snapshot["epoch"])
            self._next_history = (self.db.execute("SELECT MAX(id) FROM history").fetchone()[0] or 0) + 1
        return snapshot["epoch"], snapshot["seq"]

    # ---- reading ------------------------------------------------------------------------
    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, tuple(params))]

    def row(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def close(self) -> None:
        self.db.close()
