"""The cluster policy at the slave (taskorg/slave/runner/policy.py), without dockerd.

Proves: a start order's spec is re-validated with the spec package's own task
checks and the node's copy of the policy, and refused with a message naming
the field: privileged, host networking, a network that is not bridge, none or
host, binds (of /, the docker socket, a symlink to it, a directory holding it,
/etc, taskorg's state dir), added NET_RAW, a published port in the cluster's
own range or below 1024; what the policy allows passes, but never the docker
socket or taskorg's state; the node's settings give the policy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from taskorg.config import load_config
from taskorg.slave.runner import NodePolicy, OrderError, check_start
from taskorg.spec import Port, SpecPolicy, TaskSpec, Volume

SPEC = TaskSpec(name="t", image="img:1")
STRICT = NodePolicy(state_dir="/var/lib/taskorg")
LENIENT = NodePolicy(spec=SpecPolicy(True, True, True), allow_low_ports=True, state_dir="/var/lib/taskorg")
LINKS = {"/tmp/sock": "/run/docker.sock", "/var/run/docker.sock": "/run/docker.sock", "/var/run": "/run"}


def resolve(path: str) -> str:
    """A node whose /tmp/sock is a symlink to the docker socket (as /var/run is to /run)."""
    return LINKS.get(path, path)


def refused(policy: NodePolicy = STRICT, **changes: Any) -> str:
    with pytest.raises(OrderError) as info:
        check_start(replace(SPEC, **changes), policy, resolve)
    return str(info.value)


def bind(source: str) -> tuple[Volume, ...]:
    return (Volume(source, "/host", type="bind"),)


def test_a_plain_spec_passes_and_so_does_what_the_policy_allows() -> None:
    check_start(SPEC, STRICT, resolve)
    check_start(replace(SPEC, volumes=(Volume("data", "/data"), Volume("", "/run", type="tmpfs")),
                        ports=(Port(80, 8080), Port(53))), STRICT, resolve)
    check_start(replace(SPEC, privileged=True, network="host", volumes=bind("/srv/in"), cap_add=("NET_RAW",),
                        ports=()), LENIENT, resolve)
    check_start(replace(SPEC, ports=(Port(80, 80),)), LENIENT, resolve)


@pytest.mark.parametrize("changes, named", [
    ({"privileged": True}, "order field 'spec.privileged': privileged containers are refused"),
    ({"network": "host"}, "order field 'spec.network': host networking is refused"),
    ({"network": "container:0123abcd"}, "order field 'spec.network': must be bridge, host or none"),
    ({"volumes": bind("/")}, "order field 'spec.volumes[0].source': host path / is refused: it gives the "
                             "container the node's docker engine (never allowed)"),
    ({"volumes": bind("/var/run/docker.sock")}, "order field 'spec.volumes[0].source': host path "
                                                "/var/run/docker.sock is refused: it gives the container"),
    ({"volumes": bind("/srv/in")}, "order field 'spec.volumes[0]': host path /srv/in is refused by the cluster "
                                   "policy (the cluster setting allow_host_paths: true allows it)"),
    ({"volumes": bind("/etc")}, "order field 'spec.volumes[0]'"),
    ({"cap_add": ("NET_RAW",)}, "order field 'spec.cap_add': adding NET_RAW refused by this node's policy"),
    ({"ports": (Port(80, 23335),)}, "order field 'spec.ports[0].host': port 23335 is refused: it is one of "
                                    "the cluster's own service ports (23333-23380 and those configured)"),
    ({"ports": (Port(80, 80),)}, "order field 'spec.ports[0].host': port 80 (below 1024) refused by this node's "
                                 "policy (the setting allow_low_ports: true allows it)"),
])
def test_the_strict_default_refuses_naming_the_field(changes: dict[str, Any], named: str) -> None:
    assert refused(**changes).startswith(named)


@pytest.mark.parametrize("source, why", [
    ("/", "it gives the container the node's docker engine"),
    ("/var/run/docker.sock", "it gives the container the node's docker engine"),
    ("/tmp/sock", "it gives the container the node's docker engine"),
    ("/var/run", "it gives the container the node's docker engine"),
    ("/var/lib/taskorg", "it holds taskorg's own state"),
    ("/var/lib/taskorg/slave/files", "it holds taskorg's own state"),
    ("/var/lib", "it holds taskorg's own state"),
])
def test_some_host_paths_are_never_allowed(source: str, why: str) -> None:
    message = refused(LENIENT, volumes=bind(source))
    assert message.startswith("order field 'spec.volumes[0].source': host path ") and why in message


def test_a_port_in_the_cluster_range_is_refused_even_when_low_ports_are_allowed() -> None:
    assert "the cluster's own service ports" in refused(LENIENT, ports=(Port(80, 23380),))


def test_the_policy_comes_from_the_node_settings() -> None:
    config = load_config(overrides={"allow_host_network": True, "allow_low_ports": True, "state_dir": "/srv/t",
                                    "webview_port": 23390}, environ={})
    policy = NodePolicy.from_config(config)
    assert policy.spec == SpecPolicy(allow_host_network=True)
    assert (policy.allow_low_ports, policy.state_dir) == (True, "/srv/t")
    assert set(range(23333, 23381)) | {53, 23390} == policy.service_ports
    check_start(replace(SPEC, network="host"), policy, resolve)
