#!/usr/bin/env python3
"""Pack a directory of wheels into one tar file with reproducible bytes.

    pack-wheelhouse.py SRC_DIR DEST.tar

The Ansible role sends the wheelhouse to each host as this one file (one
transfer instead of one per wheel); the same files always give the same
bytes (sorted names, zero times and owners), so an unchanged wheelhouse is
never sent again. DEST is rewritten only when its content would change.
Prints "changed" when it wrote DEST.
"""

import io
import sys
import tarfile
from pathlib import Path


def pack(source: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(source.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def main(argv: list) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, dest = Path(argv[0]), Path(argv[1])
    if not source.is_dir():
        print(f"pack-wheelhouse.py: {source} is not a directory", file=sys.stderr)
        return 2
    if not any(source.glob("taskorg-*.whl")):
        print(f"pack-wheelhouse.py: no taskorg-*.whl in {source}", file=sys.stderr)
        return 2
    data = pack(source)
    if dest.exists() and dest.read_bytes() == data:
        return 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    print("changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
