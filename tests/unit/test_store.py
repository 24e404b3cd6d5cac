"""Master state store: real SQLite files, a numbered change log, replicas that converge.

Proves, per docs/architecture.md "Master state and replication": a commit numbers its
changes consecutively; a replica on another file that applies the
`changes_since` entries ends with the same content and position; entries that
skip ahead raise GapError and change nothing; retried (overlapping) batches
are harmless; a snapshot loads back into an identical replica; a pruned log
answers None so the master sends a snapshot; the position is the (epoch, seq)
of the last change; closing and reopening the file keeps everything. It also
shows that a commit or snapshot load cut short (a crash) must not leave half
of itself behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import msgspec
import pytest

from taskorg.master import store as store_module
from taskorg.master.store import Change, Delete, GapError, Store
from taskorg.protocol import ChangeEntry, ReplicationBatch, decode, encode_entries


# ---- rows ------------------------------------------------------------------------------------
def job(job_id: str = "j-1") -> Change:
    return ("jobs", {"id": job_id, "name": "demo", "seed": 7, "source": "demo.yaml", "submitted_at": 1.5,
                     "request_id": f"req-{job_id}"})


def task(task_id: str, status: str = "pending", job_id: str = "j-1") -> Change:
    return ("tasks", {"id": task_id, "job": job_id, "name": task_id, "spec": json.dumps({"image": "busybox"}),
                      "desired": "running", "status": status, "reason": None, "result": None,
                      "created_at": 1.0, "updated_at": 2.0})


def instance(task_id: str, idx: int, status: str = "pending", node: str | None = None) -> Change:
    return ("instances", {"task_id": task_id, "idx": idx, "node": node, "status": status, "attempt": 1,
                          "restarts": 0, "exit_code": None, "container_id": None, "error": None,
                          "started_at": None, "finished_at": None, "not_before": None, "updated_at": 3.0})


def history(history_id: int, task_id: str = "t-1", event: str = "placed") -> Change:
    return ("history", {"id": history_id, "task_id": task_id, "idx": 0, "time": 4.0, "event": event,
                        "node": "node1", "detail": "attempt 1"})


def content(store: Store) -> dict[str, Any]:
    """Position and every table's rows, in a stable order (rowid order may differ)."""
    snap = store.snapshot()
    tables = {name: sorted(json.dumps(row, sort_keys=True) for row in rows) for name, rows in snap["tables"].items()}
    return {"position": (snap["epoch"], snap["seq"]), "tables": tables}


def replicate(source: Store, target: Store, limit: int = 2000) -> tuple[int, int]:
    """What the replicator does in steady state: stream log entries from the target's position."""
    while True:
        entries = source.changes_since(target.position()[1], limit=limit)
        assert entries is not None, "log pruned: a snapshot would be needed"
        if not entries:
            return target.position()
        target.apply_replicated(entries)


@pytest.fixture
def open_store(tmp_path: Path) -> Callable[[str], Store]:
    opened: list[Store] = []

    def make(name: str) -> Store:
        store = Store(tmp_path / name / "state.db")
        opened.append(store)
        return store

    yield make  # type: ignore[misc]
    for store in opened:
        try:
            store.close()
        except Exception:
            pass


@pytest.fixture
def master(open_store: Callable[[str], Store]) -> Store:
    return open_store("master")


@pytest.fixture
def replica(open_store: Callable[[str], Store]) -> Store:
    return open_store("replica")


def fill(store: Store) -> None:
    """Two epochs of realistic changes: a job, its tasks, instances moving, history."""
    store.commit([job(), task("t-1"), task("t-2"), instance("t-1", 0), instance("t-1", 1), instance("t-2", 0)],
                 epoch=1)
    store.commit([instance("t-1", 0, "starting", "node1"), history(store.history_id())], epoch=1)
    store.commit([instance("t-1", 0, "running", "node1"), task("t-1", "running"), history(store.history_id())],
                 epoch=2)
    store.commit([instance("t-2", 0, "failed", "node2"), task("t-2", "failed")], epoch=2)


# ---- commit ------------------------------------------------------------------------------------
def test_a_new_store_is_empty_at_position_zero(master: Store) -> None:
    assert master.position() == (0, 0)
    assert master.changes_since(0) == []
    assert master.snapshot() == {"epoch": 0, "seq": 0, "tables": {"jobs": [], "tasks": [], "instances": [],
                                                                    "history": [], "rollouts": []}}


