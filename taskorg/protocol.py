"""Every message that crosses a process boundary between master, slave and standby, typed.

Decoding JSON bytes straight into these structs (msgspec) checks every type
at the door: a string where a number belongs or a missing field becomes a
`ProtocolError` naming the field (an HTTP 400), never a KeyError deep inside.
Field names are the wire's, unchanged, so older peers interoperate. A task's
spec travels as a `TaskSpec` from submission to the runner.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from taskorg.spec import TaskSpec

T = TypeVar("T")
# A count, index or epoch: never negative, and within SQLite's 64-bit integers (a larger epoch once
# overflowed the fence's row: a 500 on every later request).
Count = Annotated[int, Meta(ge=0, le=2 ** 63 - 1)]
# A table row as the change log carries it: column -> scalar.
Row = dict[str, str | int | float | None]
# A task's result: whatever JSON its result file held.
ResultValue = Any


class ProtocolError(ValueError):
    """A message that does not have the shape its endpoint expects; the text names the field."""


_FIRST_USE = threading.Lock()
_READY: set[Any] = set()


def ready(kind: Any) -> None:
    """Build msgspec's decoding information for `kind` (and the types inside it) once, under a lock.

    msgspec builds it on a type's first use, and two threads making that first use at the same moment
    crashed the process: a segfault in msgspec's `json_decode_struct_map_inner` (0.22.0). A slave that
    had run nothing got three start orders at once after a failover, and died with no line in its log;
    37 of 60 fresh interpreters crashed with 8 threads decoding their first `StartOrder` together
    (tests/unit/test_protocol_threads.py). Built once before any concurrent use, it is only read."""
    if kind in _READY:
        return
    with _FIRST_USE:
        if kind not in _READY:
            msgspec.json.Decoder(kind)
            _READY.add(kind)


def decode(data: bytes | str, kind: type[T], what: str | None = None) -> T:
    """`data` (JSON) as a `kind`, or a ProtocolError that names the bad field."""
    ready(kind)
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_explain(what or kind.__name__, str(exc))) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"{what or kind.__name__}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError(f"{what or kind.__name__}: the JSON nests too deeply") from None


def convert(data: Any, kind: type[T], what: str | None = None) -> T:
    """Already-parsed JSON (an answer from a peer) as a `kind`; ProtocolError names the bad field."""
    ready(kind)
    try:
        return msgspec.convert(data, type=kind)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_explain(what or kind.__name__, str(exc))) from None
    except RecursionError:
        raise ProtocolError(f"{what or kind.__name__}: the data nests too deeply") from None


def encode(message: Any) -> bytes:
    """A message as JSON bytes, every field included (the wire form peers expect)."""
    return msgspec.json.encode(message)


def to_wire(message: Any) -> Any:
    """A message as plain JSON data (dicts, lists, scalars), every field included."""
    return msgspec.json.decode(msgspec.json.encode(message))


def _explain(what: str, error: str) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.index`" as "…: field 'index': expected `int`…"."""
    text, _, path = error.partition(" - at ")
    missing = re.match(r"Object missing required field `(.+)`", text)
    where = path.strip("`").removeprefix("$").lstrip(".")
    if missing:
        field = f"{where}.{missing.group(1)}" if where else missing.group(1)
        return f"{what}: missing field {_name(field)}"
    if not where:
        return f"{what}: {text[:1].lower()}{text[1:]}"
    return f"{what}: field {_name(where)}: {text[:1].lower()}{text[1:]}"


def _name(path: str) -> str:
    """'spec.ports[0]' as "'spec' (at spec.ports[0])": the top-level field first, then the full path."""
    top = re.split(r"[.\[]", path, maxsplit=1)[0]
    return f"'{top}'" if top == path else f"'{top}' (at {path})"


