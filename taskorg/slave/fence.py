"""Epoch fencing: a slave obeys only the newest master it has heard of.

Every master command carries the master's epoch. The highest epoch seen is
kept on disk (written to a temp file, fsynced, renamed, directory fsynced), so
a restarted slave still refuses a cut-off old master that comes back. A raised
epoch means a new master: those who asked (`on_raise`, the reporter) hear of it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

from taskorg.logs import get_logger

log = get_logger("slave.fence")


class Fenced(Exception):
    """A command came from an older epoch than this slave has already seen."""

    def __init__(self, epoch: int, highest: int) -> None:
        super().__init__(f"fenced: command from epoch {epoch}, this slave has seen epoch {highest}")
        self.epoch = epoch
        self.highest = highest


class EpochFence:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._highest = self._load()
        self._listeners: list[Callable[[int], None]] = []

    def on_raise(self, listener: Callable[[int], None]) -> None:
        """Call `listener(epoch)` after each raise (on the raising thread, outside the fence's lock)."""
        self._listeners.append(listener)

    @property
    def highest(self) -> int:
        return self._highest

    def check(self, epoch: int) -> int:
        """Let `epoch` through or raise Fenced; a newer epoch raises the fence first.

        Returns the highest epoch seen (after the call).
        """
        epoch = _as_epoch(epoch)
        with self._lock:
            if epoch < self._highest:
                raise Fenced(epoch, self._highest)
            raised = epoch > self._highest
            if raised:
                self._store(epoch)
                log.info("epoch raised", extra={"epoch": epoch})
                self._highest = epoch
            highest = self._highest
        if raised:
            for listener in list(self._listeners):
                try:
                    listener(epoch)
                except Exception:  # a listener's failure must not refuse the command
                    log.exception("epoch listener failed")
        return highest

    def _load(self) -> int:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return 0
        try:
            return _as_epoch(int(text))
        except ValueError:
            # Never fall back to 0: that would let every old master back in.
            raise ValueError(f"{self.path}: not an epoch number: {text[:40]!r}; "
                             "fix or remove it by hand (removing lets older masters in)") from None

    def _store(self, epoch: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, f"{epoch}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _as_epoch(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"an epoch is a non-negative integer, got {value!r}")
    return value
