"""A DNS look-up nobody answered is told apart from an answer without the record.

The node service keeps its last answer about `master.<suffix>` when no
server answers (a loaded machine), and drops it only when a server says the
record is gone. Real UDP on loopback: a port nobody serves refuses at once.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import replace

import dns.message
import dns.rcode
import pytest

from taskorg.config import Config
from taskorg.net.resolve import ResolveError, Unanswered, resolve_all


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_server_answering_is_unanswered() -> None:
    config = replace(Config(), dns_address="127.0.0.1", dns_port=free_udp_port())
    with pytest.raises(Unanswered):
        resolve_all(config, config.master_name, timeout=0.2)


def test_an_answer_without_the_record_is_not_unanswered() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)

    def answer_nxdomain() -> None:
        data, sender = server.recvfrom(4096)
        response = dns.message.make_response(dns.message.from_wire(data))
        response.set_rcode(dns.rcode.NXDOMAIN)
        server.sendto(response.to_wire(), sender)

    threading.Thread(target=answer_nxdomain, daemon=True).start()
    config = replace(Config(), dns_address="127.0.0.1", dns_port=server.getsockname()[1])
    try:
        with pytest.raises(ResolveError) as raised:
            resolve_all(config, config.master_name, timeout=2)
        assert not isinstance(raised.value, Unanswered) and "NXDOMAIN" in str(raised.value)
    finally:
        server.close()


def test_unanswered_is_a_resolve_error_for_every_other_caller() -> None:
    assert issubclass(Unanswered, ResolveError)
