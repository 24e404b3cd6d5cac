"""Voter choice: the witness and up to four regular nodes, 3 or 5 (odd), dead voters replaced after a grace.

Per docs/architecture.md "Every machine runs the DNS service": a 100-node
cluster has 5 voters; a silent voter keeps its seat within its grace and
loses it after; the count stays odd.
"""

from __future__ import annotations

import pytest

from taskorg.dns.voters import Machine, VoterChange, apply, choose_voters, next_change, voter_count

GRACE = 10.0
WITNESS = "10.0.0.1"


def machines(count: int, silent: dict[int, float] | None = None, left: set[int] = frozenset()) -> list[Machine]:
    """The witness (number 0, 10.0.0.1) and regular nodes 1..count-1 at 10.0.0.(n+1)."""
    silent = silent or {}
    return [Machine(f"10.0.0.{n + 1}", n, silent.get(n, 0.0), n not in left) for n in range(count)]


@pytest.mark.parametrize("count, voters", [(1, 1), (2, 1), (3, 3), (4, 3), (5, 5), (6, 5), (100, 5)])
def test_the_count_is_odd_and_at_most_five(count: int, voters: int) -> None:
    assert voter_count(count) == voters
    assert len(choose_voters([], machines(count), GRACE)) == voters
    assert len(choose_voters([], machines(count), GRACE, size=3)) == min(voters, 3)


