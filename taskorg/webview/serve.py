"""`taskorg webview`: serve the pages on this node (HTTPS unless `tls: false`)."""

from __future__ import annotations

from taskorg.config import Config
from taskorg.logs import setup_logging
from taskorg.net.server import serve
from taskorg.secret import read_secret
from taskorg.webview import create_app


def run(config: Config) -> None:
    """Serve on the node's own address and `webview_port` (23380) until killed."""
    setup_logging(config.log_level)
    app = create_app(config, read_secret(config))
    serve(app, config.node_address, config.webview_port)
