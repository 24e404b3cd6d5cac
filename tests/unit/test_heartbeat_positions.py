"""A heartbeat's replica position is not trusted as it comes (issue 15): one far beyond the highest
granted epoch is refused, since an election raises the epoch past every replica's."""

from __future__ import annotations

from pathlib import Path

from serviceapps import SECRET, dns_app
from test_deep_bodies import NODE_ENVIRON

from taskorg.dns.service import MAX_EPOCH_AHEAD


def test_a_replica_epoch_far_beyond_the_granted_one_is_refused_naming_it(tmp_path: Path) -> None:
    with dns_app(tmp_path) as app:
        client = app.test_client()

        def beat(epoch: int) -> tuple[int, str]:
            answer = client.post("/v1/heartbeat", json={"node": "node1", "address": "127.0.0.2",
                                                         "replica": {"epoch": epoch, "seq": 5}},
                                 headers={"Authorization": f"Bearer {SECRET}"}, environ_base=NODE_ENVIRON)
            return answer.status_code, (answer.json or {}).get("error", "")

        assert beat(1)[0] == 200
        assert beat(1 + MAX_EPOCH_AHEAD)[0] == 200  # a few epochs ahead: lost Raft entries can do that
        status, error = beat(2 ** 62)
        assert status == 400 and "replica epoch 4611686018427387904 is beyond the highest granted" in error


def test_a_member_is_found_by_its_name_and_nothing_else_matches(tmp_path: Path) -> None:
    """Every heartbeat looks its node up by number (no scan of all members)."""
    from serviceapps import dns_service

    with dns_service(tmp_path) as service:
        service.register("aa:01@127.0.0.2", "127.0.0.2", {"zone": "a"})
        found = service.registry.member("node1")
        assert found is not None and found.address == "127.0.0.2" and found.labels == {"zone": "a"}
        for name in ("node2", "node", "nodeX", "node١", "1", "xnode1"):
            assert service.registry.member(name) is None
