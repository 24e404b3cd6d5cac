"""The local cluster's credentials: its CA, a certificate per machine (and one for the harness,
this process), an admin token. Apart from `LocalCluster` because they are files with their own
rules (made once, never overwritten) and the TLS settings every config points at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskorg.security import ca, tls
from taskorg.security.files import write_private
from taskorg.security.tokens import TokenStore


@dataclass(frozen=True)
class ClusterCredentials:
    workdir: Path
    name: str
    dns_address: str
    suffix: str

    @property
    def ca_dir(self) -> Path:
        return self.workdir / "ca"

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / ca.CA_CERT

    @property
    def tokens_file(self) -> Path:
        return self.workdir / "tokens.json"

    @property
    def admin_token_file(self) -> Path:
        return self.workdir / "admin-token"

    def cert(self, key: str) -> tuple[Path, Path]:
        folder = self.workdir / key / "tls"
        return folder / f"{key}.pem", folder / f"{key}.key"

    def issue(self, key: str, addresses: list[str]) -> None:
        if not self.cert(key)[0].exists():
            ca.issue(self.ca_dir, key, addresses, self.suffix, self.workdir / key / "tls")

    def write(self) -> None:
        """The CA, the DNS node's and the harness's certificates and the admin token, where missing."""
        if not self.ca_file.exists():
            ca.init_ca(self.ca_dir, self.name)
        self.issue("dns", [self.dns_address])
        # The test harness (this process) gets a certificate of its own: tests call internal endpoints.
        self.issue("harness", [])
        if not self.admin_token_file.exists():
            _, clear = TokenStore(self.tokens_file).create("local-admin", "admin")
            write_private(self.admin_token_file, (clear + "\n").encode())
        self.use_tls_here()

    def use_tls_here(self) -> None:
        """This process talks to this cluster's addresses with the cluster CA and the harness certificate."""
        cert, key = self.cert("harness")
        if cert.exists():
            network = f"{self.dns_address}/24"
            tls.use(tls.TlsMaterial(str(self.ca_file), str(cert), str(key)), network=network)

    def tls_settings(self, key: str | None) -> dict[str, Any]:
        """The TLS settings of the config of machine `key` (None: a client without a certificate)."""
        cert, private = self.cert(key) if key else (Path(""), Path(""))
        return {"tls_ca_file": str(self.ca_file), "tls_cert_file": str(cert) if key else "",
                "tls_key_file": str(private) if key else "", "tokens_file": str(self.tokens_file)}
