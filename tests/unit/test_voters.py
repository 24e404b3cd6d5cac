"""Voter choice: the witness and up to four regular nodes, 3 or 5 (odd), dead voters replaced after a grace.

Per docs/architecture.md "Every machine runs the DNS service": a 100-node
cluster has 5 voters; a silent voter keeps its seat within its grace and
loses it after; the count stays odd.
"""

from __future__ import annotations

import pytest

from taskorg.dns.voters import Machine, choose_voters, voter_count

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
