"""The node's registration answer is kept as a small file written whole (issue 15, durable decisions):
temp file, fsync, rename, mode 0600, so a power loss just after registering leaves the old identity or
the new one, never an empty `node.json` for the slave to read."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from taskorg.security import files
from serviceapps import SECRET, loopback_config


def test_the_identity_file_is_written_whole_fsynced_and_private(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from taskorg.node.service import NodeService

    service = NodeService(loopback_config(tmp_path), SECRET)
    answer = {"node": "node3", "number": 3, "fqdn": "node3.taskorg.internal", "epoch": 1, "master": "node1"}
    monkeypatch.setattr(service, "_dns_post", lambda path, body: answer)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: Any) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    service.register(wait=False)
    path = service.config.state_path("node.json")
    assert json.loads(path.read_text())["node"] == "node3"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(synced) == 2  # the file, then its directory (the rename)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".node.json")] == []
