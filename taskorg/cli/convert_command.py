"""`taskorg convert FILE`: print the taskorg form of a compose file (or of any spec).

The output is the canonical job (every field, defaults filled in) as YAML,
or JSON with --json; it can be submitted as it is. Warnings about compose
keys that mean nothing on a cluster go to stderr, so the output stays clean.
Nothing is sent to the cluster: conversion is local, so env_file, .env and
secret files are read here, beside the compose file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from taskorg.cli.commands import LOCAL, Group
from taskorg.cli.context import UsageError
from taskorg.cli.output import emit_json


class _NoAliases(yaml.SafeDumper):
    """Specs refuse YAML aliases, so the output never writes one (even for a repeated value)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def cmd_convert(args: argparse.Namespace) -> int:
    from taskorg.spec import SpecError, load_spec_file

    if not Path(args.file).is_file():
        raise UsageError(f"{args.file}: no such file")
    try:
        job = load_spec_file(args.file)
    except SpecError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for warning in job.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        emit_json(job.to_dict())
    else:
        sys.stdout.write(f"# taskorg form of {args.file}\n")
        yaml.dump(job.to_dict(), sys.stdout, Dumper=_NoAliases, sort_keys=False,
                  default_flow_style=None, allow_unicode=True, width=100)
    return 0


def register(top: Group) -> None:
    p = top.add("convert", "print the taskorg form of a compose file (YAML; --json for JSON)",
                ["taskorg convert docker-compose.yml > job.yaml", "taskorg convert --json compose.yaml"],
                cmd_convert, kind=LOCAL)
    p.add_argument("file", metavar="FILE")
