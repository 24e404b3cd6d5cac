"""Compose volumes into taskorg volumes: named (declared at the top level), bind, tmpfs.

A named volume must be declared under the top-level `volumes:` (compose's
own rule), and lives on the node that runs the task. A relative bind path is
left for the volume check to refuse: it means nothing on a cluster node.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .errors import describe
from .report import Reporter

TMPFS_OPTION = re.compile(r"^size=(.+)$")


def declared_volumes(value: Any, rep: Reporter) -> dict[str, str]:
    """Top-level volumes: compose name -> the Docker volume name (its `name:` or its key)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        rep.add(f"must be a mapping of volume names, got {describe(value)}")
        return {}
    names: dict[str, str] = {}
    for name, options in value.items():
        options = options or {}
        at = rep.at(str(name))
        if not isinstance(options, dict):
            at.add(f"must be a mapping (or empty), got {describe(options)}")
            continue
        driver = options.get("driver", "local")
        if driver != "local":
            at.at("driver").add(f"{describe(driver)} is not supported: only local volumes, "
                                "each node keeps its own")
        if options.get("driver_opts"):
            at.at("driver_opts").add("not supported: volumes are plain local volumes")
        names[str(name)] = str(options.get("name") or name)
    return names


def convert_volumes(value: Any, rep: Reporter, declared: Mapping[str, str]) -> Any:
    """The service's volumes in taskorg's forms (a value that is not a list is left for the task check)."""
    if value is None:
        return []
    if not isinstance(value, list):
        return value  # the task check names the mistake
    return [_volume(item, rep.at(index), declared, index) for index, item in enumerate(value)]


def _volume(item: Any, rep: Reporter, declared: Mapping[str, str], index: int) -> Any:
    if isinstance(item, str):
        return _short(item, rep, declared, index)
    if isinstance(item, dict):
        return _long(item, rep, declared, index)
    return item


def _short(text: str, rep: Reporter, declared: Mapping[str, str], index: int) -> Any:
    parts = text.split(":")
    if len(parts) == 1:  # an anonymous volume: a target only
        return {"source": _anonymous(rep, index), "target": text}
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) > 2 else []
    return {"source": _named(source, rep, declared), "target": target, "read_only": "ro" in options}


def _long(data: dict[Any, Any], rep: Reporter, declared: Mapping[str, str], index: int) -> Any:
    kind = data.get("type", "volume")
    volume: dict[str, Any] = {"target": data.get("target"), "read_only": bool(data.get("read_only", False))}
    if kind == "tmpfs":
        options = data.get("tmpfs")
        volume.update(type="tmpfs", size=options.get("size") if isinstance(options, dict) else None)
        return volume
    if kind not in ("volume", "bind"):
        rep.at("type").add(f"{describe(kind)} is not supported (volume, bind or tmpfs)")
    source = data.get("source")
    if kind == "volume" and not source:
        source = _anonymous(rep, index)
    elif kind == "volume" and isinstance(source, str):
        source = _named(source, rep, declared)
    volume.update(source=source, type=kind)
    return volume


def _named(source: str, rep: Reporter, declared: Mapping[str, str]) -> str:
    """A named volume must be declared; host paths pass to the volume check as they are."""
    if not source or source.startswith(("/", ".", "~")):
        return source
    if source not in declared:
        rep.add(f"volume {source!r} is not declared under the top-level volumes:")
        return source
    return declared[source]


def _anonymous(rep: Reporter, index: int) -> str:
    service = str(rep.path[1]) if len(rep.path) > 1 else "task"
    name = f"{service}-anonymous-{index}"
    rep.warn(f"an anonymous volume becomes the named volume {name} on its node")
    return name


def convert_tmpfs(value: Any, rep: Reporter) -> list[Any]:
    """The service key `tmpfs: /run` or `[/run, /tmp:size=64m]` as tmpfs volumes."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        rep.add(f"must be a path or a list of paths, got {describe(value)}")
        return []
    volumes: list[Any] = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            rep.at(index).add(f"must be a path like /run or /tmp:size=64m, got {describe(item)}")
            continue
        target, _, options = item.partition(":")
        size = None
        for option in filter(None, options.split(",")):
            match = TMPFS_OPTION.match(option)
            if match:
                size = match.group(1)
        volumes.append({"type": "tmpfs", "target": target, "size": size})
    return volumes
