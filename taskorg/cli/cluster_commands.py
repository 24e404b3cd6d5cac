"""`taskorg cluster up|down|status`: the local multi-node cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from taskorg.cli.output import emit_json, table
from taskorg.devtools.localcluster import DEFAULT_DIR, LocalCluster


def print_summary(summary: dict[str, Any]) -> None:
    print(f"cluster {summary['name']} ({summary['workdir']})")
    print(f"  DNS      {summary['dns']}:53   (dig @{summary['dns']} {('master.' + summary['suffix'])})")
    print(f"  master   {summary['master'] or 'none'}")
    print(f"  API      {summary['api'] or '-'}")
    print(table(["NODE", "ADDRESS", "ROLE", "ALIVE", "WEBVIEW"],
                [[m["node"], m["address"], m["role"], "yes" if m["alive"] else "NO", m["webview"] or "-"]
                 for m in summary["members"]]))
    print(f"\nClients find it through {summary['client_config']} (the default for `taskorg`),"
          f"\nor: export TASKORG_CONFIG={summary['client_config']}")


def cmd_up(args: argparse.Namespace) -> int:
    cluster = LocalCluster(Path(args.dir), nodes=args.nodes, dns_address=args.dns_address, name=args.name,
                           webview=not args.no_webview)
    if not args.json:
        print(f"starting dnsmasq, the DNS service and {args.nodes} nodes from {args.dir} ...", file=sys.stderr)
    cluster.start(timeout=args.timeout)
    summary = cluster.summary()
    emit_json(summary) if args.json else print_summary(summary)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    cluster = LocalCluster.load(Path(args.dir))
    cluster.stop()
    if args.json:
        emit_json({"name": cluster.name, "stopped": True})
    else:
        print(f"cluster {cluster.name} stopped; its containers removed")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cluster = LocalCluster.load(Path(args.dir))
    summary = cluster.summary()
    emit_json(summary) if args.json else print_summary(summary)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cluster = sub.add_parser("cluster", help="run a local multi-node cluster on this machine")
    actions = cluster.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    up = actions.add_parser("up", help="start dnsmasq, the DNS service and N nodes", parents=[common])
    up.add_argument("--nodes", type=int, default=3, help="regular nodes (default 3)")
    up.add_argument("--dns-address", default="127.0.1.1",
                    help="loopback address of the DNS node; nodes follow it (default 127.0.1.1)")
    up.add_argument("--name", help="cluster name (labels its containers)")
    up.add_argument("--timeout", type=float, default=90, help="seconds to wait for readiness")
    up.add_argument("--no-webview", action="store_true", help="do not start the webviews")
    up.set_defaults(func=cmd_up)

    for name, func, text in (("down", cmd_down, "stop the cluster and remove its containers"),
                             ("status", cmd_status, "show the cluster")):
        p = actions.add_parser(name, help=text, parents=[common])
        p.set_defaults(func=func)
    for p in actions.choices.values():
        p.add_argument("--dir", default=str(DEFAULT_DIR), help=f"cluster directory (default {DEFAULT_DIR})")
