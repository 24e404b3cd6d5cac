"""`taskorg ca init|issue` and `taskorg token create|list|revoke`: the cluster's credentials."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from taskorg.cli.commands import CLIENT, Group
from taskorg.cli.context import UsageError, client_config
from taskorg.cli.output import emit_json, table

DEFAULT_CA_DIR = "/etc/taskorg/ca"


def _settings(args: argparse.Namespace) -> Any:
    # No TLS set-up here: these commands make the material it needs.
    return client_config(args)


def cmd_ca_init(args: argparse.Namespace) -> int:
    from taskorg.security.ca import CaError, init_ca

    config = _settings(args)
    try:
        cert = init_ca(args.dir, config.cluster, force=args.force)
    except CaError as exc:
        raise UsageError(str(exc)) from None
    emit_json({"ca": str(cert), "key": str(Path(args.dir) / "ca.key")}) if args.json else \
        print(f"made the cluster CA: {cert} (its key {Path(args.dir) / 'ca.key'} is mode 0600: keep it off the nodes)")
    return 0


def cmd_ca_issue(args: argparse.Namespace) -> int:
    from taskorg.security.ca import CaError, describe, issue

    config = _settings(args)
    if not args.address:
        raise UsageError(f"taskorg ca issue {args.node} needs --address (the node's IP address)")
    try:
        issued = issue(args.dir, args.node, args.address, config.suffix, args.out)
    except CaError as exc:
        raise UsageError(str(exc)) from None
    info = {"cert": str(issued.cert_file), "key": str(issued.key_file), **describe(issued.cert_file)}
    emit_json(info) if args.json else print(
        f"issued {info['name']} for {', '.join(info['dns'] + info['ip'])}: {issued.cert_file}, key {issued.key_file}")
    return 0


def _store(args: argparse.Namespace) -> Any:
    from taskorg.security.tokens import TokenStore

    return TokenStore(args.tokens_file or _settings(args).tokens_path)


def cmd_token(args: argparse.Namespace) -> int:
    from taskorg.security.tokens import TokenError

    store = _store(args)
    try:
        if args.token_action == "create":
            token, clear = store.create(args.name, args.role)
            if args.json:
                emit_json({"id": token.id, "name": token.name, "role": token.role, "token": clear})
            else:
                print(f"token {token.id} ({token.name}, role {token.role}); shown once, only its hash is kept:")
                print(clear)
        elif args.token_action == "revoke":
            token = store.revoke(args.which)
            emit_json({"id": token.id, "name": token.name, "revoked": True}) if args.json else \
                print(f"revoked token {token.id} ({token.name})")
        else:
            rows = store.listing()
            emit_json({"tokens": rows}) if args.json else \
                print(table(["ID", "NAME", "ROLE"], [[r["id"], r["name"], r["role"]] for r in rows]))
    except TokenError as exc:
        raise UsageError(str(exc)) from None
    return 0


def register(top: Group) -> None:
    from taskorg.security.tokens import ROLES

    ca = top.group("ca", "the cluster CA: make it, issue node certificates",
                   ["taskorg ca init --dir /etc/taskorg/ca", "taskorg ca issue node2 --address 10.0.0.12 --out ./node2"])
    init = ca.add("init", "make the cluster CA (its key 0600, in a 0700 directory)",
                  ["taskorg ca init --dir /etc/taskorg/ca"], cmd_ca_init, kind=CLIENT)
    init.add_argument("--force", action="store_true", help="replace an existing CA (every node needs a new certificate)")
    issue = ca.add("issue", "issue a node certificate signed by the cluster CA (names NODE.<suffix> and its address)",
                   ["taskorg ca issue node2 --address 10.0.0.12 --out /root/node2-tls"], cmd_ca_issue, kind=CLIENT)
    issue.add_argument("node", help="node name, e.g. node2")
    issue.add_argument("--address", action="append", default=[], help="the node's IP address (repeatable)")
    issue.add_argument("--out", help="directory for ca.pem, NODE.pem and NODE.key (default: the CA directory)")
    for p in (init, issue):
        p.add_argument("--dir", default=DEFAULT_CA_DIR, help=f"CA directory (default {DEFAULT_CA_DIR})")

    token = top.group("token", "user tokens with roles (read, submit, admin)",
                      ["taskorg token create alice --role submit", "taskorg token revoke alice"])
    create = token.add("create", "make a token (printed once; only its hash is kept)",
                       ["taskorg token create ci --role submit"], cmd_token, kind=CLIENT)
    create.add_argument("name", help="who or what uses it, e.g. alice or ci")
    create.add_argument("--role", required=True, choices=ROLES)
    listing = token.add("ls", "list tokens (ids, names, roles; never the tokens)", ["taskorg token ls"], cmd_token,
                        kind=CLIENT, aliases=["list"])
    revoke = token.add("revoke", "revoke a token by id or name", ["taskorg token revoke alice"], cmd_token, kind=CLIENT)
    revoke.add_argument("which", metavar="ID|NAME")
    for p, action in ((create, "create"), (listing, "list"), (revoke, "revoke")):
        p.add_argument("--tokens-file", help="the token file (default: the 'tokens_file' setting)")
        p.set_defaults(token_action=action)
