"""This machine's replica position, handed from the master service to the node service through a file.

Every heartbeat carries the machine's replica position (epoch, seq): the
arbiter elects the freshest replica. The node service used to learn it from
the master service's answer to a role push sent on every heartbeat, ten
datagrams a second each way, each waking a thread in both services, for a
value that changes only when the store commits. Now the store writes it
after every commit and the node service reads it when it beats: one small
write per commit, one read per heartbeat, nobody woken.

The record is 20 bytes at offset 0: epoch and seq (signed 64-bit, little
endian) and a CRC-32 of those 16 bytes. A read that met a write half done
fails the check and the reader keeps the value it read before (one beat
old at most). The file is in the master service's 0700 state directory,
written by that service only.

Pure I/O on one file: no sockets, no threads.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from taskorg.config import Config

RECORD = struct.Struct("<qqI")
_VALUES = struct.Struct("<qq")


def position_path(config: Config) -> Path:
    """Where a machine's master service keeps its replica position for its node service."""
    return config.state_path("master", "replica.position")


def pack(epoch: int, seq: int) -> bytes:
    values = _VALUES.pack(epoch, seq)
    return values + struct.pack("<I", zlib.crc32(values))


def unpack(data: bytes) -> tuple[int, int] | None:
    """The position in a record, or None when it is short or its CRC does not match (a torn read)."""
    if len(data) != RECORD.size:
        return None
    epoch, seq, crc = RECORD.unpack(data)
    if zlib.crc32(data[:_VALUES.size]) != crc or epoch < 0 or seq < 0:
        return None
    return epoch, seq


class PositionWriter:
    """The master service's side: the store calls `write` after every commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def write(self, epoch: int, seq: int) -> None:
        os.pwrite(self.fd, pack(epoch, seq), 0)

    def close(self) -> None:
        os.close(self.fd)


class PositionReader:
    """The node service's side: the position as last written, or None before the master service wrote one.

    The file is opened afresh on every read, so a master service that started over with a new state
    directory is followed, not a deleted file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: tuple[int, int] | None = None

    def read(self) -> tuple[int, int] | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return self.last
        try:
            found = unpack(os.pread(fd, RECORD.size, 0))
        except OSError:
            found = None
        finally:
            os.close(fd)
        if found is not None:
            self.last = found
        return self.last
