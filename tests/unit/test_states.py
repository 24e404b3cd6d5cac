"""Restart policies and task status: the rules of taskorg/master/states.py.

Proves: `always` restarts after any stop; `on-failure` with max_attempts N
restarts a failing instance N times after its first run (docker's
on-failure:N) and then fails it, and a clean exit succeeds; `never` ends on
the first stop; a container that could not start counts as a failure even
without an exit code; the crash-loop back-off doubles and is capped at ten
seconds (and keeps working for a task that restarts for ever); a task's status
follows its instances as docs/api.md says.
"""

from __future__ import annotations


import pytest

from taskorg.master.states import (MAX_BACKOFF, TERMINAL, RestartDecision, counted_restarts, restart_decision,
                                   task_status)
from taskorg.spec import TaskSpec, parse_spec_text


def spec(restart: str | None) -> TaskSpec:
    """A task spec with the given `restart:` YAML value (None: not set)."""
    text = "name: t\nimage: busybox\n" + (f"restart: {restart}\n" if restart else "")
    return parse_spec_text(text, source="test.yaml").tasks[0]


def run_until_final(task: TaskSpec, exit_code: int | None = 1, error: str | None = None,
                    limit: int = 50) -> tuple[int, RestartDecision]:
    """Fail an instance again and again; how many runs until the policy gives up, and the last word."""
    restarts = 0
    for runs in range(1, limit + 1):
        decision = restart_decision(task, exit_code, error, restarts)
        if not decision.restart:
            return runs, decision
        restarts += 1
    raise AssertionError(f"still restarting after {limit} runs")


# ---- on-failure -------------------------------------------------------------------------
@pytest.mark.parametrize("attempts", [1, 2, 3, 5])
def test_on_failure_n_restarts_n_times_after_the_first_run_then_fails(attempts: int) -> None:
    task = spec(f"{{policy: on-failure, max_attempts: {attempts}}}")
    runs, final = run_until_final(task, exit_code=2)
    assert runs == attempts + 1
    assert final == RestartDecision(False, 0, "failed", "failed",
                                    f"exited with code 2; no restarts left ({attempts} used)")


def test_on_failure_says_which_restart_it_is() -> None:
    task = spec("{policy: on-failure, max_attempts: 3}")
    details = [restart_decision(task, 1, None, n).detail for n in range(3)]
    assert details == [f"exited with code 1; restart {n} of 3 (on-failure)" for n in (1, 2, 3)]
    assert all(restart_decision(task, 1, None, n).event == "restarting" for n in range(3))


def test_the_default_policy_is_on_failure_with_three_restarts() -> None:
    task = spec(None)
    assert task.restart.to_dict() == {"policy": "on-failure", "max_attempts": 3, "delay": None, "window": None}
    assert run_until_final(task)[0] == 4
    assert run_until_final(TaskSpec.from_dict({"name": "t", "image": "busybox"}))[0] == 4  # stored without a restart key


def test_on_failure_succeeds_on_a_clean_exit_at_any_attempt() -> None:
    task = spec("{policy: on-failure, max_attempts: 2}")
    for restarts in range(3):
        assert restart_decision(task, 0, None, restarts) == \
            RestartDecision(False, 0, "succeeded", "succeeded", "exited with code 0")


def test_a_start_error_is_a_failure_even_without_an_exit_code() -> None:
    task = spec("on-failure")
    decision = restart_decision(task, None, "image busybox:nope not found", 0)
    assert decision.restart and decision.final_status == ""
    assert decision.detail == "failed to start: image busybox:nope not found; restart 1 of 3 (on-failure)"
    runs, final = run_until_final(task, exit_code=None, error="no such image")
    assert runs == 4
    assert final.final_status == "failed"
    assert final.detail == "failed to start: no such image; no restarts left (3 used)"


def test_a_start_error_with_exit_code_zero_is_still_a_failure() -> None:
    decision = restart_decision(spec("never"), 0, "port is already allocated", 0)
    assert decision.final_status == "failed"
    assert decision.detail == "failed to start: port is already allocated; restart policy never"


