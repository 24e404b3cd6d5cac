"""Converters from user-written field values to canonical ones.

Each converter takes the raw value and a Reporter positioned at the field.
A problem with the field as a whole raises `Invalid` (reported by `checked`
at the field, or below it by `subpath`); problems with single items of a list
are reported on the spot so that every bad item is named. A converter whose
field had problems returns a placeholder: the spec is refused anyway, and a
default placeholder keeps later cross-field checks from piling on.
"""

from __future__ import annotations

import difflib
import math
import posixpath
import re
import shlex
from typing import Any, Callable, Iterable, Mapping, TypeVar

from .errors import PathPart, describe, format_path
from .model import (DEFAULT_MAX_ATTEMPTS, NETWORKS, PROTOCOLS, RESTART_POLICIES,
                    Constraints, Port, Resources, RestartPolicy, Volume)
from .report import Reporter
from .sizes import format_size, parse_size

T = TypeVar("T")

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
NAME_RULE = "1 to 63 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit"
NODE = re.compile(r"^node[0-9]+$")
VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]+$")
PORT_TEXT = re.compile(r"^(?:(\d+):)?(\d+)(?:/([A-Za-z]+))?$")
ENV_NAME = re.compile(r"^[^=\s\x00]+$")
RESERVED_ENV_PREFIX = "TASKORG_"

MAX_COUNT = 1000  # replicas, parallel, max_attempts
MIN_CPUS, MAX_CPUS = 0.01, 256.0  # Docker refuses fewer than 0.01 CPUs
MIN_MEMORY = 6 * 1024**2  # Docker (since 20.10) refuses memory limits under 6 MiB
MAX_MEMORY = 16 * 1024**4
INT64 = 2**63


class Invalid(Exception):
    """A field's value is wrong; `subpath` points below the field when useful."""

    def __init__(self, message: str, *subpath: PathPart) -> None:
        super().__init__(message)
        self.message = message
        self.subpath = subpath


# ---- plumbing ----------------------------------------------------------------

def checked(convert: Callable[[Any, Reporter], T], value: Any, rep: Reporter, default: T) -> T:
    """Run a converter; report its Invalid at the field and return `default` instead."""
    before = rep.count
    try:
        result = convert(value, rep)
    except Invalid as problem:
        rep.at(*problem.subpath).add(problem.message)
        return default
    return default if rep.count > before else result


def optional(data: Mapping[str, Any], key: str, rep: Reporter,
             convert: Callable[[Any, Reporter], T], default: T) -> T:
    """A field that may be missing or null (both mean: the default)."""
    value = data.get(key)
    return default if value is None else checked(convert, value, rep.at(key), default)


def required(data: Mapping[str, Any], key: str, rep: Reporter,
             convert: Callable[[Any, Reporter], T], default: T, example: str) -> T:
    """A field that must be present; `example` tells the user what to write."""
    value = data.get(key)
    if value is None:
        rep.at(key).add(f"is required ({example})")
        return default
    return checked(convert, value, rep.at(key), default)


def check_keys(data: Mapping[Any, Any], known: Iterable[str], rep: Reporter,
               hints: Mapping[str, str] | None = None) -> None:
    """Report every key that is not a known field, with a suggestion when one fits."""
    known = tuple(known)
    for key in data:
        if key in known:
            continue
        name = str(key)
        rep.at(name).add(unknown_field(name, known, hints or {}))


def unknown_field(name: str, known: tuple[str, ...], hints: Mapping[str, str]) -> str:
    if name in hints:
        return f"unknown field {name!r} ({hints[name]})"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"unknown field {name!r} (did you mean {close[0]!r}?)"
    if len(known) <= 4:
        return f"unknown field {name!r} (known fields: {', '.join(known)})"
    return f"unknown field {name!r}"


def want_mapping(value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"must be a mapping, got {describe(value)}")
    return value


def want_list(value: Any, what: str = "a list") -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"must be {what}, got {describe(value)}")
    return value


