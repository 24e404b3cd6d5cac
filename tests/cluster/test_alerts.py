"""Alerts on a real local cluster: the active master POSTs them, signed, to a webhook this test serves
on loopback. A killed node's node-dead alert arrives within 3 s; a node whose state directory is a
small tmpfs that the test fills gets a disk-full alert, resolved once the space is freed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from taskorg.devtools.localcluster import LocalCluster
from taskorg.master.webhooks import SIGNATURE_HEADER
from tests.conftest import ClusterPool
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

WEBHOOK_SECRET = "alert-test-secret-0123456789abcdef"


class Receiver:
    """A webhook on 127.0.0.1: every POST kept with the time it arrived and whether its signature holds."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any], bool]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(self.headers.get(SIGNATURE_HEADER, ""), expected)
                receiver.got.append((time.monotonic(), json.loads(body), signed))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find(self, alert: str, subject: str, status: str = "firing") -> tuple[float, dict[str, Any], bool] | None:
        return next((g for g in self.got if g[1]["alert"] == alert and g[1]["subject"] == subject
                     and g[1]["status"] == status), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def alert_settings(receiver: Receiver, tmp_path: Path) -> dict[str, Any]:
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(WEBHOOK_SECRET)
    secret_file.chmod(0o600)
    return {"alert_webhooks": [receiver.url], "alert_webhook_secret_file": str(secret_file)}


def test_a_killed_node_is_alerted_within_three_seconds(cluster_factory: Callable[..., LocalCluster],
                                                        receiver: Receiver, tmp_path: Path) -> None:
    cluster = cluster_factory(3, settings=alert_settings(receiver, tmp_path))
    master = cluster.index_of(cluster.wait_master())
    wait_until(lambda: any(g[1]["alert"] == "master_changed" for g in receiver.got), 20, "the master's first alert")
    victim = next(i for i in (1, 2, 3) if i != master)
    name = cluster.node_name(victim)
    killed = time.monotonic()
    cluster.kill_node(victim)
    arrived, body, signed = wait_until(lambda: receiver.find("node_dead", name), 10, f"a node_dead alert for {name}")
    print(f"node_dead alert for {name} arrived {arrived - killed:.2f} s after the kill")
    assert arrived - killed <= 3.0, f"the alert took {arrived - killed:.2f} s"
    assert signed and body["node"] == name and body["cluster"] == cluster.name and name in body["message"]
    events = cluster.client().events(0, wait=0)
    assert any(e["kind"] == "alert" and e["node"] == name and "node_dead" in e["detail"] for e in events)
    cluster.start_node(victim)
    wait_until(lambda: receiver.find("node_dead", name, "resolved"), 30, f"{name}'s alert to resolve")
    assert sum(1 for g in receiver.got if g[1]["alert"] == "node_dead" and g[1]["status"] == "firing") == 1


def fill_all_but(filler: Path, room: int) -> None:
    """Fill the filesystem of `filler` until about `room` bytes are left, chunk by chunk: the services write
    to it meanwhile, so one write sized from an earlier `df` can meet a full disk (CI saw ENOSPC)."""
    with filler.open("wb", buffering=0) as out:  # unbuffered: a full disk fails the write, not the close
        while True:
            stat = os.statvfs(filler.parent)
            left = stat.f_bavail * stat.f_frsize - room
            if left <= 0:
                return
            try:
                out.write(b"\0" * min(left, 64 * 1024))
            except OSError:
                return  # full already: the alert is due all the same


def test_a_full_state_disk_is_alerted_and_resolved(cluster_pool: ClusterPool, receiver: Receiver,
                                                    tmp_path: Path) -> None:
    mounted: list[Path] = []

    def tmpfs_for_node3(workdir: Path) -> None:
        state_dir = workdir / "node3"
        state_dir.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(state_dir)], check=True)
        mounted.append(state_dir)

    cluster = None
    try:
        cluster = cluster_pool.make(3, settings=alert_settings(receiver, tmp_path), before_start=tmpfs_for_node3)
        name = cluster.node_name(3)
        filler = mounted[0] / "filler"
        fill_all_but(filler, 128 * 1024)  # over 90 % of 4 MiB
        _, body, signed = wait_until(lambda: receiver.find("disk_full", name), 20, f"a disk_full alert for {name}")
        assert signed and body["value"] >= 90 and body["node"] == name and str(mounted[0]) in body["message"]
        filler.unlink()
        wait_until(lambda: receiver.find("disk_full", name, "resolved"), 20, f"{name}'s disk alert to resolve")
    finally:
        if cluster is not None:
            cluster_pool.stop(cluster)
        for path in mounted:
            subprocess.run(["umount", str(path)], check=False)
