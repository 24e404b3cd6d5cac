"""The cluster picture: who is witness, master, standby and spare, which DNS services vote, and who reaches whom.

Pure: built from what the webview already asked for (the DNS service's
members view with its `dns_servers` part, the master's `/v1/status` with its
`replicas` positions), so drawing it costs no extra request. "Reaches" means
what those views tell: a member reaches the witness when its heartbeats
arrive, a standby is reached by the master when its replication stream
acknowledges changes, a voter is reachable when the answering DNS service's
consensus engine is connected to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskorg.webview.filters import ago

WITNESS = "dns"
# A heartbeat is due every 0.15 s; one older than this is late (but the node not yet dead).
LATE_HEARTBEAT = 0.5
# A busy master's standbys trail by a few changes at any instant; this many is worth a warning.
LATE_CHANGES = 50


@dataclass(frozen=True)
class Machine:
    """One box: the witness (DNS node) or a regular node."""

    key: str
    title: str
    kind: str              # witness | master | standby | spare (no replica stream)
    health: str            # ok | down | unknown
    address: str
    lines: tuple[str, ...]  # what the box says, in words (state is never colour alone)
    here: bool = False     # this webview runs on it
    draining: bool = False
    dns: str = ""          # its DNS service: voter | replica ("" when the view does not say)


@dataclass(frozen=True)
class Link:
    """A line between two boxes; `state` ok | late | down | unknown, said in `label` too."""

    source: str
    target: str
    kind: str  # heartbeat | replication
    state: str
    label: str


@dataclass
class Picture:
    epoch: Any
    machines: list[Machine]
    links: list[Link]
    notes: list[str] = field(default_factory=list)
    dns_summary: str = ""  # "DNS servers: 3 voters (3 reachable), 1 replica; arbiter 10.0.0.1"

    def machine(self, key: str) -> Machine:
        return next(m for m in self.machines if m.key == key)


def _heartbeat(member: dict[str, Any]) -> tuple[str, str]:
    seen = member.get("last_seen_ago")
    if seen is None:
        return "unknown", "no heartbeat yet"
    if not member.get("alive"):
        return "down", f"last heartbeat {ago(seen)}"
    if float(seen) > LATE_HEARTBEAT:
        return "late", f"heartbeat late, {ago(seen)}"
    return "ok", f"heartbeat {ago(seen)}"


def _replication(member: dict[str, Any], status: dict[str, Any] | None) -> tuple[str, str]:
    """How far the master's stream to this standby got, from `/v1/status` `replicas`."""
    if status is None:
        return "unknown", "replication unknown"
    replicas = status.get("replicas") or {}
    acked = replicas.get(member.get("node"))
    if acked is None:
        return ("down" if not member.get("alive") else "unknown"), "no replication stream"
    behind = max(0, int(status.get("seq") or 0) - int(acked))
    if behind == 0:
        return "ok", f"replica in sync, seq {acked}"
    return ("late" if behind > LATE_CHANGES else "ok"), f"replica seq {acked}, {behind} behind"


def _spare(node: str, status: dict[str, Any] | None) -> bool:
    """A node outside the master's standby set (`/v1/status` `standbys`): it gets no stream. Unknown
    (no answer, or a master that does not list its set) counts as a standby, as before."""
    standbys = (status or {}).get("standbys")
    return bool(standbys) and node not in standbys


def _dns_role(address: str, dns: dict[str, Any] | None) -> tuple[str, str]:
    """(voter | replica | "", words) for the DNS service at `address`, from the members view's `dns_servers`."""
    servers = (dns or {}).get("dns_servers") or {}
    voters = servers.get("voters") or []
    if not voters:
        return "", ""
    kind = "voter" if address in voters else "replica"
    words = f"DNS {kind}"
    if address == (dns or {}).get("arbiter"):
        words += " · arbiter"
    elif kind == "voter" and address not in (servers.get("reachable") or voters):
        words += " · unreachable"
    return kind, words


