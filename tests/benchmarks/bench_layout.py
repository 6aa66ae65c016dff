"""Layered layout speed: synthetic network graphs of 1,000, 5,000 and 20,000 nodes (prints, never asserts).

For each size: the layout time (median of 3 runs, the ``seconds`` the layout reports), the number of dummy points
(the layers that long edges cross), the crossings that remain, the picture's size and the worst check results.
Targets on the 2-core development machine: 1 k well under 0.3 s, 5 k under ~1 s, 20 k under ~3 s.

Run: ``.venv/bin/python tests/benchmarks/bench_layout.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from workbench.core.layout import (  # noqa: E402
    LayoutItem,
    count_crossings,
    edges_through_boxes,
    layered_layout,
    overlapping_boxes,
)
from workbench.core.synthetic import synthetic_graph  # noqa: E402

SIZES = (1_000, 5_000, 20_000)
TARGETS = {1_000: 0.3, 5_000: 1.0, 20_000: 3.0}


def graph_items(graph):
    """Boxes sized as the viewer sizes them: wider for longer op names, taller for convolutions."""
    items = [LayoutItem(n.name, 40.0 + 7.0 * len(n.op_type), 44.0 if n.op_type == "Conv" else 28.0)
             for n in graph.nodes]
    edges = [(graph.nodes[e.src].name, graph.nodes[e.dst].name) for e in graph.edges]
    return items, edges


def bench_layout(sizes=SIZES, repeats: int = 3, check: bool = True) -> list[dict]:
    print("layered_layout on synthetic network graphs; targets on the 2-core machine: 1 k < 0.3 s, 5 k < 1 s, "
          "20 k < 3 s")
    print(f"{'nodes':>7} {'edges':>7} {'layout s':>9} {'target':>7} {'dummies':>8} {'layers':>7} "
          f"{'crossings':>9} {'width':>8} {'height':>9} {'overlaps':>8} {'thru box':>8} {'check s':>8}")
    rows = []
    for n in sizes:
        items, edges = graph_items(synthetic_graph(n))
        times = []
        result = None
        for _ in range(repeats):
            result = layered_layout(items, edges)
            times.append(result.seconds)
        dummies = result.dummies
        crossings = count_crossings(result)
        t = time.perf_counter()
        overlaps = overlapping_boxes(result, items) if check else -1
        through = edges_through_boxes(result, items) if check else -1
        check_s = time.perf_counter() - t
        row = dict(nodes=n, edges=len(edges), seconds=statistics.median(times), dummies=dummies,
                   layers=max(result.layer_of.values()) + 1, crossings=crossings, width=result.width,
                   height=result.height, overlaps=overlaps, through=through)
        rows.append(row)
        print(f"{n:>7} {len(edges):>7} {row['seconds']:>9.3f} {TARGETS.get(n, float('nan')):>7.1f} {dummies:>8} "
              f"{row['layers']:>7} {crossings:>9} {result.width:>8.0f} {result.height:>9.0f} {overlaps:>8} "
              f"{through:>8} {check_s:>8.2f}")
    print("layout s = median of 3 runs of layered_layout (its own perf_counter time); dummies = points where long "
          "edges cross a layer; crossings between adjacent layers; overlaps and edges through boxes must be 0.")
    return rows


def main() -> None:
    bench_layout()


if __name__ == "__main__":
    main()
