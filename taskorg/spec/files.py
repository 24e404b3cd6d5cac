"""Secrets and configs: small files whose content travels in the spec and is mounted read-only.

The content is text (UTF-8) and bounded, since it is stored and replicated
with the job. Secrets land in /run/secrets/NAME, configs in /NAME, unless a
target says otherwise.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from .checks import Invalid, check_keys, checked, optional, required, want_int, want_list, want_mapping, want_str
from .errors import describe
from .fields import to_absolute_path, to_user
from .model import FileMount
from .report import Reporter

FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_FILE_BYTES = 64 * 1024
FILE_FIELDS = ("name", "target", "content", "mode", "uid", "gid")


def to_file_mounts(value: Any, rep: Reporter, default_dir: str) -> tuple[FileMount, ...]:
    mounts: list[FileMount] = []
    targets: dict[str, int] = {}
    for index, item in enumerate(want_list(value)):
        mount = checked(lambda v, r: _to_file_mount(v, r, default_dir), item, rep.at(index), None)
        if mount is None:
            continue
        if mount.target in targets:
            rep.at(index).add(f"target {mount.target} is already used by [{targets[mount.target]}]")
            continue
        targets[mount.target] = index
        mounts.append(mount)
    return tuple(mounts)


def _to_file_mount(item: Any, rep: Reporter, default_dir: str) -> FileMount:
    data = want_mapping(item)
    check_keys(data, FILE_FIELDS, rep)
    name = required(data, "name", rep, to_file_name, "", "a name like db_password")
    target = optional(data, "target", rep, lambda v, r: _target(v, default_dir), None)
    return FileMount(
        name=name,
        target=target or posixpath.join(default_dir, name or "x"),
        content=required(data, "content", rep, to_file_content, "", "the file's text"),
        mode=optional(data, "mode", rep, to_mode, None),
        uid=optional(data, "uid", rep, to_user, None),
        gid=optional(data, "gid", rep, to_user, None),
    )


def to_mode(value: Any, rep: Reporter) -> int:
    """File permissions: 0440 (YAML 1.1 reads it as octal), 288, or the text "0440"."""
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        return int(value, 8)
    return want_int(value, 0, 0o777)


def to_file_name(value: Any, rep: Reporter) -> str:
    text = want_str(value)
    if not FILE_NAME.match(text):
        raise Invalid(f"must be 1 to 64 letters, digits, '_', '.' or '-', got {describe(text)}")
    return text


def _target(value: Any, default_dir: str) -> str:
    text = want_str(value)
    if not text.startswith("/"):  # compose: a relative target is under the default directory
        text = posixpath.join(default_dir, text)
    return to_absolute_path(posixpath.normpath(text), None)  # type: ignore[arg-type]


def to_file_content(value: Any, rep: Reporter) -> str:
    text = want_str(value)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise Invalid(f"must be at most {MAX_FILE_BYTES // 1024} KiB")
    return text