def build(dns: dict[str, Any] | None, status: dict[str, Any] | None, members: list[dict[str, Any]],
          dns_address: str, here_address: str | None, epoch: Any, master: str | None) -> Picture:
    """The picture's boxes and lines; `members` are the dashboard's merged member rows."""
    witness_ok = dns is not None
    shown_epoch = epoch if epoch is not None else "–"
    witness_dns, witness_words = _dns_role(dns_address, dns)
    if not witness_ok:
        witness_lines: tuple[str, ...] = ("does not answer", "no election possible")
    elif witness_words:
        witness_lines = (f"dnsmasq · {witness_words}", f"epoch {shown_epoch}")
    else:  # a DNS service that does not describe its consensus group: the witness was the arbiter
        witness_lines = ("dnsmasq · DNS service", f"arbiter · epoch {shown_epoch}")
    machines = [Machine(WITNESS, "DNS node", "witness", "ok" if witness_ok else "down", dns_address, witness_lines,
                        here=here_address == dns_address, dns=witness_dns)]
    links: list[Link] = []
    ordered = sorted(members, key=lambda m: (m.get("node") != master, m.get("number") or 0, m.get("node") or ""))
    for member in ordered:
        node = str(member.get("node"))
        is_master = node == master
        beat_state, beat_label = _heartbeat(member) if witness_ok else ("unknown", "heartbeats unknown (DNS down)")
        lines = [beat_label]
        if is_master:
            seq = (status or {}).get("seq")
            lines.append(f"master · seq {seq}" if seq is not None else "master (no answer)")
        elif _spare(node, status):
            lines.append("spare: no replica stream")
        else:
            rep_state, rep_label = _replication(member, status)
            lines.append(rep_label)
            if master:
                links.append(Link(master, node, "replication", rep_state, rep_label))
        dns_kind, dns_words = _dns_role(str(member.get("address") or ""), dns)
        if dns_words:
            lines.append(dns_words)
        # Health is the witness's word; without it, a stale "alive" from elsewhere would mislead.
        health = ("ok" if member.get("alive") else "down") if witness_ok else "unknown"
        kind = "master" if is_master else "spare" if _spare(node, status) else "standby"
        machines.append(Machine(node, node, kind, health,
                                str(member.get("address") or ""), tuple(lines),
                                here=bool(here_address) and member.get("address") == here_address,
                                draining=member.get("state") == "draining", dns=dns_kind))
        links.append(Link(node, WITNESS, "heartbeat", beat_state, beat_label))
    notes = []
    if not witness_ok:
        notes.append("The DNS node does not answer: heartbeats and elections are unknown.")
    if status is None and witness_ok:
        notes.append("The master does not answer: replication positions are unknown.")
    return Picture(epoch, machines, links, notes, _dns_summary(dns, machines))


def _dns_summary(dns: dict[str, Any] | None, machines: list[Machine]) -> str:
    servers = (dns or {}).get("dns_servers") or {}
    voters = servers.get("voters") or []
    if not voters:
        return ""
    reachable = len([v for v in servers.get("reachable") or [] if v in voters])
    replicas = sum(1 for m in machines if m.dns == "replica")
    return (f"DNS servers: {len(voters)} voter{'s' if len(voters) != 1 else ''} ({reachable} reachable), "
            f"{replicas} replica{'s' if replicas != 1 else ''}; arbiter {(dns or {}).get('arbiter') or 'none'}")


# ---- geometry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spot:
    machine: Machine
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Stroke:
    link: Link
    path: str


@dataclass(frozen=True)
class Drawing:
    spots: list[Spot]
    strokes: list[Stroke]
    width: float
    height: float
    wide: bool
    everywhere: bool = False  # the only drawing: shown on screens of every width


BOX_W, WITNESS_H, MEMBER_H, GAP = 236.0, 88.0, 108.0, 36.0
NARROW_W = 360.0


# A row wider than this many nodes would shrink the text past reading: the column serves screens too.
WIDE_MAX = 5


def drawings(picture: Picture) -> list[Drawing]:
    """What the page draws: a row for screens and a column for phones, or the column alone for a big cluster."""
    if len(picture.machines) - 1 > WIDE_MAX:
        column = _draw_narrow(picture)
        return [Drawing(column.spots, column.strokes, column.width, column.height, False, everywhere=True)]
    return [_draw_wide(picture), _draw_narrow(picture)]


