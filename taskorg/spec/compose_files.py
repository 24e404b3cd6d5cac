"""Compose secrets and configs: declared at the top level, read now, mounted by services.

A file source is read beside the compose file (bounded, UTF-8); an
environment source comes from the variables; external ones need a store
taskorg does not have and are refused.
"""

from __future__ import annotations

from typing import Any, Mapping

from .checks import Invalid, checked
from .compose_env import read_small_text
from .compose_parts import ComposeContext, beside
from .errors import describe
from .files import MAX_FILE_BYTES
from .report import Reporter


def declared_files(value: Any, rep: Reporter, context: ComposeContext,
                    kind: str) -> dict[str, dict[str, Any] | None]:
    """Top-level secrets/configs: name -> {name, content} (None if refused), content read now."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        rep.add(f"must be a mapping of {kind}, got {describe(value)}")
        return {}
    declared: dict[str, dict[str, Any] | None] = {}
    for name, source in value.items():
        at = rep.at(str(name))
        content = checked(lambda v, r: _file_content(v, r, context, kind), source, at, None)
        # A refused declaration is reported once, here; services using it say nothing more.
        declared[str(name)] = None if content is None else {
            "name": str(source.get("name") or name), "content": content}
    return declared


def _file_content(source: Any, rep: Reporter, context: ComposeContext, kind: str) -> str | None:
    if not isinstance(source, dict):
        raise Invalid(f"must be a mapping with file or environment, got {describe(source)}")
    if source.get("external"):
        raise Invalid(f"external {kind} are not supported: there is no {kind[:-1]} store; "
                      "give the file with file:")
    if isinstance(source.get("file"), str):
        path = beside(source["file"], context, rep.at("file"))
        return None if path is None else read_small_text(path, MAX_FILE_BYTES)
    if isinstance(source.get("environment"), str):
        name = source["environment"]
        if name not in context.environ:
            raise Invalid(f"variable {name} is not set")
        return context.environ[name]
    if kind == "configs" and isinstance(source.get("content"), str):
        return source["content"]
    raise Invalid(f"must have file or environment{' or content' if kind == 'configs' else ''}")


def file_refs(value: Any, rep: Reporter, declared: Mapping[str, dict[str, Any] | None],
               kind: str) -> list[Any] | None:
    """A service's `secrets: [name | {source, target, uid, gid, mode}]` as file mounts."""
    if value is None:
        return None
    if not isinstance(value, list):
        rep.add(f"must be a list of {kind}, got {describe(value)}")
        return None
    mounts: list[Any] = []
    for index, ref in enumerate(value):
        options = ref if isinstance(ref, dict) else {"source": ref}
        source = options.get("source")
        if not isinstance(source, str) or source not in declared:
            rep.at(index).add(f"{describe(source)} is not declared under the top-level {kind}:")
            continue
        found = declared[source]
        if found is None:
            continue
        mount = dict(found)
        mount.update({key: options[key] for key in ("target", "uid", "gid", "mode") if options.get(key) is not None})
        mounts.append(mount)
    return mounts
