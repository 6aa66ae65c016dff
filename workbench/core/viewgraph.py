"""What a graph view shows: every layer, or whole scopes collapsed into one box with summed figures.

Headless so it can be tested and run on a worker thread; the Qt view only draws what this decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import LayerGraph, ScopeNode


@dataclass
class VisibleItem:
    """One box: a layer (``node``) or a collapsed scope (``scope``)."""

    key: str
    kind: str
    title: str
    subtitle: str
    detail: str
    node_index: int | None = None
    scope: str | None = None
    node_indices: list[int] = field(default_factory=list)


# Short names for long op types, so box titles fit without eliding.
SHORT_OPS = {"BatchNormalization": "BatchNorm", "LayerNormalization": "LayerNorm", "GroupNormalization": "GroupNorm",
             "InstanceNormalization": "InstanceNorm", "GlobalAveragePool": "GlobalAvgPool",
             "GlobalMaxPool": "GlobalMaxPool", "DequantizeLinear": "Dequantize", "QuantizeLinear": "Quantize"}


def scope_title(path: str) -> str:
    """A short title for a scope box: its name, with the container's name for numbered children (layers.5)."""
    parts = path.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def _collapsible(scope: ScopeNode) -> bool:
    return scope.node_count > 1


def default_expansion(graph: LayerGraph, budget: int = 120) -> set[str]:
    """Scopes to expand so that about ``budget`` boxes are visible: breadth first, largest scopes first."""
    root = graph.scope_tree
    expanded = {""}
    visible = len(root.children) + len(root.node_indices)
    frontier = sorted(root.children.values(), key=lambda s: -s.node_count)
    while frontier:
        nxt = []
        for scope in frontier:
            if not _collapsible(scope):
                continue
            grow = len(scope.children) + len(scope.node_indices) - 1
            if visible + grow > budget:
                continue
            expanded.add(scope.path)
            visible += grow
            nxt.extend(scope.children.values())
        frontier = sorted(nxt, key=lambda s: -s.node_count)
    return expanded


def all_scopes(graph: LayerGraph) -> set[str]:
    return {s.path for s in graph.scope_tree.walk()}


class ViewGraph:
    """The visible boxes and the edges between them for a set of expanded scopes (the root is always open)."""

    def __init__(self, graph: LayerGraph, expanded: set[str]):
        self.graph = graph
        self.expanded = set(expanded) | {""}
        self.items: list[VisibleItem] = []
        self.owner: list[str] = []  # node index -> key of the box that shows it
        self.by_key: dict[str, VisibleItem] = {}
        self._build()

    def _build(self) -> None:
        from .report import human, shape_text

        graph = self.graph
        scopes = {s.path: s for s in graph.scope_tree.walk()}
        for i, node in enumerate(graph.nodes):
            box = None
            if node.scope:
                parts = node.scope.split(".")
                for depth in range(1, len(parts) + 1):
                    path = ".".join(parts[:depth])
                    if path not in self.expanded and _collapsible(scopes[path]):
                        box = path
                        break
            if box is None:
                key = f"n:{i}"
                item = VisibleItem(key, "node", SHORT_OPS.get(node.op_type, node.op_type),
                                   node.scope or node.name,
                                   ",".join(shape_text(s) for s in node.output_shapes) or "", node_index=i,
                                   node_indices=[i])
                self.by_key[key] = item
                self.items.append(item)
            else:
                key = f"s:{box}"
                item = self.by_key.get(key)
                if item is None:
                    scope = scopes[box]
                    item = VisibleItem(key, "scope", scope_title(box), f"{scope.node_count} layers · {box}",
                                       f"{human(scope.params)} params · {human(scope.macs)} MACs", scope=box)
                    self.by_key[key] = item
                    self.items.append(item)
                item.node_indices.append(i)
            self.owner.append(key)
        seen = set()
        self.edges: list[tuple[str, str]] = []
        for e in graph.edges:
            pair = (self.owner[e.src], self.owner[e.dst])
            if pair[0] != pair[1] and pair not in seen:
                seen.add(pair)
                self.edges.append(pair)

    def key_of_node(self, index: int) -> str:
        return self.owner[index]

    def expanded_to_show(self, index: int) -> set[str]:
        """The expansion set that makes node ``index`` visible as itself."""
        scope = self.graph.nodes[index].scope
        extra = set()
        if scope:
            parts = scope.split(".")
            extra = {".".join(parts[:d]) for d in range(1, len(parts) + 1)}
        return self.expanded | extra


def toggle(expanded: set[str], scope: str) -> set[str]:
    """Expand a collapsed scope, or collapse an expanded one.

    Scopes inside keep their own state while hidden, so expanding again shows what was open before.
    """
    return set(expanded) ^ {scope}


def collapsible_ancestor(graph: LayerGraph, index: int, expanded: set[str]) -> str | None:
    """The innermost expanded scope around node ``index`` that holds more than one layer (what "collapse" closes)."""
    scope = graph.nodes[index].scope
    if not scope:
        return None
    scopes = {s.path: s for s in graph.scope_tree.walk()}
    parts = scope.split(".")
    for depth in range(len(parts), 0, -1):
        path = ".".join(parts[:depth])
        if path in expanded and _collapsible(scopes[path]):
            return path
    return None
