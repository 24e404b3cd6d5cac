"""Converters for the task's own fields: names, commands, env, resources, restart...

Ports and volumes have modules of their own; the plumbing (Invalid, checked,
optional, required) is in checks.py.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from .checks import (Invalid, check_keys, checked, optional, scalar_text, want_int, want_list,
                     want_mapping, want_str)
from .errors import PathPart, describe, format_path
from .durations import parse_duration
from .model import (CONSTRAINT_OPS, DEFAULT_MAX_ATTEMPTS, DEPENDENCY_CONDITIONS, NETWORKS,
                    RESTART_POLICIES, Constraints, Resources, RestartPolicy, Rule)
from .report import Reporter
from .sizes import format_size, parse_size

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
NAME_RULE = "1 to 63 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit"
NODE = re.compile(r"^node[0-9]+$")
ENV_NAME = re.compile(r"^[^=\s\x00]+$")
RESERVED_ENV_PREFIX = "TASKORG_"

MAX_COUNT = 1000  # replicas, parallel, max_attempts
MIN_CPUS, MAX_CPUS = 0.01, 256.0  # Docker refuses fewer than 0.01 CPUs
MIN_MEMORY = 6 * 1024**2  # Docker (since 20.10) refuses memory limits under 6 MiB
MAX_MEMORY = 16 * 1024**4
INT64 = 2**63


# ---- names, image, commands ------------------------------------------------------

def to_name(value: Any, rep: Reporter) -> str:
    text = want_str(value)
    if not NAME.match(text):
        raise Invalid(f"must be {NAME_RULE}, got {describe(text)}")
    return text


def to_image(value: Any, rep: Reporter) -> str:
    text = want_str(value)
    if not text.strip():
        raise Invalid("must not be empty")
    if any(char.isspace() for char in text):
        raise Invalid(f"must be an image reference like taskorg/busybox:latest, got {describe(text)}")
    return text


def to_argv(value: Any, rep: Reporter) -> tuple[str, ...]:
    """A command or entrypoint: a string split like a shell would (no expansion), or a list."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as error:
            raise Invalid(f"cannot be split into words: {str(error).lower()}") from None
    elif isinstance(value, list):
        words = [_argv_word(item, rep.at(index)) for index, item in enumerate(value)]
    else:
        raise Invalid(f"must be a string or a list of strings, got {describe(value)}")
    if not words:
        raise Invalid("must not be empty (leave it out to use the image's default)")
    return tuple(words)


def _argv_word(item: Any, rep: Reporter) -> str:
    if isinstance(item, int) and not isinstance(item, bool):
        return str(item)  # `[sleep, 10]`: YAML made the 10 a number
    if not isinstance(item, str):
        rep.add(f"must be a string, got {describe(item)}")
        return ""
    return item


def to_absolute_path(value: Any, rep: Reporter) -> str:
    text = want_str(value)
    if not text.startswith("/"):
        raise Invalid(f"must be an absolute path in the container, got {describe(text)}")
    return text


def to_result_file(value: Any, rep: Reporter) -> str:
    text = to_absolute_path(value, rep)
    if text.endswith("/"):
        raise Invalid(f"must be a file, not a directory, got {describe(text)}")
    return text


def to_user(value: Any, rep: Reporter) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value and not any(char.isspace() for char in value):
        return value
    raise Invalid(f"must be a user name or uid like 1000 or 1000:1000, got {describe(value)}")


# ---- env -----------------------------------------------------------------------------

def to_env(value: Any, rep: Reporter) -> dict[str, str]:
    """A mapping, or a list of KEY=VALUE strings."""
    if isinstance(value, dict):
        entries = [((str(key),), key, val) for key, val in value.items()]
    elif isinstance(value, list):
        entries = [entry for index, item in enumerate(value)
                   if (entry := _env_item(index, item, rep.at(index))) is not None]
    else:
        raise Invalid(f"must be a mapping or a list of KEY=VALUE strings, got {describe(value)}")
    env: dict[str, str] = {}
    first: dict[str, tuple[PathPart, ...]] = {}
    for subpath, key, val in entries:
        item_rep = rep.at(*subpath)
        text = checked(_env_entry, (key, val), item_rep, None)
        if text is None:
            continue
        if key in env:
            item_rep.add(f"{key} is set twice (first at env{format_path(first[key])})")
            continue
        env[key], first[key] = text, subpath
    return env


def _env_item(index: int, item: Any, rep: Reporter) -> tuple[tuple[PathPart, ...], str, str] | None:
    if not isinstance(item, str) or "=" not in item:
        rep.add(f"must be a KEY=VALUE string, got {describe(item)}")
        return None
    key, _, val = item.partition("=")
    return (index,), key, val


