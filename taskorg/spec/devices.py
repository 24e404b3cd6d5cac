"""What reaches past the container into its node: devices, GPUs and kernel capabilities.

A device node or a capability beyond Docker's defaults gives a container
power over its node, so the cluster policy decides: devices are host paths
(allow_host_paths), extra capabilities are as good as privileged mode
(allow_privileged). Dropping capabilities is always fine.
"""

from __future__ import annotations

import re
from typing import Any

from .checks import Invalid, check_keys, checked, optional, want_int, want_list, want_mapping, want_str
from .errors import describe
from .model import Device, GpuRequest, SpecPolicy
from .report import Reporter

DEVICE_PATH = re.compile(r"^/dev/[A-Za-z0-9_./-]+$")
PERMISSIONS = re.compile(r"^(?=.)r?w?m?$")
CAPABILITY = re.compile(r"^[A-Z_]{2,32}$")
# Docker's default set: adding one of these back (after cap_drop: [ALL]) grants nothing new.
DOCKER_DEFAULT_CAPS = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
GPU_FIELDS = ("count", "device_ids", "driver", "capabilities")
MAX_GPUS = 64


def to_devices(value: Any, rep: Reporter, policy: SpecPolicy) -> tuple[Device, ...]:
    devices: list[Device] = []
    for index, item in enumerate(want_list(value)):
        device = checked(_to_device, item, rep.at(index), None)
        if device is None:
            continue
        if not policy.allow_host_paths:
            rep.at(index).add(f"device {device.source} is refused by the cluster policy "
                              "(the cluster setting allow_host_paths: true allows it)")
        devices.append(device)
    return tuple(devices)


def _to_device(item: Any, rep: Reporter) -> Device:
    if isinstance(item, dict):
        check_keys(item, ("source", "target", "permissions"), rep)
        source = want_str(item.get("source"))
        parts = [source, item.get("target") or source, item.get("permissions") or "rwm"]
    else:
        parts = want_str(item).split(":")
        if len(parts) == 1:
            parts.append(parts[0])
        if len(parts) == 2:
            parts.append("rwm")
    if len(parts) != 3:
        raise Invalid(f"must be like /dev/ttyUSB0, /dev/ttyUSB0:/dev/ttyUSB0 or "
                      f"/dev/ttyUSB0:/dev/ttyUSB0:rwm, got {describe(item)}")
    source, target, permissions = parts
    for path in (source, target):
        if not isinstance(path, str) or not DEVICE_PATH.match(path):
            raise Invalid(f"must name a device under /dev, got {describe(path)}")
    if not isinstance(permissions, str) or not PERMISSIONS.match(permissions):
        raise Invalid(f"permissions must be letters of rwm (like rw), got {describe(permissions)}")
    return Device(source=source, target=target, permissions=permissions)


def to_gpus(value: Any, rep: Reporter) -> GpuRequest:
    """`all`, a count, or `{count | device_ids, driver, capabilities}` (Docker's --gpus)."""
    if value == "all" or value == -1:
        return GpuRequest(count=-1)
    if isinstance(value, int) and not isinstance(value, bool):
        return GpuRequest(count=want_int(value, 1, MAX_GPUS))
    data = want_mapping(value) if not isinstance(value, (str, int)) else None
    if data is None:
        raise Invalid(f"must be all, a number of GPUs, or a mapping with count or device_ids, "
                      f"got {describe(value)}")
    check_keys(data, GPU_FIELDS, rep)
    count = optional(data, "count", rep, _gpu_count, None)
    ids = optional(data, "device_ids", rep, _words, ())
    if count is not None and ids:
        rep.at("device_ids").add("cannot be combined with count (ask for a number or for these GPUs)")
    capabilities = optional(data, "capabilities", rep, _words, ("gpu",))
    if "gpu" not in capabilities:
        rep.at("capabilities").add(f"must include gpu (only GPUs can be requested), got {list(capabilities)}")
    return GpuRequest(count=count if count is not None or ids else -1, device_ids=ids,
                      driver=optional(data, "driver", rep, lambda v, r: want_str(v), None),
                      capabilities=capabilities)


def _gpu_count(value: Any, rep: Reporter) -> int:
    if value == "all" or value == -1:
        return -1
    return want_int(value, 1, MAX_GPUS)


def _words(value: Any, rep: Reporter) -> tuple[str, ...]:
    words = []
    for index, item in enumerate(want_list(value)):
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item:
            rep.at(index).add(f"must be a non-empty string, got {describe(item)}")
        elif item not in words:
            words.append(item)
    return tuple(words)


def to_capabilities(value: Any, rep: Reporter) -> tuple[str, ...]:
    """Capability names as Docker takes them: upper case, without CAP_ (ALL is allowed)."""
    names: list[str] = []
    for index, item in enumerate(want_list(value)):
        name = item.upper().removeprefix("CAP_") if isinstance(item, str) else None
        if name is None or not CAPABILITY.match(name):
            rep.at(index).add(f"must be a capability like NET_ADMIN or ALL, got {describe(item)}")
        elif name not in names:
            names.append(name)
    return tuple(names)


def check_capability_policy(cap_add: tuple[str, ...], rep: Reporter, policy: SpecPolicy) -> None:
    """Capabilities beyond Docker's defaults make a container (nearly) root on its node."""
    if policy.allow_privileged:
        return
    for name in cap_add:
        if name not in DOCKER_DEFAULT_CAPS:
            rep.add(f"adding {name} is refused by the cluster policy: only Docker's default "
                    "capabilities may be added back (the cluster setting allow_privileged: true "
                    "allows the others)")
