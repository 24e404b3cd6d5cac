"""Private files: created 0600 in 0700 directories, written whole (temp, fsync, rename).

A key or token file half-written by a crash, or readable by another local
user for a moment, is the failure these helpers exist to rule out.
"""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: str | os.PathLike[str], narrow: bool = False) -> Path:
    """Make `path` (and missing parents) with mode 0700; `narrow` makes an existing one 0700 too
    (not by default: a shared folder such as a state directory may need to stay traversable)."""
    directory = Path(path)
    existed = directory.is_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if narrow or not existed:
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    return directory


def write_private(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> Path:
    """Replace `path` with `data` atomically: a reader sees the old file or the new, never a part."""
    target = Path(path)
    if not target.parent.is_dir():
        private_dir(target.parent)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an old temp file may have had another mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a power loss
    finally:
        os.close(dir_fd)
    return target
