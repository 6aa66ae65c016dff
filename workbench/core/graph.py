"""The framework-neutral layer graph every reader produces and every view consumes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator

from .shapes import TensorSpec

Shape = tuple[int, ...]


@dataclass
class Node:
    """One layer (operator) with its shapes and statistics.

    ``macs`` is None when no counting rule applies to ``op_type``: such nodes are listed in
    :attr:`LayerGraph.uncounted_ops`, never summed as zero. ``mac_rule`` names the rule that was applied.
    ``scope`` is the module path (``features.3.conv.0``); ``scope_source`` says whether it came from the
    model's module structure (``module``) or was derived from names (``derived``).
    """

    name: str
    op_type: str
    scope: str = ""
    scope_source: str = "module"
    attributes: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    input_shapes: list[Shape | None] = field(default_factory=list)
    output_shapes: list[Shape | None] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    params: int = 0
    weight_bytes: int = 0
    activation_bytes: int = 0
    macs: int | None = 0
    mac_rule: str = ""

    @property
    def flops(self) -> int | None:
        return None if self.macs is None else 2 * self.macs


@dataclass
class Edge:
    """A tensor flowing from one node to another (indices into :attr:`LayerGraph.nodes`)."""

    src: int
    dst: int
    tensor: str
    shape: Shape | None = None


@dataclass
class ScopeNode:
    """A module in the scope tree with figures summed over everything beneath it."""

    path: str
    name: str
    children: dict[str, "ScopeNode"] = field(default_factory=dict)
    node_indices: list[int] = field(default_factory=list)
    params: int = 0
    macs: int = 0
    weight_bytes: int = 0
    activation_bytes: int = 0
    node_count: int = 0
    uncounted: int = 0

    def walk(self) -> Iterator["ScopeNode"]:
        yield self
        for child in self.children.values():
            yield from child.walk()


@dataclass
class LayerGraph:
    """Nodes in topological order, edges between them, the bound inputs and outputs, and a scope tree."""

    format: str
    source: str
    nodes: list[Node]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    edges: list[Edge] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    request: Any = field(default=None, repr=False)  # the OpenRequest that produced it (to reload weights)
    _scope_root: ScopeNode | None = field(default=None, repr=False)

    # ---- totals (computed once: a graph does not change after its reader built it) ------------------------
    @cached_property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    @cached_property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes if n.macs is not None)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @cached_property
    def weight_bytes(self) -> int:
        return sum(n.weight_bytes for n in self.nodes)

    @cached_property
    def activation_bytes(self) -> int:
        return sum(n.activation_bytes for n in self.nodes)

    @cached_property
    def uncounted_ops(self) -> dict[str, int]:
        """Op types with no MAC rule, with how many nodes of each: their cost is not in :attr:`macs`."""
        return dict(Counter(n.op_type for n in self.nodes if n.macs is None))

    # ---- structure ----------------------------------------------------------------------------------------
    def build_edges(self) -> None:
        """Derive edges from tensor names: producer output → consumer input."""
        producer: dict[str, tuple[int, int]] = {}
        for i, node in enumerate(self.nodes):
            for k, t in enumerate(node.outputs):
                producer[t] = (i, k)
        edges = []
        for j, node in enumerate(self.nodes):
            for t in node.inputs:
                if t in producer:
                    i, k = producer[t]
                    shapes = self.nodes[i].output_shapes
                    edges.append(Edge(i, j, t, shapes[k] if k < len(shapes) else None))
        self.edges = edges

    @property
    def scope_tree(self) -> ScopeNode:
        """The module hierarchy with summed figures (built on first use)."""
        if self._scope_root is None:
            self._scope_root = build_scope_tree(self.nodes)
        return self._scope_root

    def top_layers(self, n: int, key: str = "macs") -> list[Node]:
        return sorted(self.nodes, key=lambda x: getattr(x, key) or 0, reverse=True)[:n]


def build_scope_tree(nodes: list[Node]) -> ScopeNode:
    """Group nodes by their dotted scope path and sum their figures up the tree."""
    root = ScopeNode(path="", name="")
    for i, node in enumerate(nodes):
        cur = root
        if node.scope:
            parts = node.scope.split(".")
            for depth in range(len(parts)):
                path = ".".join(parts[: depth + 1])
                cur = cur.children.setdefault(parts[depth], ScopeNode(path=path, name=parts[depth]))
        cur.node_indices.append(i)
    _sum(root, nodes)
    return root


def _sum(scope: ScopeNode, nodes: list[Node]) -> None:
    for child in scope.children.values():
        _sum(child, nodes)
        scope.params += child.params
        scope.macs += child.macs
        scope.weight_bytes += child.weight_bytes
        scope.activation_bytes += child.activation_bytes
        scope.node_count += child.node_count
        scope.uncounted += child.uncounted
    for i in scope.node_indices:
        n = nodes[i]
        scope.params += n.params
        scope.macs += n.macs or 0
        scope.weight_bytes += n.weight_bytes
        scope.activation_bytes += n.activation_bytes
        scope.node_count += 1
        scope.uncounted += n.macs is None
