"""Dependencies between the tasks of a job: cycles and a start order.

`deps` maps a task name to the names it waits for (its `after`). Both
functions take the tasks in file order and keep to it wherever dependencies
leave a choice, so results are deterministic and a file written in a sensible
order keeps that order.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Mapping, Sequence

Deps = Mapping[str, Sequence[str]]


def find_cycles(names: Sequence[str], deps: Deps) -> list[list[str]]:
    """One cycle per group of tasks that wait on each other, e.g. ["a", "b", "a"].

    Each cycle starts (and ends) at its task that comes first in the file,
    and follows the shortest way around; cycles come in file order.
    """
    position = {name: index for index, name in enumerate(names)}
    cycles = []
    for group in _strongly_connected(names, deps):
        start = min(group, key=position.__getitem__)
        if len(group) > 1 or start in deps.get(start, ()):
            cycles.append(_shortest_cycle(start, set(group), deps))
    return sorted(cycles, key=lambda cycle: position[cycle[0]])


def dependency_order(names: Sequence[str], deps: Deps) -> list[str]:
    """The names with every task after the tasks it waits for (the graph must be acyclic).

    Among tasks that are ready, the one earliest in the file goes first.
    """
    position = {name: index for index, name in enumerate(names)}
    waiting = {name: {d for d in deps.get(name, ()) if d in position} for name in names}
    waiters: dict[str, list[str]] = {name: [] for name in names}
    for name, needs in waiting.items():
        for need in needs:
            waiters[need].append(name)
    ready = [position[name] for name in names if not waiting[name]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for waiter in waiters[name]:
            waiting[waiter].discard(name)
            if not waiting[waiter]:
                heapq.heappush(ready, position[waiter])
    if len(order) < len(names):
        raise ValueError("dependency cycle")
    return order


def _strongly_connected(names: Sequence[str], deps: Deps) -> list[list[str]]:
    """Tarjan's algorithm, iterative so long chains do not hit the recursion limit."""
    known = set(names)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in names:
        if root in index:
            continue
        work = [(root, iter([d for d in deps.get(root, ()) if d in known]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    groups.append(_pop_group(node, stack, on_stack))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter([d for d in deps.get(child, ()) if d in known])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def _pop_group(node: str, stack: list[str], on_stack: set[str]) -> list[str]:
    group = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        group.append(member)
        if member == node:
            return group


def _shortest_cycle(start: str, group: set[str], deps: Deps) -> list[str]:
    """Breadth-first from `start` back to itself, staying inside its group."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for dep in deps.get(node, ()):
            if dep == start:
                return _walk_back(node, start, previous) + [start]
            if dep in group and dep not in previous:
                previous[dep] = node
                queue.append(dep)
    raise ValueError(f"{start} is not on a cycle")


def _walk_back(node: str, start: str, previous: dict[str, str]) -> list[str]:
    """The breadth-first path start -> ... -> node."""
    walk = [node]
    while walk[-1] != start:
        walk.append(previous[walk[-1]])
    return walk[::-1]
