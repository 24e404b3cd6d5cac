"""`taskorg webview`: serve the pages on this node (HTTPS unless `tls: false`)."""

from __future__ import annotations

from taskorg.config import Config
from taskorg.logs import setup_logging
from taskorg.net.server import serve
from taskorg.secret import read_secret
from taskorg.security.tls import TlsMaterial
from taskorg.webview import create_app


def run(config: Config) -> None:
    """Serve on the node's own address and `webview_port` (23380) until killed."""
    setup_logging(config.log_level)
    app = create_app(config, read_secret(config))
    serve(app, config.node_address, config.webview_port, material=operator_material(config))


def operator_material(config: Config) -> TlsMaterial | None:
    """The operator's certificate for the webview's HTTPS (a browser then trusts the lab's own CA),
    or None: the node certificate, from the cluster CA. Loaded here so a bad file stops the start
    naming it."""
    if not (config.tls and config.webview_cert_file):
        return None
    material = TlsMaterial(config.tls_ca_file, config.webview_cert_file, config.webview_key_file)
    material.server_context()
    return material
