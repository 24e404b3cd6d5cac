"""Master state in SQLite (WAL), changed only through a numbered change log.

Every change is a whole-row upsert or a delete by key (a job's takes its
tasks, instances and history along), so applying it is deterministic and
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
from typing import Any, Iterable, Iterator, NamedTuple, Union

import msgspec

from taskorg.logs import get_logger
from taskorg.net.sharedposition import PositionWriter

log = get_logger("master.store")

TABLES: dict[str, tuple[str, ...]] = {
    "jobs": ("id", "name", "seed", "source", "submitted_at", "request_id"),
    "tasks": ("id", "job", "name", "spec", "desired", "status", "reason", "result", "created_at", "updated_at",
              "revision"),
    "instances": ("task_id", "idx", "node", "status", "attempt", "restarts", "exit_code", "container_id",
                  "error", "started_at", "finished_at", "not_before", "updated_at", "result", "health", "revision"),
    "history": ("id", "task_id", "idx", "time", "event", "node", "detail"),
    # A task's rolling update (or rollback) and its progress: one row per task ever updated (issue 16).
    "rollouts": ("task_id", "job", "state", "revision", "previous", "previous_spec", "batch", "failures",
                 "started_at", "updated_at", "next_at", "detail"),
}
KEYS = {"jobs": "id", "tasks": "id", "instances": "task_id, idx", "history": "id", "rollouts": "task_id"}
KEY_COLUMNS = {table: tuple(c.strip() for c in keys.split(",")) for table, keys in KEYS.items()}
# What each column holds: a replicated row is checked against this before anything is written.
INTEGER_COLUMNS = {"seed", "idx", "attempt", "restarts", "exit_code", "history.id", "revision", "previous", "batch",
                   "failures"}
REAL_COLUMNS = {"submitted_at", "created_at", "updated_at", "started_at", "finished_at", "not_before", "time",
                "next_at"}
MAX_INTEGER = 2 ** 63 - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, name TEXT, seed INTEGER, source TEXT, submitted_at REAL,
    request_id TEXT);
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, job TEXT, name TEXT, spec TEXT, desired TEXT,
    status TEXT, reason TEXT, result TEXT, created_at REAL, updated_at REAL, revision INTEGER);
CREATE INDEX IF NOT EXISTS tasks_by_job ON tasks(job);
CREATE TABLE IF NOT EXISTS instances (task_id TEXT, idx INTEGER, node TEXT, status TEXT, attempt INTEGER,
    restarts INTEGER, exit_code INTEGER, container_id TEXT, error TEXT, started_at REAL, finished_at REAL,
    not_before REAL, updated_at REAL, result TEXT, health TEXT, revision INTEGER, PRIMARY KEY (task_id, idx));
CREATE INDEX IF NOT EXISTS instances_by_status ON instances(status);
CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY, task_id TEXT, idx INTEGER, time REAL,
    event TEXT, node TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS history_by_task ON history(task_id);
CREATE TABLE IF NOT EXISTS rollouts (task_id TEXT PRIMARY KEY, job TEXT, state TEXT, revision INTEGER,
    previous INTEGER, previous_spec TEXT, batch INTEGER, failures INTEGER, started_at REAL, updated_at REAL,
    next_at REAL, detail TEXT);
CREATE INDEX IF NOT EXISTS rollouts_by_state ON rollouts(state);
CREATE TABLE IF NOT EXISTS changelog (seq INTEGER PRIMARY KEY, epoch INTEGER, tbl TEXT, row TEXT,
    op TEXT NOT NULL DEFAULT 'put');
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""

KEEP_CHANGES = 20000
# Replication batches and snapshot parts stop growing past this many bytes of rows (at least one row
# each): a request body is capped at 16 MiB, and the whole state once grew past that (issue 14).
CHUNK_BYTES = 1024 * 1024


class Delete(NamedTuple):
    """A change that removes a row by its key; deleting a job removes its tasks, instances and history."""

    table: str
    row: dict[str, Any]  # the key columns


Change = Union[tuple[str, dict[str, Any]], Delete]  # (table, full row) to upsert, or a Delete


class GapError(Exception):
    """Replicated entries do not follow this replica's position."""


class BadChange(ValueError):
    """A replicated change or snapshot this replica refuses before writing anything; the text says why."""


