"""`taskorg`: run a service, operate a cluster, or run a local cluster.

Errors are one line on stderr naming what is wrong, exit code 2 for bad
usage or input, 1 when the cluster refused or could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from taskorg.cli.context import UsageError, service_config
from taskorg.config import Config, ConfigError

SERVICES = ("dns", "node", "master", "slave", "webview")
def run_service(args: argparse.Namespace) -> int:
    from taskorg.logs import setup_logging

    if getattr(args, "action", None):
        if not args.target:
            raise UsageError(f"taskorg node {args.action} needs a node name, e.g. node2")
        from taskorg.cli.admin_commands import cmd_node_admin
        return cmd_node_admin(args)
    config = service_config(args)
    setup_logging(config.log_level)
    run: Callable[[Config], None]
    if args.command == "dns":
        from taskorg.dns.service import run
    elif args.command == "node":
        from taskorg.node.service import run
    elif args.command == "master":
        from taskorg.master.service import run
    elif args.command == "slave":
        from taskorg.slave.service import run
    else:
        from taskorg.webview.serve import run
    run(config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from taskorg.cli import client_commands, cluster_commands, admin_commands

    parser = argparse.ArgumentParser(prog="taskorg", description="Container tasks on a small LAN cluster.")
    add_common_options(parser, None)
    # The same options after the subcommand (`taskorg ps --json`); SUPPRESS keeps
    # a value given before the subcommand from being reset.
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SERVICES:
        p = sub.add_parser(name, help=f"run the {name} service", parents=[common])
        p.set_defaults(func=run_service)
        if name == "node":
            p.add_argument("action", nargs="?", choices=["drain", "activate", "leave"],
                           help="instead of running the service: drain a node (move its tasks away), "
                                "activate it again, or remove a drained node")
            p.add_argument("target", nargs="?", metavar="NODE")
    client_commands.register(sub, common)
    cluster_commands.register(sub, common)
    admin_commands.register(sub, common)
    return parser


def add_common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--config", default=default,
                        help="settings file (default: $TASKORG_CONFIG, /etc/taskorg/taskorg.yaml, "
                             "or the local cluster's)")
    parser.add_argument("--dns", default=default, help="address of the cluster DNS server")
    parser.add_argument("--secret-file", default=default, help="file with the cluster secret (mode 0600)")
    parser.add_argument("--json", action="store_true", default=default if default else False,
                        help="print JSON for scripts")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # `--json` and `--config` work after the subcommand too.
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UsageError) as exc:
        print(f"taskorg: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # cluster errors: one readable line, no traceback
        from taskorg.client import ClusterUnavailable, DnsUnavailable
        from taskorg.devtools.localcluster import ClusterError
        from taskorg.net.client import ServiceError, ServiceUnavailable

        if isinstance(exc, (ServiceError, ServiceUnavailable, ClusterUnavailable, DnsUnavailable, ClusterError)):
            print(f"taskorg: {exc}", file=sys.stderr)
            return 1
        raise
