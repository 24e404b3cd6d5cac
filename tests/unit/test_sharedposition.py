"""The replica position handed from the master service's store to the node service through a file
(taskorg/net/sharedposition.py), on a real file: what the store commits is what the node reads, a torn
or foreign record is never taken, and a state directory started over is followed."""

from __future__ import annotations

import os
from pathlib import Path

from taskorg.master.store import Store
from taskorg.net.sharedposition import PositionReader, PositionWriter, pack, unpack


def test_the_store_tells_every_commit_and_the_reader_sees_it(tmp_path: Path) -> None:
    where = tmp_path / "replica.position"
    store = Store(tmp_path / "state.db", PositionWriter(where))
    reader = PositionReader(where)
    assert reader.read() == (0, 0)  # written when the store opened
    seq = store.commit([("jobs", {"id": "j1", "name": "a", "seed": 1, "source": "t", "submitted_at": 1.0,
                                  "request_id": None})], epoch=3)
    assert store.position() == (3, seq)
    assert reader.read() == (3, seq)
    assert oct(os.stat(where).st_mode & 0o777) == "0o600"


def test_a_torn_or_short_record_keeps_the_last_good_position(tmp_path: Path) -> None:
    where = tmp_path / "replica.position"
    writer = PositionWriter(where)
    reader = PositionReader(where)
    writer.write(2, 40)
    assert reader.read() == (2, 40)
    torn = bytearray(pack(2, 41))
    torn[0:8] = pack(5, 99)[0:8]  # the epoch of a newer record, the rest of an older one
    os.pwrite(writer.fd, bytes(torn), 0)
    assert reader.read() == (2, 40)
    assert unpack(b"short") is None
    assert unpack(pack(-1, 5)) is None


def test_a_state_directory_started_over_is_followed(tmp_path: Path) -> None:
    where = tmp_path / "replica.position"
    PositionWriter(where).write(7, 700)
    reader = PositionReader(where)
    assert reader.read() == (7, 700)
    where.unlink()
    assert reader.read() == (7, 700)  # gone for a moment: the last one read
    PositionWriter(where).write(1, 1)
    assert reader.read() == (1, 1)
    assert PositionReader(tmp_path / "never-written").read() is None