def draw(picture: Picture, wide: bool) -> Drawing:
    """Wide: the witness above a row of nodes, replication arcs under them.
    Narrow (phones): a column, heartbeats down a spine on the left, replication on the right."""
    return _draw_wide(picture) if wide else _draw_narrow(picture)


def _draw_wide(picture: Picture) -> Drawing:
    members = picture.machines[1:]
    count = max(len(members), 1)
    width = count * BOX_W + (count - 1) * GAP + 2 * GAP
    witness = Spot(picture.machines[0], (width - BOX_W) / 2, 10, BOX_W, WITNESS_H)
    row_y = witness.y + WITNESS_H + 84
    spots = [witness] + [Spot(m, GAP + i * (BOX_W + GAP), row_y, BOX_W, MEMBER_H) for i, m in enumerate(members)]
    where = {s.machine.key: s for s in spots}
    strokes = []
    for index, link in enumerate(l for l in picture.links if l.kind == "heartbeat"):
        member = where[link.source]
        # Spread the ends along the witness's bottom edge so lines do not pile up.
        end_x = witness.x + BOX_W * (index + 1) / (len(members) + 1)
        start = (member.x + member.w / 2, member.y)
        end = (end_x, witness.y + WITNESS_H)
        mid = (start[1] + end[1]) / 2
        strokes.append(Stroke(link, f"M{start[0]:.1f},{start[1]:.1f} C{start[0]:.1f},{mid:.1f} "
                                    f"{end[0]:.1f},{mid:.1f} {end[0]:.1f},{end[1]:.1f}"))
    bottom = row_y + MEMBER_H
    arcs = [l for l in picture.links if l.kind == "replication" and l.source in where and l.target in where]
    for link in arcs:
        a, b = where[link.source], where[link.target]
        depth = 26 + 14 * abs(members.index(b.machine) - members.index(a.machine))
        strokes.append(Stroke(link, f"M{a.x + a.w / 2:.1f},{bottom:.1f} C{a.x + a.w / 2:.1f},{bottom + depth:.1f} "
                                    f"{b.x + b.w / 2:.1f},{bottom + depth:.1f} {b.x + b.w / 2:.1f},{bottom + 6:.1f}"))
    deepest = max((26 + 14 * (len(members) - 1)) * 0.75 if arcs else 0, 0)
    return Drawing(spots, strokes, width, bottom + deepest + 16, True)


def _draw_narrow(picture: Picture) -> Drawing:
    left, right = 28.0, NARROW_W - 28.0
    witness = Spot(picture.machines[0], 10, 8, NARROW_W - 20, WITNESS_H)
    spots = [witness]
    y = witness.y + WITNESS_H + 22
    for machine in picture.machines[1:]:
        spots.append(Spot(machine, left + 12, y, right - left - 24, MEMBER_H))
        y += MEMBER_H + 16
    where = {s.machine.key: s for s in spots}
    strokes = []
    beats = reps = 0
    for link in picture.links:
        if link.source not in where or link.target not in where:
            continue
        if link.kind == "heartbeat":
            # One spine per line, side by side, so a dead node's dashed line is not hidden under a live one.
            member, spine = where[link.source], left - 4 - 5 * min(beats, 3)
            mid = member.y + member.h / 2
            strokes.append(Stroke(link, f"M{spine:.1f},{witness.y + WITNESS_H:.1f} V{mid:.1f} H{member.x:.1f}"))
            beats += 1
        else:
            a, b = where[link.source], where[link.target]
            spine = right + 4 + 5 * min(reps, 3)
            strokes.append(Stroke(link, f"M{a.x + a.w:.1f},{a.y + a.h / 2:.1f} H{spine:.1f} V{b.y + b.h / 2:.1f} "
                                        f"H{b.x + b.w + 6:.1f}"))
            reps += 1
    return Drawing(spots, strokes, NARROW_W, y, False)
