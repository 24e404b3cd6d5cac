"""Published ports, in compose's short forms and as a mapping.

Short forms: `80`, `"8080:80"`, `"8080:80/udp"`, `"127.0.0.1:8080:80"`,
`"127.0.0.1::80"`, `"[::1]:8080:80"` and ranges `"8000-8009:8000-8009"`
(one Port per number). A mapping is `{host, container, protocol, host_ip}`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .checks import Invalid, check_keys, checked, optional, required, want_int, want_list, want_str
from .errors import describe
from .model import PROTOCOLS, Port
from .report import Reporter

PORT_TEXT = re.compile(r"^(?:(?P<ip>\[[0-9A-Fa-f:.]+\]|[0-9.]+):(?=[0-9-]*:))?"
                       r"(?:(?P<host>\d{1,5}(?:-\d{1,5})?)?:)?"
                       r"(?P<container>\d{1,5}(?:-\d{1,5})?)(?:/(?P<protocol>[A-Za-z]{1,8}))?$")
MAX_RANGE = 100

PORT_HINTS = {"target": "did you mean 'container'?", "published": "did you mean 'host'?"}
PORT_FORMS = "must be like 8080:80, 8080:80/udp, 127.0.0.1:8080:80, 8000-8009:8000-8009 or 80"


def to_ports(value: Any, rep: Reporter) -> tuple[Port, ...]:
    ports: list[Port] = []
    used: dict[tuple[int, str], int] = {}
    for index, item in enumerate(want_list(value)):
        item_rep = rep.at(index)
        for port in checked(_to_ports, item, item_rep, []):
            if port.host is not None:
                key = (port.host, port.protocol)
                if key in used:
                    item_rep.add(f"host port {port.host}/{port.protocol} is already used by ports[{used[key]}]")
                    break
                used[key] = index
            ports.append(port)
    return tuple(ports)


def _to_ports(item: Any, rep: Reporter) -> list[Port]:
    if isinstance(item, int) and not isinstance(item, bool):
        return [Port(container=_port_number(item, "port"))]
    if isinstance(item, str):
        return _ports_from_text(item)
    if isinstance(item, dict):
        return [_port_from_mapping(item, rep)]
    raise Invalid(f"{PORT_FORMS} or a mapping with host, container and protocol, got {describe(item)}")


def _ports_from_text(text: str) -> list[Port]:
    match = PORT_TEXT.match(text.strip())
    if not match:
        raise Invalid(f"{PORT_FORMS}, got {describe(text)}")
    host_ip = None if match["ip"] is None else to_host_ip(match["ip"].strip("[]"), None)  # type: ignore[arg-type]
    containers = _numbers(match["container"], "container port")
    hosts: list[int | None] = [None] * len(containers)
    if match["host"]:
        hosts = list(_numbers(match["host"], "host port"))
        if len(hosts) != len(containers):
            raise Invalid(f"the host range has {len(hosts)} ports but the container range "
                          f"{len(containers)}, got {describe(text)}")
    protocol = _protocol(match["protocol"] or "tcp")
    return [Port(container=container, host=host, protocol=protocol, host_ip=host_ip)
            for host, container in zip(hosts, containers)]


def _numbers(text: str, what: str) -> list[int]:
    first, _, last = text.partition("-")
    low = _port_number(int(first), what)
    high = _port_number(int(last), what) if last else low
    if high < low:
        raise Invalid(f"{what} range {text} runs backwards")
    if high - low >= MAX_RANGE:
        raise Invalid(f"{what} range {text} holds more than {MAX_RANGE} ports")
    return list(range(low, high + 1))


def _port_from_mapping(data: dict[Any, Any], rep: Reporter) -> Port:
    check_keys(data, ("host", "container", "protocol", "host_ip"), rep, PORT_HINTS)
    container = required(data, "container", rep, _mapped_port, 0, "the port inside the container, like 80")
    host = optional(data, "host", rep, _mapped_port, None)
    protocol = optional(data, "protocol", rep, lambda v, r: _protocol(want_str(v)), "tcp")
    host_ip = optional(data, "host_ip", rep, to_host_ip, None)
    return Port(container=container, host=host, protocol=protocol, host_ip=host_ip)


def to_host_ip(value: Any, rep: Reporter) -> str:
    """An IPv4 or IPv6 address of the node to bind (parsed, never trusted as text)."""
    try:
        return str(ipaddress.ip_address(want_str(value)))
    except ValueError:
        raise Invalid(f"host_ip must be an IP address like 127.0.0.1, got {describe(value)}") from None


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
