#!/usr/bin/env python3
"""Pack a directory of wheels into one tar file with reproducible bytes.

    pack-wheelhouse.py SRC_DIR DEST.tar

The Ansible role sends the wheelhouse to each host as this one file (one
transfer instead of one per wheel); the same files always give the same
bytes (sorted names, zero times and owners), so an unchanged wheelhouse is
never sent again. DEST is rewritten only when its content would change.
Prints "changed" when it wrote DEST.

The hosts install the dependencies with `pip install --require-hashes -r
requirements.txt`, so SRC_DIR must hold that file, and every dependency wheel
in it must have its sha256 listed there; a wheelhouse that would fail on every
host is refused here, on the controller, naming the wheels.
"""

import hashlib
import io
import re
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


def unvouched(source: Path) -> list:
    """The dependency wheels in SOURCE whose sha256 its requirements.txt does not list."""
    listed = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", (source / "requirements.txt").read_text()))
    return [wheel.name for wheel in sorted(source.glob("*.whl"))
            if not wheel.name.startswith("taskorg-") and hashlib.sha256(wheel.read_bytes()).hexdigest() not in listed]


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
    if not (source / "requirements.txt").is_file():
        print(f"pack-wheelhouse.py: no requirements.txt in {source}: the hosts install dependencies only as "
              "pinned with their hashes (copy the repository's requirements.txt there)", file=sys.stderr)
        return 2
    missing = unvouched(source)
    if missing:
        print(f"pack-wheelhouse.py: {source}/requirements.txt lists no hash for {', '.join(missing)}: the hosts "
              f"would refuse them (built here from source? run provisioning/hash-built-wheels.py {source})",
              file=sys.stderr)
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
