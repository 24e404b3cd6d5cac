"""Choosing a node for one task instance: pure logic, no I/O.

Hard rules first (node constraints, labels, rules such as `node.hostname !=
pi3`, free CPU, memory and GPUs, free host ports), then a score: spread replicas of one task, then prefer nodes that are
measured faster and less loaded. When nothing fits, the reason names every
node and why, so a pending task explains itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from taskorg import labels as node_labels
from taskorg.spec import GpuRequest, Rule, TaskSpec

# What an instance reserves when its spec sets no resources.
DEFAULT_CPUS = 0.1
DEFAULT_MEMORY = 32 * 1024 * 1024
MiB = 1024 * 1024


@dataclass
class NodeView:
    name: str
    address: str
    labels: dict[str, str]
    cpus: float
    memory: int
    speed: float = 1.0
    load: float = 0.0  # 0..1, measured CPU use
    cpus_used: float = 0.0
    memory_used: int = 0
    ports_used: set[tuple[int, str]] = field(default_factory=set)
    tasks: Counter[str] = field(default_factory=Counter)
    gpus: int = 0  # as the node's telemetry counts them (nvidia-smi)
    gpus_used: int = 0

    def reserve(self, task_id: str, spec: TaskSpec) -> None:
        cpus, memory = reservation(spec)
        self.cpus_used += cpus
        self.memory_used += memory
        self.gpus_used += gpus_wanted(spec.gpus, self.gpus)
        self.ports_used |= host_ports(spec)
        self.tasks[task_id] += 1


def reservation(spec: TaskSpec) -> tuple[float, int]:
    return (spec.resources.cpus or DEFAULT_CPUS, spec.resources.memory or DEFAULT_MEMORY)


def gpus_wanted(request: GpuRequest | None, node_gpus: int) -> int:
    """GPUs an instance takes on a node: its count, or one per listed id; `all` (-1) takes every one
    the node has (at least one)."""
    if request is None:
        return 0
    if request.device_ids:
        return len(request.device_ids)
    if request.count is None or request.count < 0:
        return max(node_gpus, 1)
    return request.count


# A rule's attribute -> the node label it reads (`node.labels.X` reads X).
RULE_LABELS = {"node.hostname": node_labels.HOSTNAME, "node.platform.arch": node_labels.ARCH,
               "node.platform.os": node_labels.OS}


def rule_holds(rule: Rule, labels: dict[str, str]) -> bool:
    """Swarm's semantics: `==` needs the attribute to equal the value; `!=` holds when it does not,
    a node without the attribute included."""
    key = RULE_LABELS.get(rule.attribute) or rule.attribute.removeprefix("node.labels.")
    have = labels.get(key)
    return have == rule.value if rule.op == "==" else have != rule.value


def host_ports(spec: TaskSpec) -> set[tuple[int, str]]:
    return {(p.host, p.protocol) for p in spec.ports if p.host}


def why_not(node: NodeView, spec: TaskSpec) -> str | None:
    """None when the instance may run on the node, else the reason in words."""
    wanted_nodes = spec.constraints.nodes
    if wanted_nodes and node.name not in wanted_nodes:
        return f"not one of the nodes {', '.join(wanted_nodes)}"
    for key, value in spec.constraints.labels.items():
        if node.labels.get(key) != str(value):
            have = node.labels.get(key)
            return f"label {key}={value} wanted, node has {key}={have}" if have else f"no label {key}={value}"
    for rule in spec.constraints.rules:
        if not rule_holds(rule, node.labels):
            key = RULE_LABELS.get(rule.attribute) or rule.attribute.removeprefix("node.labels.")
            return f"{rule} wanted, node has {key}={node.labels.get(key) or '(none)'}"
    cpus, memory = reservation(spec)
    if spec.gpus is not None:
        wanted = gpus_wanted(spec.gpus, node.gpus)
        free = node.gpus - node.gpus_used
        if not node.gpus:
            return "no GPU (its telemetry reports none)"
        if free < wanted:
            return f"not enough free GPUs (needs {wanted}, {max(0, free)} of {node.gpus} free)"
    if node.cpus - node.cpus_used < cpus - 1e-9:
        return f"not enough CPU (needs {cpus:g}, {max(0.0, node.cpus - node.cpus_used):g} free)"
    if node.memory - node.memory_used < memory:
        return (f"not enough memory (needs {memory // MiB} MiB, "
                f"{max(0, node.memory - node.memory_used) // MiB} MiB free)")
    clash = host_ports(spec) & node.ports_used
    if clash:
        return "host port(s) in use: " + ", ".join(f"{p}/{proto}" for p, proto in sorted(clash))
    return None


def score(node: NodeView, task_id: str, spec: TaskSpec) -> tuple[float, ...]:
    """Higher is better: spread first, then speed on the free share of the node."""
    cpus, _ = reservation(spec)
    free_share = max(0.0, (node.cpus - node.cpus_used - cpus) / node.cpus) if node.cpus else 0.0
    return (-node.tasks[task_id], node.speed * (1.0 - min(node.load, 1.0)) * (0.5 + free_share), -_number(node.name))


def choose(task_id: str, spec: TaskSpec, nodes: list[NodeView]) -> tuple[NodeView | None, str]:
    """The best node (reserved on it), or None and the reason for each node."""
    fitting, reasons = [], []
    for node in nodes:
        reason = why_not(node, spec)
        if reason is None:
            fitting.append(node)
        else:
            reasons.append(f"{node.name}: {reason}")
    if not fitting:
        return None, "no node fits: " + ("; ".join(reasons) if reasons else "no living node")
    best = max(fitting, key=lambda n: score(n, task_id, spec))
    best.reserve(task_id, spec)
    return best, ""


def _number(name: str) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    return int(digits) if digits else 0
