"""Messages between services (taskorg/protocol.py): typed at the door, a malformed one named clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskorg.master.api import create_app
from taskorg.protocol import (ContainerState, ProtocolError, ReplicationBatch, Report, RolePush, StartOrder,
                              convert, decode, encode, to_wire)
from taskorg.spec import parse_spec_text

ORDER = {"epoch": 1, "task_id": "t-1", "index": 0, "attempt": 1, "job": "j-1",
         "spec": {"name": "t", "image": "busybox"}, "env": {"TASKORG_INDEX": "0"}}


@pytest.mark.parametrize("change, named", [
    ({"task_id": None}, "field 'task_id'"),
    ({"index": "zero"}, "field 'index': expected `int`, got `str`"),
    ({"epoch": -1}, "field 'epoch': expected `int` >= 0"),
    ({"spec": {"name": "t", "image": "b", "ports": [{"host": 1}]}}, "missing field 'spec' (at spec.ports[0].container)"),
    ({"env": {"A": 1}}, "field 'env' (at env[...]): expected `str`, got `int`"),
])
def test_a_malformed_start_order_names_its_field(change: dict, named: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ProtocolError) as raised:
        decode(json.dumps({**ORDER, **change}), StartOrder, "start order")
    assert str(raised.value).startswith("start order: ") and named in str(raised.value)


def test_a_missing_field_and_bad_json_are_named() -> None:
    with pytest.raises(ProtocolError, match="report: missing field 'containers'"):
        decode(b'{"node": "node1"}', Report, "report")
    with pytest.raises(ProtocolError, match=r"report: field 'containers' \(at containers\[0\].index\)"):
        decode(b'{"node": "n", "containers": [{"task_id": "t", "index": "x", "status": "running"}]}', Report, "report")
    with pytest.raises(ProtocolError, match="role: "):
        decode(b'{"active": "yes", "epoch": 1}', RolePush, "role")
    with pytest.raises(ProtocolError, match="not valid JSON"):
        decode(b"{", Report, "report")


def test_the_start_order_keeps_the_wire_field_names_and_the_spec_its_type() -> None:
    spec = parse_spec_text("name: t\nimage: busybox\nports: ['8080:80']\n", source="t.yaml").tasks[0]
    order = StartOrder(epoch=1, task_id="t-1", index=0, attempt=1, spec=spec, job="j-1")
    wire = json.loads(encode(order))
    assert set(wire) == {"epoch", "task_id", "index", "attempt", "spec", "job", "env"}
    assert wire["spec"] == spec.to_dict()  # the canonical spec dict, as before
    assert decode(encode(order), StartOrder).spec == spec


def test_a_runner_state_converts_and_a_batch_omits_what_it_does_not_carry() -> None:
    runner_state = {"task_id": "t-1", "index": 0, "attempt": 1, "epoch": 1, "job": None, "container_id": "c",
                    "name": "x", "status": "exited", "exit_code": 0, "started_at": None, "finished_at": None,
                    "image": "busybox", "error": None, "result": {"n": 1}, "result_error": None}
    assert convert(runner_state, ContainerState).result == {"n": 1}
    assert to_wire(ReplicationBatch(epoch=2, entries=[])) == {"epoch": 2}


def test_a_malformed_cluster_message_is_a_400_naming_the_field(tmp_path: Path) -> None:
    from tickharness import TickHarness

    harness = TickHarness(tmp_path)
    client = create_app(harness.engine).test_client()
    auth = {"Authorization": "Bearer secret"}
    bad = client.post("/v1/reports", data=b'{"node": "node1", "containers": [{"task_id": "t"}]}', headers=auth)
    assert bad.status_code == 400 and "missing field 'containers' (at containers[0].index)" in bad.json["error"]
    good = client.post("/v1/reports", json={"node": "node1", "containers": []}, headers=auth)
    assert good.status_code == 200 and good.json == {"epoch": 1, "stop": [], "removed_jobs": []}
    assert client.get("/v1/tasks/t-nope", headers=auth).json == {"error": "no such task: t-nope"}
    harness.close()


def test_every_spec_field_crosses_the_wire_as_the_canonical_form() -> None:
    """The start order encodes the TaskSpec itself: its JSON must stay the canonical dict, field for field."""
    from test_spec_service_fields import full_job

    for spec in full_job().tasks:
        order = StartOrder(epoch=1, task_id="t-1", index=0, attempt=1, spec=spec)
        assert json.loads(encode(order))["spec"] == json.loads(json.dumps(spec.to_dict()))
        assert decode(encode(order), StartOrder).spec == spec


def test_heartbeats_and_registrations_are_typed_and_addresses_are_addresses() -> None:
    from taskorg.protocol import Heartbeat, Registration, checked_address

    beat = decode(b'{"node": "node2", "address": "127.0.1.3", "replica": {"epoch": 2, "seq": 40}}', Heartbeat)
    assert (beat.node, beat.replica.epoch, beat.replica.seq) == ("node2", 2, 40)
    with pytest.raises(ProtocolError, match="heartbeat: field 'replica'"):
        decode(b'{"node": "node2", "replica": {"epoch": "x", "seq": 1}}', Heartbeat, "heartbeat")
    with pytest.raises(ProtocolError, match="field 'node'"):
        decode(b'{"node": "node2\\nmaster"}', Heartbeat, "heartbeat")
    # A newline in an address once wrote a second master line into the hosts file.
    with pytest.raises(ProtocolError, match="field 'address'"):
        decode(b'{"identity": "x", "address": "10.6.6.6 master.taskorg.internal\\n10.6.6.7"}', Registration,
               "registration")
    with pytest.raises(ProtocolError, match="not an IP address"):
        checked_address("1:2:3", "registration")
    assert checked_address("127.0.1.3", "heartbeat") == "127.0.1.3"



def test_telemetry_disks_are_typed_at_the_door() -> None:
    from taskorg.protocol import Telemetry

    sample = convert({"disk": {"mount": "/", "total": 100, "used": 80, "percent": 88.9},
                      "docker_disk": None}, Telemetry)
    assert sample.disk is not None and sample.disk.percent == 88.9 and sample.docker_disk is None
    with pytest.raises(ProtocolError, match="'docker_disk'"):
        convert({"docker_disk": {"mount": "/srv", "total": "big", "used": 1, "percent": 1.0}}, Telemetry)
