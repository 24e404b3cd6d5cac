"""TLS material of this process, and the SSL contexts made from it.

A process configures its material once from its settings (`configure`), so
the many places that build a `ServiceClient(url, secret)` or call
`serve(app, host, port)` need no TLS arguments. A test process that talks to
several clusters registers each cluster's material for its address block
(`use(material, network)`).

Clients verify a server against the cluster CA only (never the public
roots) and check that its certificate names the address they connected to:
node certificates carry the node's IP, so an answer to `master.<suffix>`
that points elsewhere meets a host that cannot prove it is that node.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from requests.adapters import HTTPAdapter

from taskorg.config import Config, ConfigError
from taskorg.logs import get_logger

log = get_logger("tls")


@dataclass(frozen=True)
class TlsMaterial:
    """The cluster CA, and this process's own certificate and key (optional for a user's client)."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, compare=False, repr=False)

    def client_context(self) -> ssl.SSLContext:
        return self._context("client")

    def server_context(self) -> ssl.SSLContext:
        return self._context("server")

    def _context(self, side: str) -> ssl.SSLContext:
        if side not in self._contexts:
            self._contexts[side] = self._make(side)
        return self._contexts[side]

    def _make(self, side: str) -> ssl.SSLContext:
        purpose = ssl.PROTOCOL_TLS_SERVER if side == "server" else ssl.PROTOCOL_TLS_CLIENT
        context = ssl.SSLContext(purpose)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_verify_locations(cafile=self.ca_file)
            if self.cert_file:
                context.load_cert_chain(self.cert_file, self.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS material ({self.ca_file}, {self.cert_file or 'no certificate'}): "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        if side == "server":
            if not self.cert_file:
                raise ConfigError("a TLS service needs its node certificate: set 'tls_cert_file' and 'tls_key_file'")
            # Users come with tokens and no certificate; a node presents its own, verified against the CA.
            context.verify_mode = ssl.CERT_OPTIONAL
        else:
            context.check_hostname = True
            context.verify_mode = ssl.CERT_REQUIRED
        return context


_lock = threading.Lock()
_default: TlsMaterial | None = None
_server: TlsMaterial | None = None
_by_network: list[tuple[Any, TlsMaterial]] = []


def use(material: TlsMaterial | None, network: str | None = None) -> None:
    """Make `material` this process's client material (for every host, or for hosts in `network`)."""
    global _default
    with _lock:
        if network is None:
            _default = material
            return
        net = ipaddress.ip_network(network, strict=False)
        _by_network[:] = [(n, m) for n, m in _by_network if n != net]
        if material is not None:
            _by_network.append((net, material))


def material_for(host: str) -> TlsMaterial | None:
    """The client material for `host`: the one registered for its network, else the process default."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    with _lock:
        if address is not None:
            for net, material in _by_network:
                if address.version == net.version and address in net:
                    return material
        return _default


def server_material() -> TlsMaterial | None:
    return _server


def from_config(config: Config, need_cert: bool) -> TlsMaterial:
    """Material named by the settings; a client without its certificate files just goes without one."""
    cert, key = config.tls_cert_file, config.tls_key_file
    if not need_cert and not (cert and os.access(cert, os.R_OK) and key and os.access(key, os.R_OK)):
        cert = key = ""
    if not Path(config.tls_ca_file).is_file():
        raise ConfigError(f"setting 'tls_ca_file': {config.tls_ca_file} does not exist (the cluster CA "
                          "certificate; `taskorg ca init` makes one, or set 'tls: false' for plain HTTP)")
    material = TlsMaterial(config.tls_ca_file, cert, key)
    material.client_context()  # fail at start, naming the files, rather than at the first request
    if need_cert:
        material.server_context()
    return material


def configure(config: Config, service: bool) -> TlsMaterial | None:
    """Set this process's TLS material from its settings (once, at start). None when TLS is off.
    `service`: the process serves too (its node certificate is required and used by `serve`)."""
    global _server
    if not config.tls:
        if service:
            log.warning("TLS is off ('tls: false'): credentials and cluster traffic cross the network in clear text")
            _server = None
        use(None)
        return None
    material = from_config(config, need_cert=service)
    use(material)
    if service:
        _server = material
    return material


def configured() -> bool:
    """Whether this process has client material for every host (set by `configure` or `use`)."""
    return _default is not None


class _ContextAdapter(HTTPAdapter):
    """requests with our SSL context, and without the public CA bundle that requests would add to it."""

    def __init__(self, context: ssl.SSLContext, **pool: Any) -> None:
        self._context = context
        super().__init__(**pool)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


def mount(session: Any, host: str, material: TlsMaterial | None = None, **pool: Any) -> None:
    """Give a requests session the TLS material for `host` (explicit, or this process's); `pool`:
    HTTPAdapter's pool_connections/pool_maxsize."""
    material = material or material_for(host)
    if material is not None:
        session.mount("https://", _ContextAdapter(material.client_context(), **pool))
    elif pool:
        session.mount("https://", HTTPAdapter(**pool))
