"""Publishing the cluster's names to dnsmasq, and checking they took.

One hosts file in dnsmasq's hostsdir is rewritten whole (write a dotfile,
which dnsmasq ignores, then rename over the real one). dnsmasq documents
hostsdir as add-only, so after each rewrite we ask it for `master.<suffix>`
and send SIGHUP if it still answers anything but the new address alone.
Service names (`taskorg.dns.service_names`) live in a second file of the
same directory; a change that removes an address from a name is followed by
a SIGHUP at once, since dnsmasq would otherwise keep answering it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from taskorg.config import Config
from taskorg.dns.dnsmasq import Dnsmasq, hosts_dir
from taskorg.dns.service_names import NameMap, removed_any, render_service_hosts
from taskorg.logs import get_logger
from taskorg.net.resolve import ResolveError, resolve_at

log = get_logger("dns.publisher")


def render_hosts(config: Config, master_address: str | None, nodes: dict[str, str]) -> str:
    lines = [f"{config.witness_address} dns.{config.suffix}"]
    if master_address:
        lines.append(f"{master_address} {config.master_name}")
    lines += [f"{address} {node}.{config.suffix}" for node, address in sorted(nodes.items())]
    return "\n".join(lines) + "\n"


class Publisher:
    def __init__(self, config: Config, dnsmasq: Dnsmasq) -> None:
        self.config = config
        self.dnsmasq = dnsmasq
        self.path = hosts_dir(config) / "cluster"
        self.services_path = hosts_dir(config) / "services"
        self.last_text: str | None = None
        self.last_services: NameMap | None = None
        self._edited_text: str | None = None  # the hosts file as edited_master() last read it
        self.hups = 0

    def publish(self, master_address: str | None, nodes: dict[str, str]) -> float:
        """Rewrite the records; returns seconds until dnsmasq answered the new master."""
        text = render_hosts(self.config, master_address, nodes)
        started = time.monotonic()
        if text != self.last_text:
            self._write(self.path, text)
            self.last_text = text
        if master_address:
            self.ensure_master(master_address)
        return time.monotonic() - started

    def publish_services(self, names: NameMap) -> None:
        """Rewrite the service names; reload dnsmasq when one lost an address (it only adds on its own)."""
        if names == self.last_services:
            return
        self._write(self.services_path, render_service_hosts(names))
        # The first write after a start may remove what a predecessor wrote: reload then too.
        if (self.last_services is None or removed_any(self.last_services, names)) and self.dnsmasq.reload():
            self.hups += 1
        self.last_services = dict(names)

    def ensure_master(self, master_address: str, wait: float = 0.3) -> bool:
        """Check dnsmasq answers the master alone; SIGHUP it once if not."""
        for attempt in range(2):
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    # this machine's dnsmasq only: it is the one we just wrote for
                    if resolve_at(self.config, self.config.dns_address, self.config.master_name,
                                  timeout=0.2) == [master_address]:
                        return True
                except ResolveError:
                    pass
                time.sleep(0.01)
            if attempt == 0 and self.dnsmasq.reload():
                self.hups += 1
                log.warning("dnsmasq kept a stale master record; sent SIGHUP",
                            extra={"master_address": master_address})
        log.error("dnsmasq does not answer the new master record",
                  extra={"record": self.config.master_name, "expected": master_address})
        return False

    def edited_master(self) -> str | None:
        """The master address in the hosts file if someone other than us rewrote it, else None.

        Operators may move the master with nothing but an editor: whoever
        `master.<suffix>` names is the master, so the DNS service takes such
        an edit as a handover request instead of silently undoing it.
        """
        try:
            text = self.path.read_text()
        except OSError:
            return None
        if self.last_text is None or text == self.last_text:
            return None
        self._edited_text = text
        named = [fields[0] for fields in (line.split() for line in text.splitlines())
                 if len(fields) > 1 and not fields[0].startswith("#") and self.config.master_name in fields[1:]]
        return named[0] if len(named) == 1 else None

    def adopt_edit(self) -> None:
        """Take the edit edited_master() last read as ours, so it is not seen as a new edit again."""
        self.last_text = self._edited_text

    def force_rewrite(self) -> None:
        """Forget what we last wrote, so the next publish() writes the file whatever it holds."""
        self.last_text = None

    def _write(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # dnsmasq reads it as an unprivileged user
        os.replace(tmp, path)
