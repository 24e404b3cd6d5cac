"""`taskorg context ls|add|use|rm|show` (which cluster a client command talks to) and shell completion."""

from __future__ import annotations

import argparse
import os

import sys
from pathlib import Path

import yaml

from taskorg.cli.commands import BARE, LOCAL, Group
from taskorg.cli.context import UsageError, context_path, contexts_dir, current_context
from taskorg.cli.output import emit_json, table
from taskorg.config import ConfigError, load_config


def _names() -> list[str]:
    folder = contexts_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def cmd_context_ls(args: argparse.Namespace) -> int:
    current = current_context()
    rows = []
    for name in _names():
        try:
            config = load_config(str(context_path(name)))
            rows.append({"name": name, "current": name == current, "dns": config.dns_address,
                         "suffix": config.suffix, "secret_file": config.secret_file})
        except ConfigError as exc:
            rows.append({"name": name, "current": name == current, "error": str(exc)})
    if args.json:
        emit_json(rows)
    else:
        print(table(["", "NAME", "DNS", "SUFFIX", "SECRET FILE"],
                    [["*" if r["current"] else "", r["name"], r.get("dns", "-"), r.get("suffix", "-"),
                      r.get("secret_file") or r.get("error")] for r in rows]))
    return 0


def cmd_context_add(args: argparse.Namespace) -> int:
    """Save a client config under a name: copied from --from, or made from --dns/--suffix/--secret-file."""
    path = context_path(args.name)
    if path.exists() and not args.force:
        raise UsageError(f"context {args.name!r} exists already (--force replaces it)")
    if args.source:
        source = Path(args.source)
        if not source.is_file():
            raise UsageError(f"--from {args.source}: no such file")
        settings = yaml.safe_load(source.read_text()) or {}
    else:
        if not args.dns_address:
            raise UsageError("give --from FILE (a client config) or at least --dns-address")
        settings = {"dns_address": args.dns_address}
    for key, value in (("suffix", args.suffix), ("secret_file", args.secret_file)):
        if value:
            settings[key] = value
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp.write_text(yaml.safe_dump(settings, sort_keys=True))
    try:
        load_config(str(tmp))  # refuse a config the commands could not use
    except ConfigError as exc:
        tmp.unlink()
        raise UsageError(f"context {args.name!r} not saved: {exc}") from None
    os.replace(tmp, path)
    print(f"saved context {args.name} ({path})")
    return 0


def cmd_context_use(args: argparse.Namespace) -> int:
    if not context_path(args.name).is_file():
        raise UsageError(f"no context named {args.name!r} (`taskorg context ls` lists them)")
    marker = contexts_dir() / "current"
    marker.write_text(args.name + "\n")
    print(f"client commands now talk to {args.name}")
    return 0


def cmd_context_rm(args: argparse.Namespace) -> int:
    path = context_path(args.name)
    if not path.is_file():
        raise UsageError(f"no context named {args.name!r}")
    path.unlink()
    if current_context() == args.name:
        (contexts_dir() / "current").unlink()
    print(f"removed context {args.name}")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    from taskorg.cli.main import build_parser

    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    return 0


def register(top: Group) -> None:
    context = top.group("context", "which cluster client commands talk to (saved in ~/.config/taskorg)",
                        ["taskorg context add lab --from /etc/taskorg/client.yaml", "taskorg context use lab"])
    context.add("ls", "list saved contexts (* marks the current one)", ["taskorg context ls"], cmd_context_ls,
                kind=LOCAL)
    p = context.add("add", "save a cluster's client settings under a name",
                    ["taskorg context add lab --from lab-client.yaml",
                     "taskorg context add lab --dns-address 10.0.0.2 --secret-file ~/.lab-secret"],
                    cmd_context_add, kind=BARE)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--from", dest="source", metavar="FILE", help="a client config file to copy")
    p.add_argument("--dns-address", help="address of one of the cluster's DNS servers")
    p.add_argument("--suffix", help="the cluster's DNS suffix (default taskorg.internal)")
    p.add_argument("--secret-file", help="file with the cluster secret")
    p.add_argument("--force", action="store_true", help="replace a context of that name")
    for name, func, summary in (("use", cmd_context_use, "make a context the current one"),
                                ("rm", cmd_context_rm, "remove a saved context")):
        p = context.add(name, summary, [f"taskorg context {name} lab"], func, kind=BARE)
        p.add_argument("name", metavar="NAME")
    p = top.add("completion", "print a shell completion script",
                ["taskorg completion bash > /etc/bash_completion.d/taskorg", "taskorg completion zsh > ~/.zfunc/_taskorg"],
                cmd_completion, kind=BARE)
    p.add_argument("shell", choices=["bash", "zsh", "tcsh"])