def check_row(table: str, row: Any, keys_only: bool = False) -> None:
    """A row as the change log or a snapshot carries it: a known table, its own columns, each of its type."""
    if table not in TABLES:
        raise BadChange(f"unknown table {table!r}")
    if not isinstance(row, dict):
        raise BadChange(f"{table}: a row must be an object")
    columns = KEY_COLUMNS[table] if keys_only else TABLES[table]
    unknown = sorted(set(row) - set(columns))
    if unknown:
        raise BadChange(f"{table}: unknown column {unknown[0]!r}")
    for column in KEY_COLUMNS[table]:
        if row.get(column) is None:
            raise BadChange(f"{table}: key column {column!r} is missing")
    for column, value in row.items():
        if value is None:
            continue
        if column in INTEGER_COLUMNS or f"{table}.{column}" in INTEGER_COLUMNS:
            ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INTEGER
            kind = "a whole number"
        elif column in REAL_COLUMNS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= MAX_INTEGER
            kind = "a number"
        else:
            ok = isinstance(value, str)
            kind = "text"
        if not ok:
            raise BadChange(f"{table}: column {column!r} must be {kind}, got {value!r:.60}")


def check_entries(entries: list[dict[str, Any]], epoch: int) -> None:
    """Replicated log entries, all of them, before any is applied: consecutive, no epoch past `epoch`."""
    previous: int | None = None
    for entry in entries:
        seq = entry["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq <= MAX_INTEGER:
            raise BadChange(f"change seq must be a positive whole number, got {seq!r:.60}")
        if previous is not None and seq != previous + 1:
            raise BadChange(f"changes must be consecutive: {seq} follows {previous}")
        if not isinstance(entry["epoch"], int) or not 0 <= entry["epoch"] <= epoch:
            raise BadChange(f"change {seq}: epoch {entry['epoch']!r:.60} is not within the batch's epoch {epoch}")
        if entry.get("op", "put") not in ("put", "delete"):
            raise BadChange(f"change {seq}: op must be put or delete, got {entry.get('op')!r:.60}")
        check_row(entry["table"], entry["row"], keys_only=entry.get("op") == "delete")
        previous = seq


def _size(row: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, str) else 8 for v in row.values()) + 16 * len(row)


def log_text(row: dict[str, Any]) -> str:
    """A change's row as the change log keeps it: the JSON the replication stream sends as it is
    (protocol.encode_entries), so it is written the way the typed messages are (msgspec: a float that
    is not a number becomes null, as it did on the wire when rows were decoded and encoded again)."""
    return msgspec.json.encode(row).decode()


