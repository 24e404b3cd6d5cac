#!/usr/bin/env python3
"""Add the hashes of wheels built here to a wheelhouse's requirements.txt.

    hash-built-wheels.py WHEELHOUSE_DIR

requirements.txt pins every dependency with the sha256 of each file the
package index serves, and hosts install with `--require-hashes`. A package
the index serves only as source (pysyncobj) becomes a wheel built by
`pip wheel` on the machine that makes the wheelhouse, from that hash-checked
source; its wheel's hash is not in the file. This adds it, beside the index's
hashes, so an air-gapped host can install from the wheelhouse and still
refuses anything else. Prints the wheels it vouched for.
"""

import hashlib
import re
import sys
from pathlib import Path


def wheel_key(name: str) -> tuple:
    """('pysyncobj', '0.3.17') from 'pysyncobj-0.3.17-py3-none-any.whl' (names normalised)."""
    dist, version = name.split("-")[:2]
    return re.sub(r"[-_.]+", "-", dist).lower(), version


def vouch(requirements: str, wheels: dict) -> tuple:
    """The requirements text with a `--hash` line added to each pinned package that has a wheel
    here whose hash it lacks; and the names of those wheels."""
    lines = requirements.splitlines()
    added = []
    out = []
    current = None
    for line in lines:
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ \\]+)", line)
        if match:
            current = (re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(2))
        out.append(line)
        ends_entry = current and line.startswith("    --hash=") and not line.endswith("\\")
        if ends_entry:
            for name, digest in sorted(wheels.get(current, {}).items()):
                if digest not in requirements:
                    out[-1] = out[-1] + " \\"
                    out.append(f"    --hash=sha256:{digest}")
                    added.append(name)
            current = None
    return "\n".join(out) + "\n", added


def main(argv: list) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[0])
    requirements = folder / "requirements.txt"
    if not requirements.is_file():
        return 0
    wheels: dict = {}
    for wheel in sorted(folder.glob("*.whl")):
        wheels.setdefault(wheel_key(wheel.name), {})[wheel.name] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    text, added = vouch(requirements.read_text(), wheels)
    if added:
        requirements.write_text(text)
        print("\n".join(added))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