def _env_entry(pair: tuple[Any, Any], rep: Reporter) -> str:
    key, value = pair
    if not isinstance(key, str):
        raise Invalid(f"variable names must be strings, got {describe(key)}")
    if not ENV_NAME.match(key):
        raise Invalid(f"invalid variable name {key!r}: it must not be empty "
                      "or hold '=', spaces or NUL")
    if key.startswith(RESERVED_ENV_PREFIX):
        raise Invalid(f"the name {key!r} is reserved: names starting with TASKORG_ are for the "
                      "variables taskorg sets (TASKORG_INDEX, TASKORG_COUNT, TASKORG_SEED, ...)")
    if value is None:
        raise Invalid(f"{key} has no value (write '' for an empty string)")
    try:
        text = scalar_text(value)
    except Invalid as problem:
        raise Invalid(f"the value of {key} {problem.message}") from None
    if "\x00" in text:
        raise Invalid(f"the value of {key} must not hold a NUL character")
    return text


# ---- resources, constraints -----------------------------------------------------------------

RESOURCE_HINTS = {"cpu": "did you mean 'cpus'?", "mem": "did you mean 'memory'?",
                  "limits": "write cpus and memory directly under resources"}


def to_resources(value: Any, rep: Reporter) -> Resources:
    data = want_mapping(value)
    check_keys(data, ("cpus", "memory"), rep, RESOURCE_HINTS)
    return Resources(cpus=optional(data, "cpus", rep, to_cpus, None),
                     memory=optional(data, "memory", rep, to_memory, None))


def to_cpus(value: Any, rep: Reporter) -> float:
    cpus = _number(value)
    if cpus is None:
        raise Invalid(f"must be a number of CPUs like 0.5, got {describe(value)}")
    if not MIN_CPUS <= cpus <= MAX_CPUS:
        raise Invalid(f"must be from {MIN_CPUS} to {MAX_CPUS:g}, got {describe(value)}")
    return cpus


