"""Admin commands: the secret, dnsmasq's config, the test image, node drain."""

from __future__ import annotations

import argparse
from typing import Any

from taskorg.cli.output import emit_json


def cmd_secret(args: argparse.Namespace) -> int:
    from taskorg.secret import generate_secret, write_secret

    if args.write:
        write_secret(args.write)
        print(f"wrote a new cluster secret to {args.write} (mode 0600)")
    else:
        print(generate_secret())
    return 0


def cmd_dnsmasq_conf(args: argparse.Namespace) -> int:
    from taskorg.cli.context import service_config
    from taskorg.dns.dnsmasq import render_conf

    print(render_conf(service_config(args)), end="")
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    from taskorg.devtools.images import ensure_busybox_image

    tag = ensure_busybox_image()
    emit_json({"image": tag}) if args.json else print(tag)
    return 0


def cmd_node_admin(args: argparse.Namespace) -> int:
    from taskorg.cli.context import make_client

    answer = make_client(args).dns_call("POST", f"/v1/members/{args.target}/{args.action}")
    emit_json(answer) if args.json else print(f"{answer['node']}: {answer['state']}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("secret", help="generate a cluster secret", parents=[common])
    p.add_argument("--write", metavar="PATH", help="write it to PATH with mode 0600")
    p.set_defaults(func=cmd_secret)

    p = sub.add_parser("dnsmasq-conf", help="print the dnsmasq config for the DNS node", parents=[common])
    p.set_defaults(func=cmd_dnsmasq_conf)

    p = sub.add_parser("image", help="build the local busybox task image (cached by content)", parents=[common])
    p.add_argument("action", choices=["build"])
    p.set_defaults(func=cmd_image)
