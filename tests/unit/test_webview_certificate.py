"""The webview's HTTPS with a certificate the operator supplies (issue 15): a browser that trusts only
the lab's own CA completes the handshake on a real TLS listener; the two settings go together, need
TLS on, and a bad file stops the start naming it."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
import trustme

from taskorg.config import ConfigError, load_config
from taskorg.net.httpd import make_server, run_servers
from taskorg.webview.serve import operator_material


def write_pair(folder: Path, authority: trustme.CA, name: str) -> tuple[Path, Path]:
    issued = authority.issue_cert("127.0.0.1", name)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


def test_the_webview_serves_the_operators_certificate(tmp_path: Path) -> None:
    cluster_ca, lab_ca = trustme.CA(), trustme.CA()
    cluster_ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert, key = write_pair(tmp_path, lab_ca, "webview.lab.example")
    config = load_config(overrides={"tls_ca_file": str(tmp_path / "ca.pem"), "webview_cert_file": str(cert),
                                    "webview_key_file": str(key)}, environ={})
    material = operator_material(config)
    assert material is not None and material.cert_file == str(cert)

    def app(environ: dict, start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"webview"]

    server = make_server(app, "127.0.0.1", 0, 2, material.server_context(), material.cert_file, material.key_file)
    thread = threading.Thread(target=run_servers, args=([server],), daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.bind_addr[1]:
                break
            threading.Event().wait(0.05)
        port = server.bind_addr[1]
        browser = ssl.create_default_context()
        lab_ca.configure_trust(browser)  # the lab's CA only: not the cluster's
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with browser.wrap_socket(raw, server_hostname="127.0.0.1") as tls_socket:
                names = [value for kind, value in tls_socket.getpeercert()["subjectAltName"]]
                tls_socket.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                answer = b""
                while chunk := tls_socket.recv(4096):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"webview")
        assert "webview.lab.example" in names
        cluster_only = ssl.create_default_context()
        cluster_ca.configure_trust(cluster_only)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                cluster_only.wrap_socket(raw, server_hostname="127.0.0.1")
    finally:
        server.stop()
        thread.join(10)


def test_without_the_settings_the_node_certificate_serves() -> None:
    assert operator_material(load_config(environ={})) is None


def test_the_settings_go_together_and_need_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'webview_cert_file' and 'webview_key_file' go together"):
        load_config(overrides={"webview_cert_file": "/x.pem"}, environ={})
    with pytest.raises(ConfigError, match="needs TLS on"):
        load_config(overrides={"webview_cert_file": "/x.pem", "webview_key_file": "/x.key", "tls": False},
                    environ={})


def test_a_missing_certificate_stops_the_start_naming_it(tmp_path: Path) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = load_config(overrides={"tls_ca_file": str(tmp_path / "ca.pem"),
                                    "webview_cert_file": str(tmp_path / "missing.pem"),
                                    "webview_key_file": str(tmp_path / "missing.key")}, environ={})
    with pytest.raises(ConfigError, match="missing.pem"):
        operator_material(config)
