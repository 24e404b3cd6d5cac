"""The cluster CA, user tokens, the route policy and the request decision (no network)."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from taskorg.config import ConfigError, load_config
from taskorg.net.server import create_service_app
from taskorg.secret import read_credential, read_secret
from taskorg.security import auth, ca
from taskorg.security.files import write_private
from taskorg.security.policy import NODE, required
from taskorg.security.tokens import TokenError, TokenStore, hash_token, role_includes


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- CA and node certificates ------------------------------------------------------------------------
def test_ca_init_makes_a_private_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    cert = ca.init_ca(folder, "lab")
    assert mode(folder) == 0o700 and mode(folder / "ca.key") == 0o600
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    assert loaded.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(ca.CaError, match="exists already"):
        ca.init_ca(folder, "lab")
    assert not list(folder.glob(".*tmp"))  # written by temp and rename, nothing left over


def test_a_node_certificate_names_the_node_and_its_address(tmp_path: Path) -> None:
    ca.init_ca(tmp_path / "ca", "lab")
    issued = ca.issue(tmp_path / "ca", "node2", ["10.0.0.12"], "lab.internal", tmp_path / "node2")
    info = ca.describe(issued.cert_file)
    assert info["name"] == "node2" and info["dns"] == ["node2.lab.internal"] and info["ip"] == ["10.0.0.12"]
    assert mode(issued.key_file) == 0o600 and mode(tmp_path / "node2") == 0o700
    chain = x509.load_pem_x509_certificates(issued.cert_file.read_bytes())
    assert len(chain) == 2  # the node's, then the CA's
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.12")]


@pytest.mark.parametrize("name,addresses,message", [
    ("node 2", ["10.0.0.1"], "DNS label"),
    ("node2", ["10.0.0.1\n10.0.0.2"], "not an IP address"),
    ("node2", ["master"], "not an IP address"),
])
def test_bad_certificate_requests_are_refused_by_name(tmp_path: Path, name: str, addresses: list[str],
                                                      message: str) -> None:
    ca.init_ca(tmp_path, "lab")
    with pytest.raises(ca.CaError, match=message):
        ca.issue(tmp_path, name, addresses, "lab.internal")


def test_issue_without_a_ca_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ca.CaError, match="taskorg ca init"):
        ca.issue(tmp_path, "node1", ["10.0.0.1"], "lab.internal")


def test_private_files_are_written_whole_with_mode_0600(tmp_path: Path) -> None:
    target = write_private(tmp_path / "sub" / "f", b"one")
    assert target.read_bytes() == b"one" and mode(target) == 0o600 and mode(tmp_path / "sub") == 0o700
    write_private(target, b"two")
    assert target.read_bytes() == b"two"


# ---- tokens ------------------------------------------------------------------------------------------------------
def test_tokens_are_stored_hashed_and_checked_by_role(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token, clear = store.create("ci", "submit")
    text = (tmp_path / "tokens.json").read_text()
    assert clear not in text and hash_token(clear) in text
    assert mode(tmp_path / "tokens.json") == 0o600
    assert store.check(clear) == token
    assert store.check(clear + "x") is None and store.check("") is None
    assert [t["name"] for t in store.listing()] == ["ci"]


def test_a_revoked_token_stops_working_in_a_running_reader(tmp_path: Path) -> None:
    writer, reader = TokenStore(tmp_path / "t.json"), TokenStore(tmp_path / "t.json")
    _, clear = writer.create("alice", "read")
    assert reader.check(clear) is not None
    writer.revoke("alice")
    assert reader.check(clear) is None


def test_token_requests_are_checked(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    with pytest.raises(TokenError, match="role 'root'"):
        store.create("x", "root")
    with pytest.raises(TokenError, match="token name"):
        store.create("bad name", "read")
    store.create("x", "read")
    with pytest.raises(TokenError, match="exists already"):
        store.create("x", "admin")
    with pytest.raises(TokenError, match="no token"):
        store.revoke("nobody")


def test_roles_include_the_lesser_ones() -> None:
    assert role_includes("admin", "submit") and role_includes("submit", "read")
    assert not role_includes("read", "submit") and not role_includes("submit", "admin")
    assert not role_includes("admin", NODE)


# ---- the route policy and the decision ------------------------------------------------------------------------------
def test_internal_routes_need_a_node_and_client_routes_a_role() -> None:
    assert required("master", "POST", "/v1/jobs") == "submit"
    assert required("master", "GET", "/v1/tasks/t-1234abcd/logs") == "read"
    assert required("master", "DELETE", "/v1/tasks/t-1234abcd") == "submit"
    assert required("dns", "POST", "/v1/members/node2/drain") == "admin"
    for service, method, path in [("master", "POST", "/v1/reports"), ("master", "POST", "/v1/replica/apply"),
                                  ("master", "POST", "/v1/role"), ("master", "GET", "/v1/state"),
                                  ("dns", "POST", "/v1/heartbeat"), ("dns", "POST", "/v1/register"),
                                  ("slave", "POST", "/v1/containers"), ("node", "POST", "/v1/wake"),
                                  ("master", "GET", "/v1/some-new-route")]:
        assert required(service, method, path) == NODE, (service, method, path)


SECRET = "s" * 32
TLS = {"wsgi.url_scheme": "https"}
TLS_NODE = {"wsgi.url_scheme": "https", "SSL_CLIENT_VERIFY": "SUCCESS"}


def test_decisions_over_tls(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    _, reader = store.create("r", "read")
    _, submitter = store.create("s", "submit")
    auth.use_tokens(store.path)
    try:
        decide = auth.decide
        assert decide("master", "POST", "/v1/reports", TLS_NODE, None, SECRET) is None
        assert decide("master", "POST", "/v1/reports", TLS, f"Bearer {SECRET}", SECRET).status == 403
        assert decide("master", "POST", "/v1/reports", TLS, f"Bearer {submitter}", SECRET).status == 403
        assert decide("master", "POST", "/v1/reports", TLS, "Bearer nope", SECRET).status == 401
        assert decide("master", "POST", "/v1/jobs", TLS, f"Bearer {reader}", SECRET).status == 403
        assert decide("master", "POST", "/v1/jobs", TLS, f"Bearer {submitter}", SECRET) is None
        assert decide("dns", "POST", "/v1/members/node2/drain", TLS, f"Bearer {submitter}", SECRET).status == 403
        assert decide("dns", "POST", "/v1/members/node2/drain", TLS, f"Bearer {SECRET}", SECRET) is None
        # A node certificate alone is no user: a forwarded request keeps its user's role.
        assert decide("master", "POST", "/v1/jobs", TLS_NODE, f"Bearer {reader}", SECRET).status == 403
    finally:
        auth.use_tokens(None)


def test_with_tls_off_the_secret_still_opens_internal_routes() -> None:
    plain = {"wsgi.url_scheme": "http"}
    assert auth.decide("slave", "POST", "/v1/containers", plain, f"Bearer {SECRET}", SECRET) is None
    assert auth.decide("slave", "POST", "/v1/containers", plain, "Bearer x", SECRET).status == 401
    # A claimed client certificate means nothing over plain HTTP.
    assert auth.decide("slave", "POST", "/v1/containers", {"SSL_CLIENT_VERIFY": "SUCCESS"}, None, SECRET).status == 401


# ---- the secret --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["   ", "\t\n", "short"])
def test_a_blank_or_short_secret_is_refused_at_start(tmp_path: Path, value: str) -> None:
    config = load_config(overrides={"secret_file": str(tmp_path / "none")}, environ={})
    with pytest.raises(ConfigError, match="TASKORG_SECRET"):
        read_secret(config, {"TASKORG_SECRET": value})
    with pytest.raises(ValueError, match="whitespace"):
        create_service_app("slave", value if not value.strip() else " ")


@pytest.mark.parametrize("content", ["", "   \n", "\t \n\n", "short\n"])
def test_a_blank_or_short_secret_file_is_refused_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "secret"
    path.write_text(content)
    path.chmod(0o600)
    config = load_config(overrides={"secret_file": str(path)}, environ={})
    with pytest.raises(ConfigError, match=f"{path}: the secret is empty, only whitespace or too short"):
        read_secret(config, {})
    # An empty TASKORG_SECRET is unset: the file is read, and refused the same way.
    with pytest.raises(ConfigError, match=str(path)):
        read_secret(config, {"TASKORG_SECRET": ""})


def _secret_file(tmp_path: Path, file_mode: int, uid: int, gid: int) -> Path:
    path = tmp_path / "secret"
    path.write_text("s" * 43 + "\n")
    os.chown(path, uid, gid)
    path.chmod(file_mode)
    return path


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")


@root_only
def test_a_root_owned_secret_readable_by_the_services_group_is_accepted(tmp_path: Path) -> None:
    # The service runs with this group (on a host: User=taskorg, the file root:taskorg 0640).
    path = _secret_file(tmp_path, 0o640, 0, os.getegid())
    assert read_secret(load_config(overrides={"secret_file": str(path)}, environ={}), {}) == "s" * 43


@root_only
@pytest.mark.parametrize("file_mode, uid, gid, problem", [
    (0o640, 0, 54321, "lets group 54321 read it, which is not this service's group"),
    (0o640, 54321, 0, "must be owned by root"),
    (0o644, 0, 0, "it has 0644"),
    (0o660, 0, 0, "it has 0660"),
    (0o604, 0, 0, "it has 0604"),
])
def test_a_secret_readable_by_anyone_else_is_refused_naming_why(tmp_path: Path, file_mode: int, uid: int, gid: int,
                                                                 problem: str) -> None:
    path = _secret_file(tmp_path, file_mode, uid, gid)
    with pytest.raises(ConfigError, match=f"{path}.*{problem}"):
        read_secret(load_config(overrides={"secret_file": str(path)}, environ={}), {})


def test_a_client_sends_its_token_before_the_secret(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tko_abc\n")
    config = load_config(overrides={"token_file": str(tmp_path / "token")}, environ={})
    assert read_credential(config, {}) == "tko_abc"
    assert read_credential(config, {"TASKORG_TOKEN": "tko_env"}) == "tko_env"
    with pytest.raises(ConfigError, match="token_file"):
        read_credential(config.replace(token_file=str(tmp_path / "missing")), {})


# ---- connection slots ------------------------------------------------------------------------------------------------------
def test_a_source_gets_its_share_and_loopback_only_the_total() -> None:
    from taskorg.net.httpd import _Slots

    slots = _Slots(per_source=2, total=5)
    assert slots.take("10.0.0.5") and slots.take("10.0.0.5") and not slots.take("10.0.0.5")
    assert slots.take("10.0.0.6")
    slots.give_back("10.0.0.5")
    assert slots.take("10.0.0.5")
    assert slots.take("127.0.0.1") and slots.take("127.0.0.1")  # past the share: this machine's own
    assert not slots.take("127.0.0.1") and not slots.take("10.0.0.7")  # the total holds for everyone


def test_a_500_names_the_error_kind_not_its_text() -> None:
    from taskorg.net.server import create_service_app

    app = create_service_app("master", "s3cret-for-the-500-test")

    @app.get("/healthz-broken")  # unlisted, so internal: with TLS off (in process) the secret opens it
    def broken() -> None:
        raise RuntimeError("UNIQUE constraint failed: rows of /var/lib/taskorg/master.db")

    answer = app.test_client().get("/healthz-broken", headers={"Authorization": "Bearer s3cret-for-the-500-test"})
    assert answer.status_code == 500
    assert answer.json == {"error": "internal error in master service (RuntimeError); its log has the details"}
