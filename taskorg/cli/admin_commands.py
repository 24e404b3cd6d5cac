"""Admin commands: the secret, dnsmasq's config, the test image."""

from __future__ import annotations

import argparse

from taskorg.cli.commands import BARE, LOCAL, SERVICE, Group
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


def register(top: Group) -> None:
    p = top.add("secret", "generate a cluster secret", ["taskorg secret --write /etc/taskorg/secret"], cmd_secret,
                kind=BARE)
    p.add_argument("--write", metavar="PATH", help="write it to PATH with mode 0600")
    top.add("dnsmasq-conf", "print the dnsmasq config for the DNS node",
            ["taskorg dnsmasq-conf --config /etc/taskorg/taskorg.yaml > /etc/dnsmasq.d/taskorg.conf"],
            cmd_dnsmasq_conf, kind=SERVICE)
    p = top.add("image", "build the local busybox task image (cached by content)", ["taskorg image build"],
                cmd_image, kind=LOCAL)
    p.add_argument("action", choices=["build"])