def test_commit_numbers_changes_consecutively(master: Store) -> None:
    assert master.commit([job(), task("t-1"), instance("t-1", 0)], epoch=1) == 3
    assert master.commit([instance("t-1", 0, "starting", "node2")], epoch=1) == 4
    assert master.commit([task("t-2"), task("t-3")], epoch=1) == 6
    entries = master.changes_since(0)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert [e["table"] for e in entries] == ["jobs", "tasks", "instances", "instances", "tasks", "tasks"]
    assert entries[3]["row"] == instance("t-1", 0, "starting", "node2")[1]
    assert all(e["epoch"] == 1 for e in entries)
    assert master.position() == (1, 6)


def test_a_commit_upserts_whole_rows(master: Store) -> None:
    master.commit([instance("t-1", 0), instance("t-1", 1)], epoch=1)
    master.commit([instance("t-1", 0, "running", "node3")], epoch=1)
    rows = master.rows("SELECT idx, status, node FROM instances ORDER BY idx")
    assert rows == [{"idx": 0, "status": "running", "node": "node3"}, {"idx": 1, "status": "pending", "node": None}]
    assert master.row("SELECT * FROM instances WHERE idx = ?", (5,)) is None


def test_changes_since_starts_after_the_given_seq_and_honours_the_limit(master: Store) -> None:
    master.commit([task(f"t-{n}") for n in range(10)], epoch=1)
    assert [e["seq"] for e in master.changes_since(4, limit=3)] == [5, 6, 7]
    assert master.changes_since(10) == []


def test_the_position_follows_the_epoch_of_the_last_change(master: Store, replica: Store) -> None:
    master.commit([task("t-1"), task("t-2"), task("t-3")], epoch=1)
    assert master.position() == (1, 3)
    master.commit([task("t-1", "running"), task("t-2", "running")], epoch=2)
    assert master.position() == (2, 5)
    assert [(e["epoch"], e["seq"]) for e in master.changes_since(0)] == [(1, 1), (1, 2), (1, 3), (2, 4), (2, 5)]
    # A replica part-way through is at the epoch of what it applied last.
    assert replica.apply_replicated(master.changes_since(0, limit=3)) == (1, 3)
    assert replica.apply_replicated(master.changes_since(3)) == (2, 5)
    assert replica.position() == (2, 5)


def test_history_ids_are_handed_out_in_order(master: Store) -> None:
    first = master.history_id()
    assert master.history_id() == first + 1
    master.commit([history(first), history(first + 1)], epoch=1)
    master.commit([history(40)], epoch=1)  # e.g. replicated from a master further on
    assert master.history_id() == 41


# ---- replication ---------------------------------------------------------------------------------
def test_a_replica_that_applies_the_log_ends_identical(master: Store, replica: Store) -> None:
    fill(master)
    assert replicate(master, replica, limit=3) == master.position() == (2, 13)
    assert content(replica) == content(master)
    assert replica.snapshot()["tables"]["instances"] == master.snapshot()["tables"]["instances"]
    # Its own log holds the same entries, so it can serve other standbys once it is master.
    assert replica.changes_since(0) == master.changes_since(0)


