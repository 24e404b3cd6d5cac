"""A finished task's result: the JSON it wrote to its result file, read so that no task can hurt.

The file is read only when it is one regular file (Docker's stat of the path,
before any byte is fetched): a directory, a symlink, a fifo or a device is
answered with an error naming it, never followed or walked. The archive is
streamed with a byte cap, so a result that grows after the stat cannot take
the slave's memory either. (A task that made its result path a directory
once had the slave read the whole tree, crash, restart and read it again.)
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from docker.errors import NotFound
from docker.models.containers import Container

MAX_RESULT_BYTES = 64 * 1024  # results are small summaries; data goes to /shared
# Nesting a result may have: deeper, the decoders of every later hop (the slave's own, the master's
# report, its task views) would need the stack 64 KiB of `[` takes (a RecursionError on each report).
MAX_RESULT_DEPTH = 64
TAR_OVERHEAD = 16 * 1024  # headers (a PAX one included) and end blocks around one file
CHUNK = 8 * 1024
# Go's os.FileMode type bits, as Docker's stat of a path reports them.
MODE_KINDS = {1 << 31: "a directory", 1 << 27: "a symlink", 1 << 26: "a device", 1 << 25: "a fifo",
              1 << 24: "a socket", 1 << 21: "a character device", 1 << 19: "not a regular file"}

Result = tuple[Any, "str | None"]


def read_result(container: Container, path: str, cap: int = MAX_RESULT_BYTES) -> Result:
    """(value, error): the result, (None, None) when there is none; docker's APIError passes
    through (the engine may answer later)."""
    try:
        stream, stat = container.get_archive(path, chunk_size=CHUNK)
    except NotFound:
        return None, None  # the task wrote no result: that is allowed
    try:
        problem = _not_a_small_file(stat or {}, path, cap)
        if problem:
            return None, problem
        data = _capped(stream, cap + TAR_OVERHEAD)
    finally:
        stream.close()
    if data is None:
        return None, f"result file {path} is larger than {cap} bytes"
    return _parse(data, path, cap)


def _not_a_small_file(stat: dict[str, Any], path: str, cap: int) -> str | None:
    mode = int(stat.get("mode") or 0)
    kind = next((name for bit, name in MODE_KINDS.items() if mode & bit), None)
    if kind:
        return f"result file {path} is {kind}, not one regular file: not read"
    if int(stat.get("size") or 0) > cap:
        return f"result file {path} is larger than {cap} bytes"
    return None


def _capped(stream: Any, limit: int) -> bytes | None:
    """The stream's bytes, or None as soon as they pass `limit`."""
    buffer = bytearray()
    for chunk in stream:
        buffer += chunk
        if len(buffer) > limit:
            return None
    return bytes(buffer)


def _parse(data: bytes, path: str, cap: int) -> Result:
    too_deep = f"result file {path} nests deeper than {MAX_RESULT_DEPTH} levels: not read"
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = archive.next()
            if member is None:
                return None, None
            if not member.isreg():
                return None, f"result file {path} is not one regular file: not read"
            if member.size > cap:
                return None, f"result file {path} is larger than {cap} bytes"
            handle = archive.extractfile(member)
            text = handle.read().decode() if handle else ""
        value = json.loads(text) if text.strip() else None
    except (ValueError, UnicodeDecodeError, tarfile.TarError) as exc:
        return None, f"result file {path} is not JSON: {exc}"
    except RecursionError:
        return None, too_deep
    return (None, too_deep) if _deeper_than(value, MAX_RESULT_DEPTH) else (value, None)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects in `value` nest deeper than `limit` (iterative: no stack to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False