class Store:
    def __init__(self, path: Path, position_writer: PositionWriter | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Told the position after every commit: the node service's heartbeats carry it (net.sharedposition).
        self.position_writer = position_writer
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._migrate()
        self._next_history = (self.db.execute("SELECT MAX(id) FROM history").fetchone()[0] or 0) + 1
        self._position = (self._meta("epoch"), self._meta("seq"))
        self._tell_position()

    def _migrate(self) -> None:
        """Bring a state file from an older version up to this schema."""
        for table, column, kind in (("jobs", "request_id", "TEXT"), ("instances", "result", "TEXT"),
                                    ("instances", "health", "TEXT"), ("tasks", "revision", "INTEGER"),
                                    ("instances", "revision", "INTEGER"),
                                    ("changelog", "op", "TEXT NOT NULL DEFAULT 'put'")):
            columns = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_request ON jobs(request_id)")
        self.db.execute("CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks(status, updated_at)")
        self.db.execute("CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs(submitted_at)")
        self.db.execute("CREATE INDEX IF NOT EXISTS jobs_by_name ON jobs(name, submitted_at)")

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
        position = (self._meta("epoch"), self._meta("seq"))
        if position != self._position:
            self._position = position
            self._tell_position()

    def _tell_position(self) -> None:
        if self.position_writer is not None:
            try:
                self.position_writer.write(*self._position)
            except OSError as exc:  # the node service then reports the position it read last
                log.warning("replica position not written for the node service", extra={"error": str(exc)})

    # ---- position -----------------------------------------------------------------
    def _meta(self, key: str, default: int = 0) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def position(self) -> tuple[int, int]:
        """(epoch, seq) of the last change held: kept from the last commit, not read on every call (the
        tick, the API and replication ask many times a second)."""
        return self._position

    def fence_epoch(self) -> int:
        """The highest master epoch this store has taken orders from."""
        with self.lock:
            return max(self._meta("fence"), self._meta("epoch"))

    def raise_fence(self, epoch: int) -> None:
        with self.lock, self._transaction():
            self._raise_fence(epoch)

    def _raise_fence(self, epoch: int) -> None:
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
            for change in changes:
                seq += 1
                op = self._apply(change)
                self.db.execute("INSERT INTO changelog VALUES (?,?,?,?,?)",
                                (seq, epoch, change[0], log_text(change[1]), op))
            self._set_meta("seq", seq)
            self._set_meta("epoch", epoch)
            if seq % 1000 == 0:
                self.db.execute("DELETE FROM changelog WHERE seq <= ?", (seq - KEEP_CHANGES,))
            return seq

    def _apply(self, change: Change) -> str:
        """Write one change; its op as the log records it."""
        if isinstance(change, Delete):
            self._delete(change.table, change.row)
            return "delete"
        self._upsert(*change)
        return "put"

    def _upsert(self, table: str, row: dict[str, Any], into: str | None = None) -> None:
        columns = TABLES[table]
        values = [row.get(c) for c in columns]
        self.db.execute(f"INSERT OR REPLACE INTO {into or table} ({', '.join(columns)}) VALUES "
                        f"({', '.join('?' * len(columns))})", values)
        if table == "history" and row["id"] >= self._next_history:
            self._next_history = row["id"] + 1

    def _delete(self, table: str, key: dict[str, Any]) -> None:
        """Remove a row; a job goes with its tasks, their instances and their history."""
        if table == "jobs":
            tasks = "(SELECT id FROM tasks WHERE job = ?)"
            self.db.execute(f"DELETE FROM history WHERE task_id IN {tasks}", (key["id"],))
            self.db.execute("DELETE FROM rollouts WHERE job = ?", (key["id"],))
            self.db.execute(f"DELETE FROM instances WHERE task_id IN {tasks}", (key["id"],))
            self.db.execute("DELETE FROM tasks WHERE job = ?", (key["id"],))
        columns = KEY_COLUMNS[table]
        self.db.execute(f"DELETE FROM {table} WHERE " + " AND ".join(f"{c} = ?" for c in columns),
                        [key[c] for c in columns])

    # ---- replication --------------------------------------------------------------------
    def changes_since(self, seq: int, limit: int = 2000, max_bytes: int | None = None) -> list[dict[str, Any]] | None:
        """Log entries after `seq` (at most `limit`, and past the first at most `max_bytes` of rows);
        None when they were pruned (send a snapshot)."""
        rows = self.logged_since(seq, limit, max_bytes)
        if rows is None:
            return None
        return [{"seq": r[0], "epoch": r[1], "table": r[2], "row": json.loads(r[3]), "op": r[4]} for r in rows]

    def logged_since(self, seq: int, limit: int = 2000,
                     max_bytes: int | None = None) -> list[tuple[int, int, str, str, str]] | None:
        """What `changes_since` returns, as the log stores it: (seq, epoch, table, row's JSON text, op)."""
        max_bytes = CHUNK_BYTES if max_bytes is None else max_bytes
        with self.lock:
            cursor = self.db.cursor()
            cursor.row_factory = None  # plain tuples: these rows go out as they are, never by column name
            cursor.execute("SELECT seq, epoch, tbl, row, op FROM changelog WHERE seq > ? ORDER BY seq LIMIT ?",
                           (seq, limit))
            rows, size = [], 0
            for r in cursor:
                if rows and size + len(r[3]) > max_bytes:
                    break
                rows.append(r)
                size += len(r[3])
            cursor.close()
            if rows and rows[0][0] != seq + 1:
                return None
            if not rows and seq < self._meta("seq"):
                return None
        return rows

    def apply_replicated(self, entries: list[dict[str, Any]], fence: int = 0) -> tuple[int, int]:
        """Apply a master's log entries (all checked first), raising the fence to `fence` in the same
        transaction: a refused batch leaves no trace, an applied one cannot leave the fence behind."""
        check_entries(entries, max(fence, max((e["epoch"] for e in entries), default=0)))
        with self.lock, self._transaction():
            self._raise_fence(fence)
            seq, epoch = self._meta("seq"), self._meta("epoch")
            for entry in entries:
                if entry["seq"] <= seq:
                    continue  # already applied (a retried batch)
                if entry["seq"] != seq + 1:
                    raise GapError(f"expected change {seq + 1}, got {entry['seq']}")
                op = entry.get("op", "put")
                table, row = entry["table"], entry["row"]
                change: Change = Delete(table, row) if op == "delete" else (table, row)
                self._apply(change)
                self.db.execute("INSERT OR REPLACE INTO changelog VALUES (?,?,?,?,?)",
                                (entry["seq"], entry["epoch"], entry["table"], log_text(entry["row"]), op))
                seq, epoch = entry["seq"], entry["epoch"]
            self._set_meta("seq", seq)
            self._set_meta("epoch", epoch)
            return epoch, seq

    def snapshot(self) -> dict[str, Any]:
        """The whole state in one piece (debugging and tests; replication sends `snapshot_parts`)."""
        with self.lock:
            epoch, seq = self._meta("epoch"), self._meta("seq")
            tables = {name: [dict(r) for r in self.db.execute(f"SELECT * FROM {name}")] for name in TABLES}
        return {"epoch": epoch, "seq": seq, "tables": tables}

    def snapshot_parts(self, max_bytes: int | None = None) -> Iterator[dict[str, Any]]:
        """The whole state as parts of about `max_bytes` of rows each, all read in one read transaction of
        a connection of their own: one consistent state, while commits go on (WAL)."""
        max_bytes = CHUNK_BYTES if max_bytes is None else max_bytes
        reader = sqlite3.connect(self.path, isolation_level=None)
        reader.row_factory = sqlite3.Row
        try:
            reader.execute("BEGIN")
            meta = dict(reader.execute("SELECT key, value FROM meta WHERE key IN ('epoch', 'seq')").fetchall())
            epoch, seq = int(meta.get("epoch", 0)), int(meta.get("seq", 0))
            part, tables, size = 0, {name: [] for name in TABLES}, 0
            for name in TABLES:
                for r in reader.execute(f"SELECT {', '.join(TABLES[name])} FROM {name}"):
                    row = dict(r)
                    tables[name].append(row)
                    size += _size(row)
                    if size >= max_bytes:
                        yield {"epoch": epoch, "seq": seq, "tables": tables, "part": part, "last": False}
                        part, tables, size = part + 1, {n: [] for n in TABLES}, 0
            yield {"epoch": epoch, "seq": seq, "tables": tables, "part": part, "last": True}
        finally:
            reader.close()

    def load_snapshot(self, snapshot: dict[str, Any], fence: int = 0) -> tuple[int, int]:
        """Load a whole snapshot, or one part of it (`part`, `last`): parts gather in staging tables and
        replace the state in one transaction with the last. A snapshot older than this replica, or one
        that claims changes but holds no row, is refused (BadChange) before anything is written."""
        part, last = snapshot.get("part", 0), snapshot.get("last", True)
        position = (snapshot["epoch"], snapshot["seq"])
        for name, rows in snapshot["tables"].items():
            for row in rows:
                check_row(name, row)
        with self.lock:
            if position < self.position():
                raise BadChange(f"a snapshot at {position} is older than this replica's {self.position()}")
            if part == 0:
                self._drop_staging()
                for name in TABLES:
                    self.db.execute(f"CREATE TABLE staged_{name} AS SELECT * FROM {name} WHERE 0")
                self._set_meta("staged_part", -1)
            elif self._meta("staged_part", -2) != part - 1 or self._staged_position() != position:
                raise GapError(f"snapshot part {part} of {position} does not follow what this replica holds")
            with self._transaction():
                for name, rows in snapshot["tables"].items():
                    for row in rows:
                        self._upsert(name, row, into=f"staged_{name}")
                self._set_meta("staged_part", part)
                self._set_meta("staged_epoch", position[0])
                self._set_meta("staged_seq", position[1])
            if last:
                self._swap_in_staged(position, fence)
                self._drop_staging()
            return self.position() if last else position

    def _staged_position(self) -> tuple[int, int]:
        return self._meta("staged_epoch", -1), self._meta("staged_seq", -1)

    def _swap_in_staged(self, position: tuple[int, int], fence: int) -> None:
        with self._transaction():
            staged = sum(self.db.execute(f"SELECT COUNT(*) FROM staged_{name}").fetchone()[0] for name in TABLES)
            if staged == 0 and position[1] > 0:
                raise BadChange(f"an empty snapshot cannot stand for {position[1]} changes")
            for name in TABLES:
                self.db.execute(f"DELETE FROM {name}")
                self.db.execute(f"INSERT INTO {name} SELECT * FROM staged_{name}")
            self.db.execute("DELETE FROM changelog")
            self._set_meta("seq", position[1])
            self._set_meta("epoch", position[0])
            self._raise_fence(fence)
            self._next_history = (self.db.execute("SELECT MAX(id) FROM history").fetchone()[0] or 0) + 1

    def _drop_staging(self) -> None:
        for name in TABLES:
            self.db.execute(f"DROP TABLE IF EXISTS staged_{name}")
        self.db.execute("DELETE FROM meta WHERE key LIKE 'staged_%'")

    # ---- reading ------------------------------------------------------------------------
    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, tuple(params))]

    def row(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def close(self) -> None:
        self.db.close()
