"""Who this machine is: its MAC address (via getmac), stable across restarts.

Several test nodes on one machine share the loopback "MAC" 00:00:00:00:00:00,
so where the MAC is missing or all zeros the identity is `MAC@address`.
"""

from __future__ import annotations

import getmac
import psutil


def interface_for(address: str) -> str | None:
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address == address for a in addrs):
            return name
    # 127.0.0.0/8 is all routed through lo, though lo only lists 127.0.0.1.
    return "lo" if address.startswith("127.") else None


def node_identity(address: str) -> str:
    interface = interface_for(address)
    mac = getmac.get_mac_address(interface=interface) if interface else None
    if not mac or mac.replace(":", "").strip("0") == "":
        return f"{mac or '00:00:00:00:00:00'}@{address}"
    return mac
