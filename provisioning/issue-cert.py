#!/usr/bin/env python3
"""On the provisioning controller: the cluster CA (made once) and one host's certificate.

    issue-cert.py CA_DIR CLUSTER NAME ADDRESS SUFFIX

Needs only `cryptography` (Ansible's own Python has it) and the source tree.
Prints `issued` when it made a certificate, `kept` when the host's existing
one already names ADDRESS. The CA key never leaves CA_DIR (mode 0700).
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskorg.security import ca  # noqa: E402


def main(ca_dir: str, cluster: str, name: str, address: str, suffix: str) -> int:
    folder = Path(ca_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Ansible runs this for every host at once: one at a time, or two CAs could be made.
    with open(folder.parent / f".{folder.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return issue_locked(folder, cluster, name, address, suffix)


def issue_locked(folder: Path, cluster: str, name: str, address: str, suffix: str) -> int:
    if not (folder / ca.CA_KEY).exists():
        ca.init_ca(folder, cluster)
    cert = folder / "hosts" / f"{name}.pem"
    if cert.exists() and ca.describe(cert)["ip"] == [address]:
        print("kept")
        return 0
    ca.issue(folder, name, [address], suffix, folder / "hosts")
    print("issued")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(*sys.argv[1:]))
    except ca.CaError as exc:
        print(f"issue-cert: {exc}", file=sys.stderr)
        sys.exit(2)
