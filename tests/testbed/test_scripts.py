"""The provisioning scripts without Ansible, as a person would run them over SSH.

A DNS host and one regular host (fresh testbed hosts) get the repository's
provisioning/ and systemd/ folders and an offline wheelhouse copied over;
`prepare-dns-node.sh` and `prepare-node.sh` make a working one-node cluster,
and running them again changes nothing.
"""

from __future__ import annotations

import subprocess
import time
from typing import Iterator

import pytest

from .checks import assert_all_units_active, require_tools, resolve
from .hosts import REPO_ROOT, Testbed, log, wait_for
from .image import ensure_image
from .wheelhouse import build_wheelhouse

# The module fixture (image, boot, playbook) counts toward the first test: room for a busy machine.
pytestmark = [pytest.mark.testbed, pytest.mark.timeout(1500)]

SUFFIX = "scripts.taskorg.internal"
REMOTE = "/root/taskorg"


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    require_tools()
    testbed = Testbed(ensure_image(), nodes=1)
    try:
        testbed.up()
        wheelhouse = build_wheelhouse(testbed.workdir / "wheelhouse")
        for host in testbed.hosts.values():
            # What a person copies to a machine: the two folders and the wheels.
            pack = subprocess.run(["tar", "-c", "-C", str(REPO_ROOT), "provisioning", "systemd",
                                   "-C", str(wheelhouse.parent), wheelhouse.name],
                                  capture_output=True, check=True, timeout=60).stdout
            testbed.exec(host.name, f"mkdir -p {REMOTE} && tar -x -C {REMOTE}", input=pack)
        yield testbed
    finally:
        testbed.teardown()


def changes(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("changed:")]


def test_prepare_scripts_make_a_cluster_and_are_idempotent(bed: Testbed) -> None:
    dns, node = bed.dns_host, bed.node_hosts[0]
    dns_cmd = (f"sh {REMOTE}/provisioning/prepare-dns-node.sh --address {dns.address} --suffix {SUFFIX} "
               f"--wheelhouse {REMOTE}/wheelhouse --offline --generate-secret --generate-ca")
    node_cmd = (f"sh {REMOTE}/provisioning/prepare-node.sh --address {node.address} --dns-address {dns.address} "
                f"--suffix {SUFFIX} --secret-file /root/cluster-secret --tls-dir /root/node-tls "
                f"--wheelhouse {REMOTE}/wheelhouse --offline --label rack=a")

    started = time.monotonic()
    first = bed.ssh(dns.name, dns_cmd, timeout=300)
    assert "changed: generated the cluster secret" in first.stdout, first.stdout + first.stderr
    secret = bed.ssh(dns.name, "cat /etc/taskorg/secret").stdout
    bed.exec(node.name, "umask 077 && cat > /root/cluster-secret", input=secret.encode())
    # The node's certificate, issued where the CA is (the DNS node), carried over like the secret.
    bed.ssh(dns.name, f"/opt/taskorg/venv/bin/taskorg ca issue node1 --address {node.address} "
                      "--dir /etc/taskorg/ca --out /root/node-tls")
    for name in ("ca.pem", "node1.pem", "node1.key"):
        content = bed.ssh(dns.name, f"cat /root/node-tls/{name}").stdout
        bed.exec(node.name, f"umask 077 && mkdir -p /root/node-tls && cat > /root/node-tls/{name}",
                 input=content.encode())
    first_node = bed.ssh(node.name, node_cmd, timeout=300)
    assert changes(first_node.stdout), first_node.stdout + first_node.stderr
    log(f"both hosts prepared by the scripts in {time.monotonic() - started:.1f}s")

    master = wait_for(f"master.{SUFFIX} to name the node", lambda: resolve(bed, f"master.{SUFFIX}"), timeout=60)
    assert master == [node.address]
    wait_for("every unit active", lambda: assert_all_units_active(bed) or True, timeout=60)
    config = bed.exec(node.name, "cat /etc/taskorg/taskorg.yaml")
    assert "rack:" in config and f'dns_address: "{dns.address}"' in config

    again_dns = bed.ssh(dns.name, dns_cmd, timeout=300)
    again_node = bed.ssh(node.name, node_cmd, timeout=300)
    assert changes(again_dns.stdout) == [] and changes(again_node.stdout) == [], (
        f"a second run changed something:\n{again_dns.stdout}\n{again_node.stdout}")
    assert_all_units_active(bed)
