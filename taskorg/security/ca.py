"""The cluster CA: one key pair per cluster that signs a certificate for every node.

A node certificate names the node twice in its subject alternative names —
`nodeN.<suffix>` and the node's IP address — because clients connect by
address (what `master.<suffix>` resolved to) and check that the certificate
names that address: a spoofed DNS answer leads to a host without a
certificate of this CA, and the connection fails. Keys are ECDSA P-256: a
handshake costs a fraction of an RSA one on a Raspberry Pi.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from taskorg.security.files import private_dir, write_private

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CA_DAYS = 3650
NODE_DAYS = 825
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class CaError(ValueError):
    """The CA is missing, exists already, or a request to it is malformed."""


@dataclass(frozen=True)
class IssuedCert:
    cert_file: Path
    key_file: Path


def _not_valid_after(cert: x509.Certificate) -> datetime.datetime:
    """The expiry, timezone-aware: `not_valid_after_utc` needs cryptography 42, and issue-cert.py runs
    under the controller's own Python (Debian bookworm ships cryptography 38)."""
    if hasattr(cert, "not_valid_after_utc"):
        return cert.not_valid_after_utc
    return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def init_ca(directory: str | Path, cluster: str, force: bool = False) -> Path:
    """Make the cluster CA in `directory` (0700): ca.key (0600) and ca.pem. Never overwrites one silently."""
    folder = Path(directory)
    if (folder / CA_KEY).exists() and not force:
        raise CaError(f"{folder / CA_KEY}: a CA exists already (every node certificate depends on it); "
                      "pass --force to replace it")
    private_dir(folder, narrow=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "taskorg"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"taskorg cluster CA {cluster}")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write_private(folder / CA_KEY, _key_pem(key))
    write_private(folder / CA_CERT, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return folder / CA_CERT


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise CaError(f"no cluster CA in {directory}: {exc.filename} is missing (make one with `taskorg ca init`)") from None
    except ValueError as exc:
        raise CaError(f"{directory}: the CA files are not a PEM certificate and key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"{directory / CA_KEY}: expected an EC key")
    return cert, key


def node_names(name: str, suffix: str) -> list[str]:
    """The DNS names a node's certificate carries: `name.<suffix>` (and `name` when it is a full name)."""
    if "." in name:
        return [name]
    if not _LABEL.match(name):
        raise CaError(f"node name {name!r}: expected a DNS label such as node2 (letters, digits, '-')")
    return [f"{name}.{suffix}"]


def issue(directory: str | Path, name: str, addresses: list[str], suffix: str,
          out_dir: str | Path | None = None) -> IssuedCert:
    """Sign a certificate for node `name` at `addresses`; writes `<name>.pem` (cert + CA) and `<name>.key` (0600)."""
    folder = Path(directory)
    ca_cert, ca_key = _load_ca(folder)
    ips = []
    for address in addresses:
        try:
            ips.append(ipaddress.ip_address(address))
        except ValueError:
            raise CaError(f"--address {address!r}: not an IP address") from None
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in node_names(name, suffix)]
    sans += [x509.IPAddress(ip) for ip in ips]
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "taskorg"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=NODE_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = private_dir(out_dir) if out_dir else folder
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    if out.resolve() != folder.resolve():
        write_private(out / CA_CERT, ca_pem, mode=0o644)  # the directory is all a node needs
    pem = cert.public_bytes(serialization.Encoding.PEM) + ca_pem
    key_file = write_private(out / f"{name}.key", _key_pem(key))
    cert_file = write_private(out / f"{name}.pem", pem, mode=0o644)
    return IssuedCert(cert_file, key_file)


def describe(cert_file: str | Path) -> dict[str, object]:
    """Subject, names and expiry of a certificate file (for `taskorg ca show`-style output and tests)."""
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in sans.get_values_for_type(x509.DNSName)]
        ips = [str(v) for v in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names, ips = [], []
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return {"name": str(common[0].value) if common else "", "dns": names, "ip": ips,
            "expires": _not_valid_after(cert).isoformat()}