def test_a_replica_keeps_up_batch_by_batch(master: Store, replica: Store) -> None:
    for n in range(5):
        master.commit([task(f"t-{n}"), instance(f"t-{n}", 0)], epoch=1 + n // 3)
        replicate(master, replica)
        assert content(replica) == content(master)


def test_entries_that_skip_ahead_raise_gap_error_and_change_nothing(master: Store, replica: Store) -> None:
    fill(master)
    replica.apply_replicated(master.changes_since(0, limit=4))
    before = content(replica)
    with pytest.raises(GapError, match="expected change 5, got 7"):
        replica.apply_replicated(master.changes_since(6))
    assert content(replica) == before
    replicate(master, replica)  # the right entries still apply afterwards
    assert content(replica) == content(master)


def test_a_gap_on_an_empty_replica(master: Store, replica: Store) -> None:
    fill(master)
    with pytest.raises(GapError, match="expected change 1, got 3"):
        replica.apply_replicated(master.changes_since(2))
    assert replica.position() == (0, 0)


def test_a_retried_batch_changes_nothing(master: Store, replica: Store) -> None:
    fill(master)
    batch = master.changes_since(0, limit=6)
    assert replica.apply_replicated(batch) == (1, 6)
    after_once = content(replica)
    assert replica.apply_replicated(batch) == (1, 6)  # the ack was lost; the master sends it again
    assert content(replica) == after_once
    # An overlapping batch applies only its new part.
    assert replica.apply_replicated(master.changes_since(3)) == (2, 13)
    assert replica.apply_replicated(master.changes_since(0)) == (2, 13)
    assert content(replica) == content(master)


def test_an_empty_batch_keeps_the_position(master: Store, replica: Store) -> None:
    fill(master)
    replicate(master, replica)
    assert replica.apply_replicated([]) == (2, 13)


# ---- snapshots ---------------------------------------------------------------------------------------
def test_snapshot_and_load_snapshot_round_trip(master: Store, replica: Store) -> None:
    fill(master)
    snap = master.snapshot()
    assert (snap["epoch"], snap["seq"]) == (2, 13)
    assert replica.load_snapshot(json.loads(json.dumps(snap))) == (2, 13)  # as sent over HTTP
    assert content(replica) == content(master)
    assert replica.snapshot() == master.snapshot()


def test_a_snapshot_replaces_whatever_the_replica_had(master: Store, replica: Store) -> None:
    replica.commit([task("t-stale"), instance("t-stale", 0), history(99)], epoch=1)  # a diverged old master
    fill(master)
    replica.load_snapshot(master.snapshot())
    assert content(replica) == content(master)
    assert replica.row("SELECT * FROM tasks WHERE id = 't-stale'") is None
    assert replica.history_id() == 3  # counts on from the snapshot's history, not the stale rows


def test_after_a_snapshot_the_replica_streams_on(master: Store, replica: Store) -> None:
    fill(master)
    replica.load_snapshot(master.snapshot())
    master.commit([task("t-9"), instance("t-9", 0)], epoch=3)
    assert replicate(master, replica) == (3, 15)
    assert content(replica) == content(master)


def test_a_store_loaded_from_a_snapshot_has_no_log_before_it(master: Store, replica: Store) -> None:
    fill(master)
    replica.load_snapshot(master.snapshot())
    assert replica.changes_since(5) is None  # cannot serve from before the snapshot
    assert replica.changes_since(13) == []


def test_changes_since_is_none_once_the_log_was_pruned(master: Store, replica: Store,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "KEEP_CHANGES", 300)
    for store in (master, replica):  # speed only: a thousand tiny autocommits each
        store.db.execute("PRAGMA synchronous=OFF")
    master.commit([history(n) for n in range(1, 1001)], epoch=1)  # seq 1000: the log is pruned
    assert master.changes_since(0) is None
    assert master.changes_since(699) is None
    assert [e["seq"] for e in master.changes_since(700, limit=2)] == [701, 702]
    # A replica that fell behind gets a snapshot and then streams again.
    replica.load_snapshot(master.snapshot())
    master.commit([history(1001)], epoch=1)
    assert replicate(master, replica) == (1, 1001)
    assert content(replica) == content(master)


# ---- durability ----------------------------------------------------------------------------------------
def test_reopening_the_file_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "master" / "state.db"
    store = Store(path)
    fill(store)
    store.raise_fence(5)
    before, log = content(store), store.changes_since(0)
    next_history = store.history_id()
    store.close()

    reopened = Store(path)
    assert content(reopened) == before
    assert reopened.position() == (2, 13)
    assert reopened.changes_since(0) == log
    assert reopened.fence_epoch() == 5
    assert reopened.history_id() == next_history  # the highest stored history id + 1
    assert reopened.commit([task("t-3")], epoch=2) == 14  # the numbering carries on
    reopened.close()


def test_a_reopened_replica_resumes_where_it_stopped(tmp_path: Path, master: Store) -> None:
    fill(master)
    path = tmp_path / "replica" / "state.db"
    replica = Store(path)
    replica.apply_replicated(master.changes_since(0, limit=5))
    replica.close()
    replica = Store(path)
    assert replica.position() == (1, 5)
    replicate(master, replica)
    assert content(replica) == content(master)
    replica.close()


def test_the_fence_epoch_is_the_highest_seen(master: Store) -> None:
    assert master.fence_epoch() == 0
    master.raise_fence(3)
    master.raise_fence(2)  # never lowered
    assert master.fence_epoch() == 3
    master.commit([task("t-1")], epoch=4)
    assert master.fence_epoch() == 4  # a change from epoch 4 counts as an order from it


# ---- atomicity: a crash in the middle must leave nothing half-done ------------------------------------------
class Crash(Exception):
    """Stands in for a power loss in the middle of a write."""


def crash_after(store: Store, upserts: int) -> None:
    """Make the store fail after `upserts` more row writes."""
    real = store._upsert
    count = {"n": 0}

    def upsert(table: str, row: dict[str, Any], **where: Any) -> None:
        if count["n"] >= upserts:
            raise Crash()
        count["n"] += 1
        real(table, row, **where)

    store._upsert = upsert  # type: ignore[method-assign]


def test_a_commit_cut_short_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = Store(path)
    store.commit([task("t-1")], epoch=1)
    before = content(store)
    crash_after(store, 2)
    with pytest.raises(Crash):
        store.commit([task("t-2"), instance("t-2", 0), history(1)], epoch=1)
    store.close()

    restarted = Store(path)
    assert content(restarted) == before
    assert restarted.changes_since(1) == []
    assert restarted.commit([task("t-3")], epoch=1) == 2  # today: sqlite3.IntegrityError
    restarted.close()


def test_a_snapshot_load_cut_short_keeps_the_old_replica(tmp_path: Path, master: Store) -> None:
    fill(master)
    path = tmp_path / "replica.db"
    replica = Store(path)
    replicate(master, replica)
    before = content(replica)
    master.commit([task("t-9")], epoch=3)
    crash_after(replica, 4)  # jobs and tasks rewritten, instances deleted, then the power goes
    with pytest.raises(Crash):
        replica.load_snapshot(master.snapshot())
    replica.close()

    restarted = Store(path)
    assert content(restarted) == before  # today: its instances are gone, its position still (2, 13)
    restarted.close()


# ---- snapshot parts and deletes (issue 14) ---------------------------------------------------------------
def test_a_snapshot_in_parts_loads_only_with_its_last_part(master: Store, replica: Store) -> None:
    fill(master)
    parts = list(master.snapshot_parts(max_bytes=200))
    assert len(parts) > 3 and [p["last"] for p in parts].count(True) == 1
    replica.commit([task("t-stale")], epoch=1)
    before = content(replica)
    for part in parts[:-1]:
        replica.load_snapshot(part)
        assert content(replica) == before  # gathered aside, the state untouched until the last part
    assert replica.load_snapshot(parts[-1]) == (2, 13)
    assert content(replica) == content(master)


def test_a_snapshot_part_out_of_order_is_a_gap(master: Store, replica: Store) -> None:
    fill(master)
    parts = list(master.snapshot_parts(max_bytes=200))
    replica.load_snapshot(parts[0])
    with pytest.raises(GapError):
        replica.load_snapshot(parts[2])
    for part in parts:  # the master starts over from part 0
        replica.load_snapshot(part)
    assert content(replica) == content(master)


def test_a_deleted_job_takes_its_rows_along_on_every_replica(master: Store, replica: Store) -> None:
    fill(master)
    master.commit([job("j-2"), task("t-other", job_id="j-2")], epoch=2)
    master.commit([store_module.Delete("jobs", {"id": "j-1"})], epoch=2)
    assert master.rows("SELECT id FROM tasks") == [{"id": "t-other"}]
    assert master.rows("SELECT * FROM instances") == [] and master.rows("SELECT * FROM history") == []
    assert master.changes_since(master.position()[1] - 1)[0]["op"] == "delete"
    replicate(master, replica)
    assert content(replica) == content(master)


def test_a_batch_built_from_the_logged_text_is_the_typed_batch(master: Store, replica: Store) -> None:
    """The active master sends the change log's stored row text as it is (protocol.encode_entries): a
    standby decodes exactly the batch that decoding and re-encoding every row gave, deletes and
    text that needs escaping included, and a replica that applies it ends identical."""
    fill(master)
    master.commit([task("t-3", 'quote " backslash \\ tab \t ünïcode ✓'), Delete("instances", {"task_id": "t-2", "idx": 0})],
                  epoch=3)
    rows = master.logged_since(0)
    assert rows is not None
    spliced = decode(encode_entries(3, rows), ReplicationBatch)
    assert spliced == ReplicationBatch(epoch=3, entries=[ChangeEntry(**e) for e in master.changes_since(0) or []])
    assert spliced.entries[-1].op == "delete"
    replica.apply_replicated([msgspec.structs.asdict(e) for e in spliced.entries], fence=3)
    assert content(replica) == content(master)
    assert master.logged_since(0, limit=2) == rows[:2]
    assert master.logged_since(len(rows)) == []


def test_the_log_keeps_a_row_as_the_wire_would_carry_it(master: Store) -> None:
    """A float that is not a number is null in the log, as it was on the wire when the sender decoded
    and encoded rows (json.dumps would have written NaN, which a standby's typed decoding refuses)."""
    master.commit([("history", {"id": 1, "task_id": "t-1", "idx": None, "event": "placed", "node": None,
                                "detail": "ünïcode ✓", "time": float("nan")})], epoch=1)
    rows = master.logged_since(0)
    assert rows is not None and json.loads(rows[0][3])["time"] is None
    entry = decode(encode_entries(1, rows), ReplicationBatch).entries[0]
    assert entry.row["time"] is None and entry.row["detail"] == "ünïcode ✓"
