"""The health check and the other timings of a service: stop grace, stop signal, updates.

Every time is a duration (durations.py) and becomes seconds; the check's
`test` takes Docker's forms so a compose file's check reaches Docker as is.
"""

from __future__ import annotations

import re
from typing import Any

from .checks import Invalid, check_keys, optional, to_bool, want_int, want_list, want_mapping
from .errors import describe
from .fields import to_argv, to_seconds as to_duration
from .model import FAILURE_ACTIONS, UPDATE_ORDERS, HealthCheck, UpdateConfig
from .report import Reporter

HEALTH_FIELDS = ("test", "interval", "timeout", "retries", "start_period", "start_interval", "disable")
UPDATE_FIELDS = ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order")
SIGNAL = re.compile(r"^SIG[A-Z0-9+-]{2,12}$")
MAX_RETRIES = 100
MAX_PARALLELISM = 1000


def to_positive_duration(value: Any, rep: Reporter) -> float:
    seconds = to_duration(value, rep)
    if seconds <= 0:
        raise Invalid(f"must be longer than 0s, got {describe(value)}")
    return seconds


def to_healthcheck(value: Any, rep: Reporter) -> HealthCheck:
    """`{test, interval, timeout, retries, start_period, start_interval}` or `{disable: true}`."""
    data = want_mapping(value)
    check_keys(data, HEALTH_FIELDS, rep)
    if optional(data, "disable", rep, to_bool, False):
        if "test" in data and data["test"] not in (None, ["NONE"]):
            rep.at("test").add("cannot be combined with disable: true")
        return HealthCheck(test=("NONE",))
    test = optional(data, "test", rep, to_health_test, None)
    if test is None and "test" not in data:
        rep.at("test").add("is required (a command like [CMD, wget, -q, -O-, http://localhost/], "
                           "or disable: true to turn the image's check off)")
    return HealthCheck(
        test=test or ("NONE",),
        interval=optional(data, "interval", rep, to_positive_duration, 30.0),
        timeout=optional(data, "timeout", rep, to_positive_duration, 30.0),
        retries=optional(data, "retries", rep, lambda v, r: want_int(v, 1, MAX_RETRIES), 3),
        start_period=optional(data, "start_period", rep, to_duration, 0.0),
        start_interval=optional(data, "start_interval", rep, to_positive_duration, 5.0),
    )


def to_health_test(value: Any, rep: Reporter) -> tuple[str, ...]:
    """A string runs in a shell (CMD-SHELL); a list starts with CMD, CMD-SHELL or NONE."""
    if isinstance(value, str):
        if not value.strip():
            raise Invalid("must not be empty")
        return ("CMD-SHELL", value)
    words = to_argv(want_list(value, "a command string or a list starting with CMD, CMD-SHELL or NONE"), rep)
    kind, rest = words[0], words[1:]
    if kind == "NONE" and not rest:
        return words
    if kind == "CMD" and rest:
        return words
    if kind == "CMD-SHELL" and len(rest) == 1:
        return words
    if kind == "CMD-SHELL" and rest:
        return ("CMD-SHELL", " ".join(rest))
    raise Invalid(f"a list must start with CMD (then the command), CMD-SHELL (then a shell line) "
                  f"or be [NONE], got {describe(kind)} first")


def to_stop_signal(value: Any, rep: Reporter) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64:
        return str(value)
    if isinstance(value, str) and SIGNAL.match(value.upper()):
        return value.upper()
    raise Invalid(f"must be a signal name like SIGTERM or SIGINT, got {describe(value)}")


def to_update_config(value: Any, rep: Reporter, actions: tuple[str, ...] = FAILURE_ACTIONS) -> UpdateConfig:
    data = want_mapping(value)
    check_keys(data, UPDATE_FIELDS, rep)
    default = UpdateConfig()
    return UpdateConfig(
        parallelism=optional(data, "parallelism", rep, lambda v, r: want_int(v, 0, MAX_PARALLELISM),
                             default.parallelism),
        delay=optional(data, "delay", rep, to_duration, default.delay),
        failure_action=optional(data, "failure_action", rep, lambda v, r: _one_of(v, actions),
                                default.failure_action),
        monitor=optional(data, "monitor", rep, to_duration, default.monitor),
        max_failure_ratio=optional(data, "max_failure_ratio", rep, _ratio, default.max_failure_ratio),
        order=optional(data, "order", rep, lambda v, r: _one_of(v, UPDATE_ORDERS), default.order),
    )


def to_rollback_config(value: Any, rep: Reporter) -> UpdateConfig:
    """As update_config, but a failed rollback cannot roll back again."""
    return to_update_config(value, rep, ("pause", "continue"))


def _one_of(value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise Invalid(f"must be {', '.join(choices[:-1])} or {choices[-1]}, got {describe(value)}")
    return value


def _ratio(value: Any, rep: Reporter) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise Invalid(f"must be a number from 0 to 1, got {describe(value)}")
    return float(value)

