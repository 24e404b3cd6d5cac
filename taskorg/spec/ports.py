"""Published ports: `"8080:80"`, `"8080:80/udp"`, `"80"`, `80` or `{host, container, protocol}`."""

from __future__ import annotations

import re
from typing import Any

from .checks import Invalid, check_keys, checked, optional, required, want_int, want_list, want_str
from .errors import describe
from .model import PROTOCOLS, Port
from .report import Reporter

PORT_TEXT = re.compile(r"^(?:(\d+):)?(\d+)(?:/([A-Za-z]+))?$")

PORT_HINTS = {"target": "did you mean 'container'?", "published": "did you mean 'host'?"}
PORT_FORMS = "must be like 8080:80, 8080:80/udp or 80"


def to_ports(value: Any, rep: Reporter) -> tuple[Port, ...]:
    ports: list[Port] = []
    used: dict[tuple[int, str], int] = {}
    for index, item in enumerate(want_list(value)):
        item_rep = rep.at(index)
        port = checked(_to_port, item, item_rep, None)
        if port is None:
            continue
        if port.host is not None:
            key = (port.host, port.protocol)
            if key in used:
                item_rep.add(f"host port {port.host}/{port.protocol} is already used by ports[{used[key]}]")
                continue
            used[key] = index
        ports.append(port)
    return tuple(ports)


def _to_port(item: Any, rep: Reporter) -> Port:
    if isinstance(item, int) and not isinstance(item, bool):
        return Port(container=_port_number(item, "port"))
    if isinstance(item, str):
        return _port_from_text(item)
    if isinstance(item, dict):
        return _port_from_mapping(item, rep)
    raise Invalid(f"{PORT_FORMS} or a mapping with host, container and protocol, got {describe(item)}")


def _port_from_text(text: str) -> Port:
    match = PORT_TEXT.match(text.strip())
    if not match:
        raise Invalid(f"{PORT_FORMS}, got {describe(text)}")
    host, container, protocol = match.groups()
    return Port(host=None if host is None else _port_number(int(host), "host port"),
                container=_port_number(int(container), "container port"),
                protocol=_protocol(protocol or "tcp"))


def _port_from_mapping(data: dict[Any, Any], rep: Reporter) -> Port:
    check_keys(data, ("host", "container", "protocol"), rep, PORT_HINTS)
    container = required(data, "container", rep, _mapped_port, 0, "the port inside the container, like 80")
    host = optional(data, "host", rep, _mapped_port, None)
    protocol = optional(data, "protocol", rep, lambda v, r: _protocol(want_str(v)), "tcp")
    return Port(container=container, host=host, protocol=protocol)


def _mapped_port(value: Any, rep: Reporter) -> int:
    return want_int(value, 1, 65535)


def _port_number(number: int, what: str) -> int:
    if not 1 <= number <= 65535:
        raise Invalid(f"{what} must be from 1 to 65535, got {number}")
    return number


def _protocol(text: str) -> str:
    if text.lower() not in PROTOCOLS:
        raise Invalid(f"protocol must be tcp or udp, got {text!r}")
    return text.lower()