# ---- never --------------------------------------------------------------------------------
@pytest.mark.parametrize("exit_code, error, status, detail", [
    (0, None, "succeeded", "exited with code 0"),
    (1, None, "failed", "exited with code 1; restart policy never"),
    (137, None, "failed", "exited with code 137; restart policy never"),
    (None, "oom", "failed", "failed to start: oom; restart policy never"),
])
def test_never_ends_on_the_first_stop(exit_code: int | None, error: str | None, status: str, detail: str) -> None:
    decision = restart_decision(spec("never"), exit_code, error, 0)
    assert decision == RestartDecision(False, 0, status, status, detail)


# ---- always -------------------------------------------------------------------------------
@pytest.mark.parametrize("exit_code, error, how", [
    (0, None, "exited with code 0"),
    (3, None, "exited with code 3"),
    (None, "no such image", "failed to start: no such image"),
])
def test_always_restarts_after_any_stop(exit_code: int | None, error: str | None, how: str) -> None:
    task = spec("always")
    for restarts in (0, 1, 10, 500):
        decision = restart_decision(task, exit_code, error, restarts)
        assert decision.restart and decision.final_status == "" and decision.event == "restarting"
        assert decision.detail == f"{how}; restart policy always"


# ---- back-off ------------------------------------------------------------------------------
def test_the_first_restart_is_immediate_then_the_delay_doubles_up_to_ten_seconds() -> None:
    task = spec("always")
    delays = [restart_decision(task, 1, None, n).delay for n in range(10)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert MAX_BACKOFF == 10.0


def test_on_failure_backs_off_the_same_way() -> None:
    task = spec("{policy: on-failure, max_attempts: 1000}")
    delays = [restart_decision(task, 1, None, n).delay for n in (0, 1, 2, 5, 6, 999)]
    assert delays == [0.0, 0.5, 1.0, 8.0, 10.0, 10.0]


def test_a_task_that_restarts_for_ever_keeps_a_ten_second_backoff() -> None:
    # restart: always and a container that exits every 10 s reaches 1024
    # restarts in under three hours; the engine calls restart_decision with
    # the instance's restart count on every stop.
    task = spec("always")
    for restarts in (1023, 1024, 5000):
        assert restart_decision(task, 0, None, restarts).delay == MAX_BACKOFF


def test_the_policys_delay_is_waited_before_every_restart_instead_of_the_back_off() -> None:
    task = spec("{policy: on-failure, max_attempts: 5, delay: 2s}")
    assert [restart_decision(task, 1, None, n).delay for n in range(5)] == [2.0] * 5
    assert restart_decision(spec("{policy: always, delay: 0s}"), 1, None, 4).delay == 0.0


def test_a_run_as_long_as_the_window_wipes_the_restarts_that_counted() -> None:
    task = spec("{policy: on-failure, max_attempts: 3, window: 2m}")
    assert counted_restarts(task, 3, 120.0) == 0  # it ran the window through: the earlier restarts succeeded
    assert counted_restarts(task, 3, 119.0) == 3 and counted_restarts(task, 3, None) == 3
    assert restart_decision(task, 1, None, counted_restarts(task, 3, 600.0)).restart
    assert not restart_decision(task, 1, None, counted_restarts(task, 3, 5.0)).restart
    assert counted_restarts(spec("{policy: on-failure, max_attempts: 3}"), 3, 1e6) == 3  # no window: all count


# ---- task status -----------------------------------------------------------------------------
@pytest.mark.parametrize("instances, status", [
    ([], "pending"),
    (["pending"], "pending"),
    (["waiting"], "waiting"),
    (["starting", "pending"], "starting"),
    (["running", "starting", "pending"], "running"),
    (["running", "succeeded"], "running"),
    (["succeeded", "succeeded", "succeeded"], "succeeded"),
    (["succeeded", "pending"], "pending"),  # one restarting: not done yet
    (["failed", "running"], "failed"),  # any instance failed for good fails the task
    (["failed", "succeeded"], "failed"),
    (["failed", "cancelled"], "failed"),
    (["cancelled", "cancelled"], "cancelled"),
    (["cancelled", "succeeded"], "cancelled"),
    (["cancelled", "running"], "running"),
    (["pending", "waiting"], "pending"),
])
def test_task_status_follows_its_instances(instances: list[str], status: str) -> None:
    assert task_status(instances) == status
    assert task_status(iter(instances)) == status  # any iterable


def test_terminal_statuses() -> None:
    assert TERMINAL == {"succeeded", "failed", "cancelled"}