def _number(value: Any) -> float | None:
    """A finite number, also from a numeric string ("0.5", as compose files often quote it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def to_memory(value: Any, rep: Reporter) -> int:
    try:
        size = parse_size(value)
    except ValueError as error:
        raise Invalid(str(error)) from None
    if size < MIN_MEMORY:
        raise Invalid(f"must be at least {format_size(MIN_MEMORY)}, got {describe(value)}")
    if size > MAX_MEMORY:
        raise Invalid(f"must be at most {format_size(MAX_MEMORY)}, got {describe(value)}")
    return size


CONSTRAINT_HINTS = {"label": "did you mean 'labels'?", "node": "did you mean 'nodes'?"}
RULE = re.compile(r"^\s*(node\.(?:hostname|labels\.[A-Za-z0-9_.-]+|platform\.(?:os|arch)))"
                  r"\s*(==|!=)\s*(\S+)\s*$")
RULE_FORMS = ("must be like node.hostname == pi3, node.labels.zone != a or "
              "node.platform.arch == aarch64")


def to_constraints(value: Any, rep: Reporter) -> Constraints:
    data = want_mapping(value)
    check_keys(data, ("labels", "nodes", "rules"), rep, CONSTRAINT_HINTS)
    return Constraints(labels=optional(data, "labels", rep, to_labels, {}),
                       nodes=optional(data, "nodes", rep, to_nodes, ()),
                       rules=optional(data, "rules", rep, to_rules, ()))


def to_rules(value: Any, rep: Reporter) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for index, item in enumerate(want_list(value, "a list of rules like node.hostname != pi3")):
        rule = checked(lambda v, r: to_rule(v), item, rep.at(index), None)
        if rule is not None and rule not in rules:
            rules.append(rule)
    return tuple(rules)


def to_rule(value: Any) -> Rule:
    """`node.hostname == pi3` (Swarm's constraint syntax), or the canonical mapping."""
    if isinstance(value, dict) and set(value) == {"attribute", "op", "value"}:
        value = f"{value['attribute']} {value['op']} {value['value']}"
    match = RULE.match(value) if isinstance(value, str) else None
    if not match or match.group(2) not in CONSTRAINT_OPS:
        raise Invalid(f"{RULE_FORMS}, got {describe(value)}")
    return Rule(attribute=match.group(1), op=match.group(2), value=match.group(3))


def to_labels(value: Any, rep: Reporter) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, val in want_mapping(value).items():
        item_rep = rep.at(str(key))
        if not isinstance(key, str) or not key:
            item_rep.add(f"label names must be non-empty strings, got {describe(key)}")
            continue
        text = checked(lambda v, r: scalar_text(v), val, item_rep, None)
        if text is not None:
            labels[key] = text
    return labels


def to_nodes(value: Any, rep: Reporter) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else want_list(value, "a node name or a list of them")
    nodes: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not NODE.match(item):
            at = rep if isinstance(value, str) else rep.at(index)
            at.add(f"must be a node name like node1, got {describe(item)}")
        elif item not in nodes:
            nodes.append(item)
    return tuple(nodes)


# ---- restart, counts, the rest -----------------------------------------------------------------

RESTART_FORMS = "must be always, never, on-failure or on-failure:N"
_RESTART_HINTS = {"no": " (write never)", "unless-stopped": " (write always)",
                  False: " (YAML reads a bare no as false; write never)"}


def to_restart(value: Any, rep: Reporter) -> RestartPolicy:
    if isinstance(value, dict):
        return _restart_from_mapping(value, rep)
    if isinstance(value, str):
        policy, _, attempts = value.partition(":")
        if policy == "on-failure" and attempts:
            if not attempts.isdigit():
                raise Invalid(f"{RESTART_FORMS}, got {describe(value)}")
            return RestartPolicy("on-failure", _attempts(int(attempts)))
        if policy in RESTART_POLICIES and not attempts:
            return _restart(policy)
    hint = _RESTART_HINTS.get(value, "") if isinstance(value, (str, bool)) else ""
    raise Invalid(f"{RESTART_FORMS}, or a mapping with policy and max_attempts, got {describe(value)}{hint}")


def _restart_from_mapping(data: dict[Any, Any], rep: Reporter) -> RestartPolicy:
    check_keys(data, ("policy", "max_attempts", "delay", "window"), rep,
               {"attempts": "did you mean 'max_attempts'?"})
    policy = optional(data, "policy", rep, _restart_policy_name, "on-failure")
    attempts = optional(data, "max_attempts", rep, lambda v, r: _attempts(v), None)
    if attempts is not None and policy != "on-failure":
        rep.at("max_attempts").add(f"is only allowed with policy on-failure, not {policy}")
    base = RestartPolicy(policy, attempts) if attempts is not None else _restart(policy)
    return RestartPolicy(base.policy, base.max_attempts,
                         delay=optional(data, "delay", rep, to_seconds, None),
                         window=optional(data, "window", rep, to_seconds, None))


def to_seconds(value: Any, rep: Reporter) -> float:
    """A duration (10s, 1m30s, 500ms, or a number of seconds) in seconds."""
    try:
        return parse_duration(value)
    except ValueError as error:
        raise Invalid(str(error)) from None


def _restart_policy_name(value: Any, rep: Reporter) -> str:
    if value not in RESTART_POLICIES:
        hint = _RESTART_HINTS.get(value, "") if isinstance(value, (str, bool)) else ""
        raise Invalid(f"must be always, never or on-failure, got {describe(value)}{hint}")
    return value


def _restart(policy: str) -> RestartPolicy:
    return RestartPolicy(policy, DEFAULT_MAX_ATTEMPTS if policy == "on-failure" else None)


def _attempts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"max_attempts must be an integer, got {describe(value)}")
    if not 1 <= value <= MAX_COUNT:
        raise Invalid(f"max_attempts must be from 1 to {MAX_COUNT}, got {value}")
    return value


def to_count(value: Any, rep: Reporter) -> int:
    return want_int(value, 1, MAX_COUNT)


def to_seed(value: Any, rep: Reporter) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"must be an integer, got {describe(value)}")
    if not -INT64 <= value < INT64:
        raise Invalid(f"must fit in 64 bits, got {value}")
    return value


def to_network(value: Any, rep: Reporter) -> str:
    if value not in NETWORKS:
        raise Invalid(f"must be bridge, host or none, got {describe(value)}")
    return value


def to_depends_on(value: Any, rep: Reporter) -> dict[str, str]:
    """`[db]` (started) or `{db: healthy, cache: started}`; existence is checked with the job."""
    if isinstance(value, (str, list)):
        return {name: "started" for name in to_after(value, rep)}
    depends: dict[str, str] = {}
    for name, condition in want_mapping(value).items():
        if not isinstance(name, str):
            rep.add(f"task names must be strings, got {describe(name)}")
        elif condition not in DEPENDENCY_CONDITIONS:
            rep.at(name).add(f"must be started or healthy, got {describe(condition)} "
                             "(to wait until a task has succeeded, list it in after)")
        else:
            depends[name] = condition
    return depends


PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$")


def to_platform(value: Any, rep: Reporter) -> str:
    text = want_str(value)
    if not PLATFORM.match(text):
        raise Invalid(f"must be like linux/amd64, linux/arm64 or linux/arm/v7, got {describe(text)}")
    return text


def to_after(value: Any, rep: Reporter) -> tuple[str, ...]:
    """Names only; whether they exist is checked with the whole job in view."""
    items = [value] if isinstance(value, str) else want_list(value, "a task name or a list of them")
    names: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            rep.at(index).add(f"must be a task name, got {describe(item)}")
        elif item not in names:
            names.append(item)
    return tuple(names)
