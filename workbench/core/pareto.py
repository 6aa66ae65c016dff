"""The Pareto front of variants: those no other variant beats on both cost (size, latency) and accuracy."""

from __future__ import annotations

from typing import Hashable, Sequence


def pareto_front(points: Sequence[tuple[Hashable, float, float]]) -> list[Hashable]:
    """Keys of the points (key, cost, accuracy) not dominated by another point, in order of increasing cost.

    A point is dominated when another costs no more and is at least as accurate, and is strictly better in one of
    the two. Equal points are both kept. O(n log n): sort by cost, keep each point more accurate than all cheaper.
    """
    ordered = sorted(points, key=lambda p: (p[1], -p[2]))
    front: list[Hashable] = []
    best = float("-inf")
    best_cost = None
    for key, cost, acc in ordered:
        if acc > best:
            front.append(key)
            best, best_cost = acc, cost
        elif acc == best and cost == best_cost:
            front.append(key)  # an exact tie with the last front point is not dominated either
    return front
