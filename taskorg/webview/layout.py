"""A layered drawing of a dependency graph (a job's `after:` edges), in pure Python.

Small jobs, drawn on a small machine: the classic layered recipe (longest-path
layers, virtual points where an edge skips a layer, a few barycentre sweeps to
untangle crossings) is a hundred lines and needs no graph library or
JavaScript. The page only turns the coordinates into SVG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

# Barycentre sweeps (down then up). Jobs are small: four sweeps settle them.
SWEEPS = 4


class CycleError(ValueError):
    """The edges form a cycle, so no layering exists (the spec parser refuses these)."""


@dataclass(frozen=True)
class Geometry:
    """Box size and gaps, in SVG units. `across` is the direction within a layer."""

    box_w: float = 170.0
    box_h: float = 62.0
    layer_gap: float = 56.0
    slot_gap: float = 16.0
    margin: float = 8.0
    horizontal: bool = True  # layers left to right; False: top to bottom
    virtual: float = 18.0    # room an edge passing through a layer takes in it


@dataclass(frozen=True)
class Box:
    key: str
    layer: int
    slot: int
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Route:
    """One edge as the points it passes: out of the source, through virtual points, into the target."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]

    def path(self, horizontal: bool) -> str:
        """An SVG path: smooth curves whose tangents follow the layer direction."""
        (x, y), rest = self.points[0], self.points[1:]
        parts = [f"M{x:.1f},{y:.1f}"]
        for nx, ny in rest:
            if horizontal:
                mid = (x + nx) / 2
                parts.append(f"C{mid:.1f},{y:.1f} {mid:.1f},{ny:.1f} {nx:.1f},{ny:.1f}")
            else:
                mid = (y + ny) / 2
                parts.append(f"C{x:.1f},{mid:.1f} {nx:.1f},{mid:.1f} {nx:.1f},{ny:.1f}")
            x, y = nx, ny
        return " ".join(parts)


@dataclass(frozen=True)
class Drawing:
    boxes: dict[str, Box]
    routes: list[Route]
    width: float
    height: float
    horizontal: bool


def _clean_edges(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Edges between known nodes, once each, without self-loops (a name may be unknown: skip it)."""
    known = set(nodes)
    seen: list[tuple[str, str]] = []
    for source, target in edges:
        if source in known and target in known and source != target and (source, target) not in seen:
            seen.append((source, target))
    return seen


def assign_layers(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source: a node sits one layer after its latest dependency.

    `edges` are (dependency, dependant). Raises CycleError naming the nodes left in a cycle.
    """
    edges = _clean_edges(nodes, edges)
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for source, target in edges:
        preds[target].append(source)
    layer: dict[str, int] = {}
    remaining = list(dict.fromkeys(nodes))
    while remaining:
        ready = [n for n in remaining if all(p in layer for p in preds[n])]
        if not ready:
            raise CycleError("dependency cycle among: " + ", ".join(remaining))
        for n in ready:
            layer[n] = 1 + max((layer[p] for p in preds[n]), default=-1)
        remaining = [n for n in remaining if n not in layer]
    return layer


def _virtual(source: str, target: str, layer: int) -> str:
    return f"\0{source}\0{target}\0{layer}"


def order_layers(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Each layer's items in drawing order; an edge that skips layers gets a virtual item in each.

    Virtual items are named by `_virtual` (they start with a NUL, so no task name clashes).
    """
    edges = _clean_edges(nodes, edges)
    layer = assign_layers(nodes, edges)
    layers: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for n in dict.fromkeys(nodes):
        layers[layer[n]].append(n)
    links: list[tuple[str, str]] = []  # between adjacent layers only
    for source, target in edges:
        previous = source
        for between in range(layer[source] + 1, layer[target]):
            point = _virtual(source, target, between)
            layers[between].append(point)
            links.append((previous, point))
            previous = point
        links.append((previous, target))
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for a, b in links:
        down.setdefault(a, []).append(b)
        up.setdefault(b, []).append(a)

    def sweep(rank: range, neighbours: dict[str, list[str]], step: int) -> None:
        for i in rank:
            position = {item: slot for slot, item in enumerate(layers[i - step])}
            current = {item: slot for slot, item in enumerate(layers[i])}

            def centre(item: str) -> float:
                around = [position[x] for x in neighbours.get(item, []) if x in position]
                return sum(around) / len(around) if around else float(current[item])

            layers[i].sort(key=lambda item: (centre(item), current[item]))

    for _ in range(SWEEPS):
        sweep(range(1, len(layers)), up, 1)
        sweep(range(len(layers) - 2, -1, -1), down, -1)
    return layers


def draw(nodes: Sequence[str], edges: Iterable[tuple[str, str]], geometry: Geometry = Geometry()) -> Drawing:
    """Boxes and edge routes for `nodes` with `edges` (dependency, dependant)."""
    edges = _clean_edges(nodes, edges)
    layers = order_layers(nodes, edges)
    g = geometry
    along, across = (g.box_w, g.box_h) if g.horizontal else (g.box_h, g.box_w)

    def size(item: str) -> float:
        return g.virtual if item.startswith("\0") else across

    def extent(items: list[str]) -> float:
        return sum(size(item) for item in items) + max(len(items) - 1, 0) * g.slot_gap

    span = max((extent(items) for items in layers), default=0.0)
    centres: dict[str, tuple[float, float]] = {}
    boxes: dict[str, Box] = {}
    for index, items in enumerate(layers):
        b = g.margin + (span - extent(items)) / 2
        a = g.margin + index * (along + g.layer_gap)
        for slot, item in enumerate(items):
            middle = b + size(item) / 2
            centres[item] = (a + along / 2, middle) if g.horizontal else (middle, a + along / 2)
            if not item.startswith("\0"):
                x, y = (a, b) if g.horizontal else (b, a)
                boxes[item] = Box(item, index, slot, x, y, g.box_w, g.box_h)
            b += size(item) + g.slot_gap
    routes = []
    for source, target in edges:
        points = [_exit(boxes[source], g.horizontal)]
        for k in range(boxes[source].layer + 1, boxes[target].layer):
            # Straight across the virtual slot, edge to edge: the curves bend only in the gaps, clear of boxes.
            x, y = centres[_virtual(source, target, k)]
            half = along / 2
            points += [(x - half, y), (x + half, y)] if g.horizontal else [(x, y - half), (x, y + half)]
        points.append(_entry(boxes[target], g.horizontal))
        routes.append(Route(source, target, tuple(points)))
    count = len(layers)
    length = 2 * g.margin + count * along + max(count - 1, 0) * g.layer_gap
    breadth = 2 * g.margin + span
    width, height = (length, breadth) if g.horizontal else (breadth, length)
    return Drawing(boxes, routes, max(width, 0.0), max(height, 0.0), g.horizontal)


def _exit(box: Box, horizontal: bool) -> tuple[float, float]:
    return (box.x + box.w, box.y + box.h / 2) if horizontal else (box.x + box.w / 2, box.y + box.h)


def _entry(box: Box, horizontal: bool) -> tuple[float, float]:
    return (box.x, box.y + box.h / 2) if horizontal else (box.x + box.w / 2, box.y)
