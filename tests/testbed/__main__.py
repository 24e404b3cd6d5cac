"""Bring a testbed up by hand, to look around in it.

    python -m tests.testbed image              build (or reuse) the host image, print its tag
    python -m tests.testbed up [DIR]           hosts + the playbook; kept running, state in DIR
    python -m tests.testbed playbook DIR [ARGS]  run site.yml again against a kept testbed
    python -m tests.testbed down DIR           remove a kept testbed

A kept testbed is also removed by the next `up` or test run once the process
that made it is gone (its containers carry that process's pid).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .hosts import Testbed, log
from .image import ensure_image
from .wheelhouse import build_wheelhouse


def up(workdir: Path) -> Testbed:
    started = time.monotonic()
    testbed = Testbed(ensure_image(), workdir=workdir)
    testbed.up()
    build_wheelhouse(testbed.workdir / "wheelhouse")
    testbed.write_inventory()
    run = testbed.run_playbook()
    print(run.output[-4000:])
    log(f"testbed up in {time.monotonic() - started:.0f}s; state in {testbed.workdir}")
    for host in testbed.hosts.values():
        print(f"  {host.name:6} {host.address:15} docker exec -it {host.container} bash")
    print(f"  ssh {' '.join(testbed.ssh_options)} root@<address>")
    return testbed


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, args = argv[0], argv[1:]
    if command == "image":
        print(ensure_image())
    elif command == "up":
        up(Path(args[0]) if args else Path(f"/tmp/taskorg-testbed-{time.strftime('%H%M%S')}"))
    elif command == "playbook":
        testbed = Testbed.load(Path(args[0]))
        build_wheelhouse(testbed.workdir / "wheelhouse")
        testbed.write_inventory()
        run = testbed.run_playbook(*args[1:])
        print(run.output)
        return run.returncode
    elif command == "down":
        Testbed.load(Path(args[0])).teardown()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
