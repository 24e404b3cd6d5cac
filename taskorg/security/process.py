"""One call at a process's start sets up its TLS material and the user tokens its services accept."""

from __future__ import annotations

from taskorg.config import Config
from taskorg.net import listeners
from taskorg.security import auth, tls


def configure_process(config: Config, service: bool) -> None:
    """`service`: this process serves (needs its node certificate) rather than only calling services."""
    tls.configure(config, service=service)
    listeners.use(config)
    if service:
        auth.use_tokens(config.tokens_path)
        auth.open_metrics_to(config.metrics_open_networks)
