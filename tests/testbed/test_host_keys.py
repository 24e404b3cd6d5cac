"""SSH host keys are checked: the playbook refuses a host whose key changed.

One testbed host; its keys are gathered into the testbed's known_hosts when it
boots (read through docker, hostkeys.py), and ssh and `ansible-playbook` use
that file alone with StrictHostKeyChecking=yes (ansible/ansible.cfg leaves
host key checking on). The host then gets new keys, as a reinstalled machine
or another machine answering at its address would show: the playbook stops
at that host before running anything on it, naming the failed verification.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from .checks import require_tools
from .hostkeys import replace_host_keys
from .hosts import Testbed
from .image import ensure_image

pytestmark = [pytest.mark.testbed, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    require_tools()
    testbed = Testbed(ensure_image(), nodes=0)
    try:
        testbed.up()
        yield testbed
    finally:
        testbed.teardown()


def test_a_host_whose_key_changed_is_refused(bed: Testbed) -> None:
    host = bed.dns_host
    # The key gathered at boot is trusted: ssh with strict checking gets in.
    assert bed.ssh(host.name, "hostname").stdout.strip() == host.name

    replace_host_keys(host.container)
    refused = bed.ssh(host.name, "true", check=False)
    assert refused.returncode != 0 and "host key" in refused.stderr.lower(), refused.stderr

    bed.write_inventory({"taskorg_wheelhouse": str(bed.workdir / "no-wheelhouse")})
    run = bed.run_playbook()
    assert run.returncode != 0
    assert run.recap[host.name]["unreachable"] == 1 and run.recap[host.name]["changed"] == 0, run.recap
    assert "Host key verification failed" in run.output, run.output[-3000:]
    # Nothing reached the host: no virtualenv, no secret.
    assert bed.exec(host.name, "ls /opt/taskorg /etc/taskorg 2>&1 || true").count("No such file") == 2
