"""Service names: `<task>.<job>.<suffix>` -> the addresses of the nodes running a healthy instance.

Pure code, shared by the master (which knows the instances and builds the
map) and the DNS services (which check a map before committing it and write
it to their dnsmasq). A task or job name that is not a DNS label is skipped
with a warning rather than mangled: two names must never collapse into one
record, and a user who named a job `My_Job` is told why it has no name.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

# RFC 1123 labels, lower case (DNS is case-insensitive; a name is published as the user wrote it only
# when that is already its canonical form, so `Web` and `web` cannot both claim `web`).
LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME = 253
MAX_NAMES = 10_000
MAX_ADDRESSES = 1_000

NameMap = dict[str, list[str]]


@dataclass(frozen=True)
class ServedInstance:
    """A running instance that may be named: its job and task names, its node's address, its health."""

    job: str
    task: str
    address: str | None
    health: str | None  # None: no health check, so running counts as healthy


@dataclass
class NameMapResult:
    names: NameMap = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # "<task>.<job>" -> why it has no name


@functools.lru_cache(maxsize=65536)
def is_label(text: str) -> bool:
    """Cached: the master asks about the same task and job names every time it rebuilds the map."""
    return bool(LABEL.match(text))


def name_of(task: str, job: str, suffix: str) -> str:
    return f"{task}.{job}.{suffix}"


def why_unnamed(task: str, job: str, name: str) -> str | None:
    """Why `name` cannot be published (None: it can)."""
    bad = [f"{what} name {text!r}" for what, text in (("task", task), ("job", job)) if not is_label(text)]
    if bad:
        return (f"{' and '.join(bad)}: not a DNS label (lower-case letters, digits and '-', at most 63, "
                "not starting or ending with '-')")
    if len(name) > MAX_NAME:
        return f"{name!r} is longer than {MAX_NAME} characters"
    return None


def name_map(instances: Iterable[ServedInstance], suffix: str) -> NameMapResult:
    """Every healthy instance's node address under its task's name; names that cannot be DNS names skipped.

    Each (task, job) pair is judged once, however many instances it has: with 10,000 running tasks this
    map is rebuilt a few times a second on the master."""
    result = NameMapResult()
    judged: dict[tuple[str, str], str | None] = {}  # (task, job) -> its name, or None when it has none
    for inst in instances:
        if inst.health not in (None, "healthy") or not inst.address:
            continue
        pair = (inst.task, inst.job)
        if pair not in judged:
            name = name_of(inst.task, inst.job, suffix)
            why = why_unnamed(inst.task, inst.job, name)
            if why:
                result.skipped[f"{inst.task}.{inst.job}"] = why
            judged[pair] = None if why else name
        name = judged[pair]
        if name is None:
            continue
        addresses = result.names.setdefault(name, [])
        if inst.address not in addresses:
            addresses.append(inst.address)
    for addresses in result.names.values():
        if len(addresses) > 1:
            addresses.sort(key=ipaddress.ip_address)
    return result


def check_name_map(names: Mapping[str, list[str]], suffix: str) -> NameMap:
    """A map received over the wire, canonical, or ValueError naming the first thing wrong.

    The DNS service writes these names into dnsmasq's hosts files: only
    `<label>.<label>.<suffix>` names and real addresses may pass (a newline
    or a second name on a line would publish a record nobody asked for).
    """
    if len(names) > MAX_NAMES:
        raise ValueError(f"names: {len(names)} service names, at most {MAX_NAMES}")
    checked: NameMap = {}
    for name, addresses in names.items():
        head, dot, rest = name.partition(".")
        job, dot2, tail = rest.partition(".")
        if not (dot and dot2 and tail == suffix and is_label(head) and is_label(job)) or len(name) > MAX_NAME:
            raise ValueError(f"names: {name[:80]!r} is not <task>.<job>.{suffix} with DNS labels")
        if not addresses or len(addresses) > MAX_ADDRESSES:
            raise ValueError(f"names: {name!r} needs 1 to {MAX_ADDRESSES} addresses, got {len(addresses)}")
        try:
            parsed = sorted({ipaddress.ip_address(a) for a in addresses})
        except (ValueError, TypeError):
            raise ValueError(f"names: {name!r}: not an IP address among {list(addresses)[:5]!r}") from None
        checked[name] = [str(a) for a in parsed]
    return checked


def render_service_hosts(names: Mapping[str, list[str]]) -> str:
    """The hosts file of service names: one line per (address, name), sorted, so equal maps write equal files."""
    return "".join(f"{address} {name}\n" for name in sorted(names) for address in names[name])


def removed_any(before: Mapping[str, list[str]], after: Mapping[str, list[str]]) -> bool:
    """Whether some (name, address) pair of `before` is gone: dnsmasq only adds on a hostsdir change,
    so a removal needs a reload."""
    return any(address not in after.get(name, ()) for name, addresses in before.items() for address in addresses)