def test_the_witness_and_the_lowest_numbers_are_chosen_first() -> None:
    assert choose_voters([], machines(100), GRACE) == [WITNESS, "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]


def test_two_machines_have_one_voter_the_witness() -> None:
    """Two voters would survive no loss at all; one survives the regular node's."""
    assert choose_voters([], machines(2), GRACE) == [WITNESS]


def test_a_silent_voter_keeps_its_seat_within_the_grace() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    assert choose_voters(current, machines(4, silent={1: GRACE - 1}), GRACE) == current


def test_a_voter_silent_past_the_grace_is_replaced_by_a_living_node() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    assert choose_voters(current, machines(4, silent={1: GRACE + 1}), GRACE) == [WITNESS, "10.0.0.3", "10.0.0.4"]


def test_a_dead_witness_is_replaced_too_and_the_group_stays_odd() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    assert choose_voters(current, machines(3, silent={0: GRACE + 1}), GRACE) == ["10.0.0.2"]
    assert choose_voters(current, machines(5, silent={0: GRACE + 1}), GRACE) == ["10.0.0.2", "10.0.0.3",
                                                                                 "10.0.0.4"]


def test_the_witness_back_is_a_voter_again_when_the_group_can_grow() -> None:
    assert choose_voters(["10.0.0.2"], machines(3), GRACE) == [WITNESS, "10.0.0.2", "10.0.0.3"]


def test_a_machine_that_left_never_votes() -> None:
    assert choose_voters([WITNESS, "10.0.0.2", "10.0.0.3"], machines(4, left={1}), GRACE) == [
        WITNESS, "10.0.0.3", "10.0.0.4"]


def test_stable_voters_are_kept_over_lower_numbered_newcomers() -> None:
    """A seat is not taken from a living voter because a lower number came back: no churn."""
    current = [WITNESS, "10.0.0.3", "10.0.0.4"]
    assert choose_voters(current, machines(4), GRACE) == current
    assert choose_voters(current, machines(5), GRACE) == [WITNESS, "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]


def test_a_living_witness_takes_a_seat_back_from_the_highest_number() -> None:
    """The witness is the preferred arbiter and never a master: back, it votes again, even in a full group."""
    current = ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert choose_voters(current, machines(4), GRACE) == [WITNESS, "10.0.0.2", "10.0.0.3"]


# ---- one change at a time -----------------------------------------------------------------------
def converge(current: list[str], group: list[Machine], steps: int = 10) -> tuple[list[str], list[VoterChange]]:
    """Apply next_change until it has nothing to do; every intermediate group keeps a living majority."""
    living = {m.address for m in group if m.silent_for == 0}
    changes = []
    for _ in range(steps):
        change = next_change(current, group, GRACE)
        if change is None:
            return current, changes
        current = apply(current, change)
        changes.append(change)
        assert sum(a in living for a in current) * 2 > len(current), f"no living majority in {current}"
    raise AssertionError(f"no end after {steps} changes: {changes}")


def test_nothing_changes_in_a_healthy_group_of_the_configured_size() -> None:
    assert next_change([WITNESS, "10.0.0.2", "10.0.0.3"], machines(10), GRACE, size=3) is None


def test_a_group_smaller_than_its_size_grows_by_two() -> None:
    final, changes = converge([WITNESS, "10.0.0.2", "10.0.0.3"], machines(10))
    assert [(c.kind, c.address) for c in changes] == [("add", "10.0.0.4"), ("add", "10.0.0.5")]


def test_nothing_changes_within_the_grace() -> None:
    assert next_change([WITNESS, "10.0.0.2", "10.0.0.3"], machines(4, silent={2: GRACE}), GRACE) is None


def test_a_dead_voter_is_removed_first_then_a_living_node_added() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    group = machines(5, silent={1: GRACE + 1})
    first = next_change(current, group, GRACE)
    assert first == VoterChange("remove", "10.0.0.2", f"silent for {GRACE + 1:.1f} s, past the {GRACE:g} s grace")
    final, changes = converge(current, group)
    assert [(c.kind, c.address) for c in changes] == [("remove", "10.0.0.2"), ("add", "10.0.0.4")]
    assert final == [WITNESS, "10.0.0.3", "10.0.0.4"]


def test_a_dead_witness_is_replaced_and_takes_its_seat_back_when_alive() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    replaced, _ = converge(current, machines(4, silent={0: GRACE + 1}))
    assert sorted(replaced) == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    back, changes = converge(replaced, machines(4))
    assert [(c.kind, c.address) for c in changes] == [("add", WITNESS), ("remove", "10.0.0.4")]
    assert sorted(back) == [WITNESS, "10.0.0.2", "10.0.0.3"]


def test_five_voters_lose_two_and_get_two_living_ones() -> None:
    current = [WITNESS] + [f"10.0.0.{n}" for n in (2, 3, 4, 5)]
    final, changes = converge(current, machines(8, silent={2: GRACE + 5, 3: GRACE + 1}))
    assert [c.kind for c in changes] == ["remove", "remove", "add", "add"]
    assert changes[0].address == "10.0.0.3"  # the longest silent first
    assert final == [WITNESS, "10.0.0.2", "10.0.0.5", "10.0.0.6", "10.0.0.7"]


def test_no_change_without_a_living_majority() -> None:
    """Two of three voters dead: nothing can be committed, and removing one would not help anyway."""
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    assert next_change(current, machines(6, silent={1: GRACE + 1, 2: GRACE + 1}), GRACE) is None


def test_a_voter_unknown_to_the_cluster_is_silent() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.99"]
    assert next_change(current, machines(4), GRACE) == VoterChange(
        "remove", "10.0.0.99", "silent for inf s, past the 10 s grace")


def test_a_voter_that_left_is_replaced() -> None:
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    final, changes = converge(current, machines(4, left={2}))
    assert changes[0] == VoterChange("add", "10.0.0.4", "a living machine takes a free seat")
    assert changes[1] == VoterChange("remove", "10.0.0.3", "it left the cluster")
    assert final == [WITNESS, "10.0.0.2", "10.0.0.4"]


def test_three_machines_one_dead_shrink_to_one_voter_and_grow_back() -> None:
    """With no spare machine, a dead voter is dropped and the group stays odd; back, it votes again."""
    current = [WITNESS, "10.0.0.2", "10.0.0.3"]
    shrunk, _ = converge(current, machines(3, silent={2: GRACE + 1}))
    assert shrunk == [WITNESS]
    grown, _ = converge(shrunk, machines(3))
    assert sorted(grown) == [WITNESS, "10.0.0.2", "10.0.0.3"]


def test_a_hundred_machines_never_get_more_than_five_voters() -> None:
    final, _ = converge([WITNESS], machines(100))
    assert final == [WITNESS, "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
