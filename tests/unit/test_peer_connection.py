"""The replication stream's kept connection (taskorg.net.peer) against a real HTTP server on loopback:
answers, errors in the services' own words, an unreachable peer, and a connection the peer closed
while idle (the next call opens another instead of failing)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from taskorg.net.client import ServiceError, ServiceUnavailable
from taskorg.net.peer import PeerConnection


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 0.3  # an idle kept connection is closed by the server after this
    connections: set[tuple[str, int]] = set()

    def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
        Handler.connections.add(self.client_address)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.headers.get("Authorization") != "Bearer s3cret":
            self._answer(401, b'{"error": "who are you"}')
        elif self.path == "/v1/replica":
            self._answer(200, b'{"epoch": 2, "seq": 7}')
        elif self.path == "/v1/text":
            self._answer(200, b"plain words", "text/plain")
        else:
            self._answer(404, b"not json at all", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/replica/apply":
            self._answer(409, json.dumps({"error": "fenced", "gap": True, "got": len(body)}).encode())
        else:
            self._answer(204, b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    Handler.connections = set()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_answers_come_back_as_json_text_or_nothing(server: str) -> None:
    peer = PeerConnection(server, "s3cret")
    assert peer.get("/v1/replica") == {"epoch": 2, "seq": 7}
    assert peer.get("/v1/text") == "plain words"
    assert peer.post("/v1/other", b"{}") is None
    assert len(Handler.connections) == 1  # one kept connection for all three
    peer.close()


def test_an_error_status_raises_the_services_own_words_and_payload(server: str) -> None:
    peer = PeerConnection(server, "s3cret")
    with pytest.raises(ServiceError) as refused:
        peer.post("/v1/replica/apply", b"12345", headers={"Content-Type": "application/json"})
    assert (refused.value.status, refused.value.message) == (409, "fenced")
    assert refused.value.payload == {"error": "fenced", "gap": True, "got": 5}
    with pytest.raises(ServiceError) as missing:
        peer.get("/v1/nowhere")
    assert (missing.value.status, missing.value.message) == (404, "not json at all")
    with pytest.raises(ServiceError, match="who are you"):
        PeerConnection(server, "wrong").get("/v1/replica")


def test_an_unreachable_peer_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens once it is closed
    with pytest.raises(ServiceUnavailable, match=f"127.0.0.1:{port}"):
        PeerConnection(f"http://127.0.0.1:{port}", "s3cret", timeout=1).get("/v1/replica")


def test_a_connection_the_peer_closed_while_idle_is_replaced_not_failed(server: str) -> None:
    peer = PeerConnection(server, "s3cret")
    assert peer.get("/v1/replica")["seq"] == 7
    time.sleep(Handler.timeout * 3)  # the server has closed the kept connection meanwhile
    assert peer.get("/v1/replica")["seq"] == 7
    assert len(Handler.connections) == 2
    peer.close()
