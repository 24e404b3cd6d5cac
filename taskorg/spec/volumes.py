"""Mounts: named Docker volumes (`data:/data:ro`) and host paths (`/srv/in:/in`).

A host path (a bind) makes the container reach into its node's files, so it
is refused unless the cluster policy allows host paths; relative host paths
are refused outright, since they mean nothing on a cluster node.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from .checks import Invalid, check_keys, checked, optional, required, to_bool, want_list, want_str
from .errors import describe
from .model import Volume
from .sizes import parse_size
from .report import Reporter

VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]+$")

VOLUME_FORMS = "must be like name:/path, name:/path:ro or /host/path:/path"


def to_volumes(value: Any, rep: Reporter, allow_host_paths: bool) -> tuple[Volume, ...]:
    volumes: list[Volume] = []
    used: dict[str, int] = {}
    for index, item in enumerate(want_list(value)):
        item_rep = rep.at(index)
        volume = checked(_to_volume, item, item_rep, None)
        if volume is None:
            continue
        target = posixpath.normpath(volume.target)
        if target in used:
            item_rep.add(f"target {volume.target} is already used by volumes[{used[target]}]")
            continue
        if volume.is_bind and not allow_host_paths:
            item_rep.add(f"host path {volume.source} is refused by the cluster policy "
                         "(the cluster setting allow_host_paths: true allows it)")
        used[target] = index
        volumes.append(volume)
    return tuple(volumes)


def _to_volume(item: Any, rep: Reporter) -> Volume:
    if isinstance(item, str):
        return _volume_from_text(item)
    if isinstance(item, dict):
        return _volume_from_mapping(item, rep)
    raise Invalid(f"{VOLUME_FORMS}, got {describe(item)}")


def _volume_from_text(text: str) -> Volume:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise Invalid(f"{VOLUME_FORMS}, got {describe(text)}")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise Invalid(f"mode must be ro or rw, got {mode!r}")
    kind = _source_kind(source)
    _check_target(target)
    return Volume(source=source, target=target, read_only=mode == "ro", type=kind)


def _volume_from_mapping(data: dict[Any, Any], rep: Reporter) -> Volume:
    check_keys(data, ("source", "target", "read_only", "type", "size"), rep,
               {"read-only": "did you mean 'read_only'?"})
    if data.get("type") == "tmpfs":
        return _tmpfs_from_mapping(data, rep)
    if data.get("size") is not None:
        rep.at("size").add("is only for type: tmpfs")
    source = required(data, "source", rep, _volume_source, "", "a volume name or an absolute host path")
    target = required(data, "target", rep, lambda v, r: _check_target(want_str(v)), "", "like /data")
    read_only = optional(data, "read_only", rep, to_bool, False)
    kind = _source_kind(source) if source else "volume"
    declared = optional(data, "type", rep, _volume_type, kind)
    if source and declared != kind:
        rep.at("type").add(f"is {declared} but the source {source!r} is a "
                           f"{'host path' if kind == 'bind' else 'volume name'}")
    return Volume(source=source, target=target, read_only=read_only, type=kind)


def _tmpfs_from_mapping(data: dict[Any, Any], rep: Reporter) -> Volume:
    """A memory file system: no source, an optional size (bytes, or like 64M)."""
    if data.get("source") not in (None, ""):
        rep.at("source").add("a tmpfs has no source")
    target = required(data, "target", rep, lambda v, r: _check_target(want_str(v)), "", "like /tmp")
    return Volume(source="", target=target, type="tmpfs",
                  read_only=optional(data, "read_only", rep, to_bool, False),
                  size=optional(data, "size", rep, _tmpfs_size, None))


def _tmpfs_size(value: Any, rep: Reporter) -> int:
    try:
        size = parse_size(value)
    except ValueError as error:
        raise Invalid(str(error)) from None
    if size <= 0:
        raise Invalid(f"must be more than 0, got {describe(value)}")
    return size


def _volume_source(value: Any, rep: Reporter) -> str:
    _source_kind(want_str(value))
    return value


def _volume_type(value: Any, rep: Reporter) -> str:
    if value not in ("volume", "bind", "tmpfs"):
        raise Invalid(f"must be volume, bind or tmpfs, got {describe(value)}")
    return value


def _source_kind(source: str) -> str:
    """"bind" for a host path, "volume" for a named volume."""
    if source.startswith("/"):
        return "bind"
    if not source:
        raise Invalid("has no source: write a volume name or an absolute host path before the ':'")
    if source.startswith((".", "~")):
        raise Invalid(f"host path {source!r} must be absolute "
                      "(a relative path means nothing on a cluster node)")
    if not VOLUME_NAME.match(source):
        raise Invalid(f"volume name {source!r} must be 2 or more letters, digits, '_', '.' or '-', "
                      "starting with a letter or digit")
    return "volume"


def _check_target(target: str) -> str:
    if not target.startswith("/"):
        raise Invalid(f"target {target!r} must be an absolute path in the container")
    if posixpath.normpath(target) == "/":
        raise Invalid("target must not be / (the container's root)")
    return target