# ---- master -> slave ---------------------------------------------------------------------------
class StartOrder(Struct, kw_only=True):
    """`POST /v1/containers`: start one attempt of one instance."""

    epoch: Count
    task_id: Annotated[str, Meta(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]
    index: Count
    attempt: Count
    spec: TaskSpec
    job: str | None = None
    env: dict[str, str] = {}


class StopRequest(Struct, kw_only=True):
    """`POST /v1/containers/stop`: these containers, or every container of one task."""

    epoch: Count
    container_ids: list[str] | None = None
    task_id: str | None = None


class StopAnswer(Struct):
    removed: list[str]


class EpochCommand(Struct):
    """`POST /v1/epoch` (and its answer): the highest master epoch the slave obeys."""

    epoch: Count


# ---- slave -> master ---------------------------------------------------------------------------
class ContainerState(Struct, kw_only=True):
    """One container as a slave sees it: a start answer, or one element of a report."""

    task_id: str
    index: int
    status: str
    attempt: int | None = None
    epoch: int | None = None
    job: str | None = None
    container_id: str | None = None
    name: str | None = None
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    image: str | None = None
    error: str | None = None
    result: ResultValue = None
    result_error: str | None = None
    # The slave's own clock when a start finished (see reconcile: a report listed before it says nothing).
    answered: float | None = None
    # Docker's health check status of a running container: starting, healthy or unhealthy (None: no check).
    health: Literal["starting", "healthy", "unhealthy"] | None = None


class ContainerList(Struct):
    """`GET /v1/containers`."""

    node: str
    epoch: int
    containers: list[ContainerState]


class Gpu(Struct):
    name: str
    memory_total: int | None = None
    memory_used: int | None = None
    utilization: float | None = None


class Disk(Struct):
    """The filesystem that holds a node's state directory (an SD card filling up kills a Pi node)."""

    mount: str
    total: int
    used: int
    percent: float  # as df counts it: used / (used + free)


class Telemetry(Struct, kw_only=True):
    """`GET /v1/telemetry`, and the sample every report carries."""

    node: str | None = None
    time: str | None = None
    cpu_count: int | float = 1  # a whole number from psutil; a setting may advertise a share
    cpu_percent: float = 0.0
    load1: float | None = None
    # Docker's data root, when it is on another filesystem than the state directory's (`disk`).
    docker_disk: Disk | None = None
    memory_total: int = 0
    memory_available: int | None = None
    temperatures: dict[str, float] = {}
    gpus: list[Gpu] = []
    speed: float = 1.0
    disk: Disk | None = None


class Report(Struct, kw_only=True):
    """`POST /v1/reports`: everything a node runs, listed at `listed` (the slave's clock)."""

    node: str
    containers: list[ContainerState]
    address: str | None = None
    listed: float | None = None
    telemetry: Telemetry | None = None


class ReportAnswer(Struct):
    """The master's answer to a report: the containers to stop, under its epoch, and the jobs pruned
    lately (their directories on the shared storage go too)."""

    epoch: int
    stop: list[str]
    removed_jobs: list[str] = msgspec.field(default_factory=list)


# ---- node -> master ----------------------------------------------------------------------------
class RolePush(Struct, kw_only=True):
    """`POST /v1/role`: the node service's word on this master service's role and lease."""

    active: bool
    epoch: Count
    lease_until_monotonic: float | None = None
    master: str | None = None
    master_address: str | None = None
    node: str | None = None


class ReplicaPosition(Struct):
    """Where a replica is: (epoch of its last change, its sequence number)."""

    epoch: int
    seq: int


class RoleAnswer(Struct):
    active: bool
    replica: ReplicaPosition


# ---- master -> standby -------------------------------------------------------------------------
# A change's sequence number or an epoch as the store keeps them (SQLite integers).
Position = Annotated[int, Meta(ge=0, le=2 ** 63 - 1)]


class ChangeEntry(Struct):
    """One numbered change of the change log: a whole-row upsert (`put`), or a removal by key (`delete`;
    a job's removes its tasks, instances and history too)."""

    seq: Position
    epoch: Position
    table: str
    row: Row
    op: Literal["put", "delete"] = "put"


class Snapshot(Struct):
    """The whole state at (epoch, seq), or one part of it: parts `0..n` are sent in order, `last` on the
    final one, each about a MiB (a standby catches up from any state size)."""

    epoch: Position
    seq: Position
    tables: dict[str, list[Row]]
    part: Position = 0
    last: bool = True


class ReplicationBatch(Struct, kw_only=True, omit_defaults=True):
    """`POST /v1/replica/apply`: log entries after the standby's position, or a whole snapshot."""

    epoch: Position
    entries: list[ChangeEntry] = []
    snapshot: Snapshot | None = None


def encode_entries(epoch: int, rows: list[tuple[int, int, str, str, str]]) -> bytes:
    """`ReplicationBatch(epoch=epoch, entries=...)` on the wire, from change-log rows (seq, epoch, table,
    row as the JSON text the log stores, op): the stored text goes out as it is. Decoding every row to
    re-encode it cost the active master a tenth of its time on 50-task jobs, once per standby; the
    standby still decodes and checks the batch as a ReplicationBatch."""
    text = msgspec.json.encode
    entries = b",".join(b'{"seq":%d,"epoch":%d,"table":%s,"row":%s,"op":%s}'
                        % (seq, entry_epoch, text(table), row.encode(), text(op))
                        for seq, entry_epoch, table, row, op in rows)
    return b'{"epoch":%d,"entries":[%s]}' % (epoch, entries)


# The answer to a replication batch is the standby's new ReplicaPosition.

# ---- node <-> DNS service ----------------------------------------------------------------------
NodeName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
# An IPv4 or IPv6 address as text; `checked_address` parses it for real (ipaddress) at the door.
AddressText = Annotated[str, Meta(max_length=45, pattern=r"^[0-9A-Fa-f.:]*$")]


class Registration(Struct, kw_only=True):
    """`POST /v1/register`: a machine asking for (or confirming) its node name."""

    identity: Annotated[str, Meta(min_length=1, max_length=200)]
    address: AddressText
    labels: dict[Annotated[str, Meta(max_length=100)], Annotated[str, Meta(max_length=200)]] = {}


class Heartbeat(Struct, kw_only=True):
    """`POST /v1/heartbeat`: a node is alive, where it is, and how fresh its master replica is."""

    node: NodeName
    address: AddressText = ""
    replica: ReplicaPosition = msgspec.field(default_factory=lambda: ReplicaPosition(0, 0))


class Lease(Struct):
    """The master lease as the arbiter grants it: counted by the node from when it sent the heartbeat."""

    holder: bool
    epoch: int
    valid_for: float


class HeartbeatAnswer(Struct):
    epoch: int
    master: str | None
    lease: Lease
    # The DNS service that answered as arbiter: the node sends its next heartbeat there (no relay).
    arbiter: str | None = None


# A nonce in a heartbeat datagram: random, as URL-safe base64 (taskorg.net.datagrams).
Nonce = Annotated[str, Meta(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]


class BeatDatagram(Struct, kw_only=True):
    """A heartbeat as a UDP datagram to the arbiter (sealed with the cluster's datagram key).

    `ask` is fresh for every datagram and comes back in the reply, so an old reply cannot pass for a
    new one; `proof` is the arbiter's last challenge to this node, used once, so a datagram replayed
    later renews nothing."""

    beat: Heartbeat
    ask: Nonce
    proof: Nonce = ""


class BeatReply(Struct, kw_only=True):
    """The arbiter's reply to a heartbeat datagram. `status` is the HTTP route's: 200 with `answer`;
    401 when the proof was not the current challenge (send again with `challenge`); 404, 410 and 503
    as on `POST /v1/heartbeat` (503: not the arbiter, ask over HTTPS)."""

    ask: Nonce
    challenge: Nonce = ""
    status: int = 200
    message: Annotated[str, Meta(max_length=300)] = ""
    answer: HeartbeatAnswer | None = None


class ServiceNames(Struct, kw_only=True):
    """`PUT /v1/services` (master -> DNS service): `<task>.<job>.<suffix>` -> the addresses of the nodes
    running a healthy instance, as the master of `epoch` sees them (the whole map, not a change)."""

    epoch: Position
    names: dict[Annotated[str, Meta(max_length=253)], list[AddressText]]


def checked_address(text: str, what: str) -> str:
    """`text` as a canonical IP address, or a ProtocolError: an address goes into DNS records and
    hosts files, so nothing but an address may pass (a newline would write a second record)."""
    canonical = _canonical_address(text)
    if canonical is None:
        raise ProtocolError(f"{what}: field 'address': not an IP address: {text[:60]!r}")
    return canonical


@functools.lru_cache(maxsize=4096)
def _canonical_address(text: str) -> str | None:
    """Cached: every heartbeat carries its node's address, ten times a second (2.7 us a parse, 0.1 us cached)."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
