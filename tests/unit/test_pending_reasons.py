"""Why a task waits, as the active master's plans leave it (taskorg.master.reasons): pure logic."""

from __future__ import annotations

from taskorg.master.reasons import PendingReasons


def test_a_quiet_plan_keeps_the_other_tasks_reasons_and_drops_the_placed() -> None:
    reasons = PendingReasons()
    reasons.planned(seen={"a", "b", "c"}, placed=set(), reasons={"a": "no room", "b": "no GPU", "c": "no label"},
                    full=True)
    before = reasons.by_task
    reasons.planned(seen={"d", "b"}, placed={"b"}, reasons={"d": "no room"}, full=False)
    assert reasons.by_task == {"a": "no room", "c": "no label", "d": "no room"}
    assert before == {"a": "no room", "b": "no GPU", "c": "no label"}  # readers' dict never changed under them


def test_a_full_plan_drops_the_reasons_of_tasks_it_did_not_see() -> None:
    reasons = PendingReasons()
    reasons.planned(seen={"a", "b"}, placed=set(), reasons={"a": "no room", "b": "no GPU"}, full=True)
    reasons.planned(seen={"b", "e"}, placed=set(), reasons={"e": "no room"}, full=True)
    assert reasons.by_task == {"b": "no GPU", "e": "no room"}  # a: placed, cancelled or finished meanwhile
    rows = [{"id": "b", "status": "pending"}, {"id": "e", "status": "cancelled"}, {"id": "z", "status": "pending"}]
    reasons.on(rows)
    assert [r["reason"] for r in rows] == ["no GPU", None, None]