def want_str(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, got {describe(value)}")
    return value


def want_int(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"must be an integer, got {describe(value)}")
    if not low <= value <= high:
        raise Invalid(f"must be from {low} to {high}, got {value}")
    return value


def to_bool(value: Any, rep: Reporter) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {describe(value)}")
    return value


def scalar_text(value: Any) -> str:
    """A string, number or boolean as the text a container sees ("true", "0.5")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise Invalid(f"must be a string, number or boolean, got {describe(value)}")


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
        raise Invalid(f"the name {key!r} is reserved: names starting with TASKORG_ are set "
                      "by taskorg (TASKORG_INDEX, TASKORG_COUNT, TASKORG_SEED)")
    if value is None:
        raise Invalid(f"{key} has no value (write '' for an empty string)")
    try:
        text = scalar_text(value)
    except Invalid as problem:
        raise Invalid(f"the value of {key} {problem.message}") from None
    if "\x00" in text:
        raise Invalid(f"the value of {key} must not hold a NUL character")
    return text


# ---- ports ------------------------------------------------------------------------------

PORT_HINTS = {"target": "did you mean 'container'?", "published": "did you mean 'host'?"}
PORT_FORMS = "must be like 8080:80, 8080:80/udp or 80"


def to_ports(value: Any, rep: Reporter) -> tuple[Port, ...]:
    ports: list[Port] = []
    used: dict[tuple[int, str], int] = {}
    for index, item in enumerate(want_list(value)):
        item_rep = rep.at(index)
        port = checked(_to_port, item, item_rep, None)
        if port is None:
            continue
        if port.host is not None:
            key = (port.host, port.protocol)
            if key in used:
                item_rep.add(f"host port {port.host}/{port.protocol} is already used by ports[{used[key]}]")
                continue
            used[key] = index
        ports.append(port)
    return tuple(ports)


def _to_port(item: Any, rep: Reporter) -> Port:
    if isinstance(item, int) and not isinstance(item, bool):
        return Port(container=_port_number(item, "port"))
    if isinstance(item, str):
        return _port_from_text(item)
    if isinstance(item, dict):
        return _port_from_mapping(item, rep)
    raise Invalid(f"{PORT_FORMS} or a mapping with host, container and protocol, got {describe(item)}")


def _port_from_text(text: str) -> Port:
    match = PORT_TEXT.match(text.strip())
    if not match:
        raise Invalid(f"{PORT_FORMS}, got {describe(text)}")
    host, container, protocol = match.groups()
    return Port(host=None if host is None else _port_number(int(host), "host port"),
                container=_port_number(int(container), "container port"),
                protocol=_protocol(protocol or "tcp"))


def _port_from_mapping(data: dict[Any, Any], rep: Reporter) -> Port:
    check_keys(data, ("host", "container", "protocol"), rep, PORT_HINTS)
    container = required(data, "container", rep, _mapped_port, 0, "the port inside the container, like 80")
    host = optional(data, "host", rep, _mapped_port, None)
    protocol = optional(data, "protocol", rep, lambda v, r: _protocol(want_str(v)), "tcp")
    return Port(container=container, host=host, protocol=protocol)


def _mapped_port(value: Any, rep: Reporter) -> int:
    return want_int(value, 1, 65535)


def _port_number(number: int, what: str) -> int:
    if not 1 <= number <= 65535:
        raise Invalid(f"{what} must be from 1 to 65535, got {number}")
    return number


def _protocol(text: str) -> str:
    if text.lower() not in PROTOCOLS:
        raise Invalid(f"protocol must be tcp or udp, got {text!r}")
    return text.lower()


# ---- volumes ----------------------------------------------------------------------------

VOLUME_FORMS = "must be like name:/path, name:/path:ro or /host/path:/path"


def to_volumes(value: Any, rep: Reporter, allow_host_paths: bool) -> tuple[Volume, ...]:
    volumes: list[Volume] = []
    used: dict[str, int] = {}
    for index, item in enumerate(want_list(value)):
        item_rep = rep.at(index)
        volume = checked(_to_volume, item, item_rep, None)
        if volume is None:
            continue
        target = posixpath.normpath(volume.target)
        if target in used:
            item_rep.add(f"target {volume.target} is already used by volumes[{used[target]}]")
            continue
        if volume.is_bind and not allow_host_paths:
            item_rep.add(f"host path {volume.source} is refused by the cluster policy "
                         "(the cluster setting allow_host_paths: true allows it)")
        used[target] = index
        volumes.append(volume)
    return tuple(volumes)


def _to_volume(item: Any, rep: Reporter) -> Volume:
    if isinstance(item, str):
        return _volume_from_text(item)
    if isinstance(item, dict):
        return _volume_from_mapping(item, rep)
    raise Invalid(f"{VOLUME_FORMS}, got {describe(item)}")


def _volume_from_text(text: str) -> Volume:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise Invalid(f"{VOLUME_FORMS}, got {describe(text)}")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise Invalid(f"mode must be ro or rw, got {mode!r}")
    kind = _source_kind(source)
    _check_target(target)
    return Volume(source=source, target=target, read_only=mode == "ro", type=kind)


def _volume_from_mapping(data: dict[Any, Any], rep: Reporter) -> Volume:
    check_keys(data, ("source", "target", "read_only", "type"), rep, {"read-only": "did you mean 'read_only'?"})
    source = required(data, "source", rep, _volume_source, "", "a volume name or an absolute host path")
    target = required(data, "target", rep, lambda v, r: _check_target(want_str(v)), "", "like /data")
    read_only = optional(data, "read_only", rep, to_bool, False)
    kind = _source_kind(source) if source else "volume"
    declared = optional(data, "type", rep, _volume_type, kind)
    if source and declared != kind:
        rep.at("type").add(f"is {declared} but the source {source!r} is a "
                           f"{'host path' if kind == 'bind' else 'volume name'}")
    return Volume(source=source, target=target, read_only=read_only, type=kind)


def _volume_source(value: Any, rep: Reporter) -> str:
    _source_kind(want_str(value))
    return value


def _volume_type(value: Any, rep: Reporter) -> str:
    if value not in ("volume", "bind"):
        raise Invalid(f"must be volume or bind, got {describe(value)}")
    return value


def _source_kind(source: str) -> str:
    """"bind" for a host path, "volume" for a named volume."""
    if source.startswith("/"):
        return "bind"
    if not source:
        raise Invalid("has no source: write a volume name or an absolute host path before the ':'")
    if source.startswith((".", "~")):
        raise Invalid(f"host path {source!r} must be absolute (a relative path means nothing on a cluster node)")
    if not VOLUME_NAME.match(source):
        raise Invalid(f"volume name {source!r} must be 2 or more letters, digits, '_', '.' or '-', "
                      "starting with a letter or digit")
    return "volume"


def _check_target(target: str) -> str:
    if not target.startswith("/"):
        raise Invalid(f"target {target!r} must be an absolute path in the container")
    if posixpath.normpath(target) == "/":
        raise Invalid("target must not be / (the container's root)")
    return target


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


def to_constraints(value: Any, rep: Reporter) -> Constraints:
    data = want_mapping(value)
    check_keys(data, ("labels", "nodes"), rep, CONSTRAINT_HINTS)
    return Constraints(labels=optional(data, "labels", rep, to_labels, {}),
                       nodes=optional(data, "nodes", rep, to_nodes, ()))


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
_RESTART_HINTS = {"no": " (write never)", "unless-stopped": " (write always)", False: " (YAML reads a bare no as false; write never)"}


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
    check_keys(data, ("policy", "max_attempts"), rep, {"attempts": "did you mean 'max_attempts'?"})
    policy = optional(data, "policy", rep, _restart_policy_name, "on-failure")
    attempts = optional(data, "max_attempts", rep, lambda v, r: _attempts(v), None)
    if attempts is not None and policy != "on-failure":
        rep.at("max_attempts").add(f"is only allowed with policy on-failure, not {policy}")
    return RestartPolicy(policy, attempts) if attempts is not None else _restart(policy)


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
