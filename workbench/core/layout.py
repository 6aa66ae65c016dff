"""A headless layered (top-to-bottom, Sugiyama-style) graph layout in pure Python + numpy (no Qt).

Phases, each O((V + E) log V) or better, V counting the dummy points of long edges:

1. **Edges.** Self loops and duplicate edges are dropped. When the edges do not all run forward in item order, a
   depth-first search that follows the item order finds the back edges of cycles; they are laid out reversed and
   drawn back up. Items without edges go in a row after everything else; components are laid side by side.
2. **Layers.** Longest path from the sources; then sources that feed only later layers (constants, biases) move
   down to just above their first consumer.
3. **Dummies.** An edge spanning k > 1 layers passes k − 1 dummy points, so every segment runs between two
   consecutive layer bands and no edge passes through a box. A source (target) with many long edges gets one
   shared trunk of dummy points that its edges leave (join) one by one: a mask used by every layer costs one
   chain, not one per consumer.
4. **Order.** Depth-first order (or the previous layout's x, when given), then ``sweeps`` down and up passes of
   barycenter ordering, keeping the best order seen — crossings of all adjacent layer pairs are counted at once
   with a vectorised bit-by-bit inversion count, O(E log V) — then neighbour swaps where they remove crossings.
5. **x.** Nodes form vertical blocks that share one x, so chains and long edges are perfectly straight: chains of
   single-input/single-output layers, the dummy points of a long edge, a join with the input its other inputs
   branched off from (the spine of a residual block), a fork with the middle one of an odd number of branches,
   and a fork with the join of its branches (an inception or projected residual block), which keeps the spine of
   a deep network on one vertical line. Blocks then move toward the weighted median x of their neighbours (side
   branches barely pull a spine), with overlaps resolved by averaging a left-to-right and a right-to-left
   placement over the block order: forks and joins end up centred over their branches.
6. **y.** A layer's band is as tall as its tallest item; bands are ``layer_gap`` apart; items are centred in
   their band. Routes leave the source's bottom-centre, drop vertically to the band's edge, cross each gap in one
   straight segment, pass dummy points vertically and enter the target's top-centre.
"""

from __future__ import annotations

import bisect
import gc
import math
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

DUMMY_WIDTH = 8.0
_X_PASSES = 8
_BUNDLE = 4  # a source (target) with this many long edges gets one shared trunk of dummy points
_SIDE_WEIGHT = 0.05
_TRANSPOSE_ROUNDS = 16  # at most this many rounds of neighbour swaps on the best order


@dataclass
class LayoutItem:
    key: str  # unique
    width: float
    height: float


@dataclass
class EdgeRoute:
    src: str
    dst: str
    points: list[tuple[float, float]]  # from the source's bottom-centre, through bends, to the target's top-centre


@dataclass
class LayoutResult:
    centers: dict[str, tuple[float, float]]  # centre of each item
    layer_of: dict[str, int]
    edges: list[EdgeRoute]
    width: float
    height: float
    seconds: float  # time the layout took (perf_counter)
    dummies: int = 0  # dummy points placed for long edges (long edges from one source share them)


# ---------------------------------------------------------------------------------------------------------------
# crossing counting
# ---------------------------------------------------------------------------------------------------------------
def _grouped_inversions(group: np.ndarray, vals: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group g, the pairs i < j with ``group[i] == group[j] == g`` and ``vals[i] > vals[j]``.

    ``group`` is non-decreasing, values are >= 0. Bit by bit from the top (a wavelet-tree count): two values first
    differ at some bit k, where the larger one has a 1; so for each k, count the pairs in the same (group, higher
    bits) bucket where a 1 precedes a 0, then stably split every bucket by bit k. O(n log max(vals)) in numpy.
    """
    counts = np.zeros(n_groups, dtype=np.int64)
    n = len(vals)
    if n < 2:
        return counts
    vals = vals.astype(np.int64, copy=False)
    vmax = int(vals.max())
    if vmax <= 0:
        return counts
    bucket = group.astype(np.int64, copy=True)  # group << (bits done) | those bits
    idx = np.arange(n, dtype=np.int64)
    top = vmax.bit_length() - 1
    for k in range(top, -1, -1):
        bit = (vals >> k) & 1
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(bucket[1:], bucket[:-1], out=change[1:])
        start = np.maximum.accumulate(np.where(change, idx, 0))
        ones = np.cumsum(bit)
        ones_before_start = ones[start] - bit[start]
        ones_before = ones - bit - ones_before_start  # ones earlier in the same bucket
        zero = bit == 0
        counts += np.bincount(bucket[zero] >> (top - k), weights=ones_before[zero],
                              minlength=n_groups).astype(np.int64)[:n_groups]
        if k == 0:
            break
        # stable partition of every bucket: its zeros first, then its ones
        last = np.flatnonzero(np.append(change[1:], True))
        sizes = np.diff(np.append(-1, last))
        end = np.repeat(last + 1, sizes)  # one past the last index of each element's bucket
        ones_in_bucket = ones[end - 1] - ones_before_start
        zeros_in_bucket = (end - start) - ones_in_bucket
        new_pos = np.where(zero, start + (idx - start) - ones_before, start + zeros_in_bucket + ones_before)
        nv = np.empty_like(vals)
        nb = np.empty_like(bucket)
        nv[new_pos] = vals
        nb[new_pos] = bucket * 2 + bit
        vals, bucket = nv, nb
    return counts


def _crossings(layer_of_u: np.ndarray, pu: np.ndarray, pv: np.ndarray, n_gaps: int) -> np.ndarray:
    """Crossings between layers l and l + 1, per l, of the edges (u in layer l, v in l + 1) with these positions."""
    if len(pu) < 2:
        return np.zeros(n_gaps, dtype=np.int64)
    w = int(max(pu.max(), pv.max())) + 1
    key = (layer_of_u.astype(np.int64) * w + pu) * w + pv
    order = np.argsort(key, kind="stable")
    return _grouped_inversions(layer_of_u[order], pv[order], n_gaps)


# ---------------------------------------------------------------------------------------------------------------
# the layout
# ---------------------------------------------------------------------------------------------------------------
def layered_layout(items: list[LayoutItem], edges: Iterable[tuple[str, str]], *, node_gap: float = 24.0,
                   layer_gap: float = 40.0, sweeps: int = 4, previous: LayoutResult | None = None) -> LayoutResult:
    """Lay ``items`` out top to bottom in layers, edges pointing down, with few crossings. Deterministic."""
    t0 = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the layout allocates many small lists; cyclic collection passes would only cost time
    try:
        result = _layout(items, edges, node_gap, layer_gap, sweeps, previous)
    finally:
        if gc_was_enabled:
            gc.enable()
    result.seconds = time.perf_counter() - t0
    return result


def _layout(items, edges, node_gap, layer_gap, sweeps, previous) -> LayoutResult:
    n = len(items)
    keys = [it.key for it in items]
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != n:
        raise ValueError("layout item keys must be unique")
    widths = [float(it.width) for it in items]
    heights = [float(it.height) for it in items]

    # ---- 1. edges: drop self loops and duplicates; find back edges ------------------------------------------
    e_src: list[int] = []
    e_dst: list[int] = []
    seen: set[int] = set()
    for s, d in edges:
        a = index.get(s)
        b = index.get(d)
        if a is None or b is None:
            raise ValueError(f"edge {s!r} -> {d!r} names an item that is not laid out")
        code = a * n + b
        if a == b or code in seen:
            continue
        seen.add(code)
        e_src.append(a)
        e_dst.append(b)
    m = len(e_src)
    backward = [False] * m
    if any(a > b for a, b in zip(e_src, e_dst)):
        backward = _back_edges(n, e_src, e_dst)

    # layout edges (back edges reversed; a reversed edge may duplicate a forward one)
    le_of = [0] * m
    le_src: list[int] = []
    le_dst: list[int] = []
    le_index: dict[int, int] = {}
    for e in range(m):
        a, b = (e_dst[e], e_src[e]) if backward[e] else (e_src[e], e_dst[e])
        code = a * n + b
        j = le_index.get(code)
        if j is None:
            j = le_index[code] = len(le_src)
            le_src.append(a)
            le_dst.append(b)
        le_of[e] = j
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(le_src, le_dst):
        succ[a].append(b)
        pred[b].append(a)

    # ---- 2. layers ---------------------------------------------------------------------------------------
    layer = _longest_path_layers(n, succ, pred)
    connected = [bool(succ[v] or pred[v]) for v in range(n)]
    comp = _components(n, succ, pred, connected)
    n_layers = max((layer[v] + 1 for v in range(n) if connected[v]), default=0)

    # ---- 3. proper graph with dummy points --------------------------------------------------------------------
    p_layer = list(layer)
    p_width = list(widths)
    p_comp = list(comp)
    p_succ: list[list[int]] = [[] for _ in range(n)]
    p_pred: list[list[int]] = [[] for _ in range(n)]
    # Long edges from a source with many of them share one chain of dummy points (a trunk that the edges leave one
    # by one), and so do long edges into a target with many (a trunk they join): a tensor used all along the
    # network (a mask, a shape) or a Concat gathering outputs from everywhere costs one chain, not one per edge.
    first_dummy = [0] * len(le_src)
    out_long = [0] * n
    in_long = [0] * n
    for a, b in zip(le_src, le_dst):
        if layer[b] - layer[a] > 1:
            out_long[a] += 1
            in_long[b] += 1
    far: dict[int, int] = {}  # source trunks: the last layer they reach
    near: dict[int, int] = {}  # target trunks: the first layer they start from
    by_target = [False] * len(le_src)
    by_source = [False] * len(le_src)
    for j, (a, b) in enumerate(zip(le_src, le_dst)):
        if layer[b] - layer[a] > 1:
            if in_long[b] >= _BUNDLE and in_long[b] > out_long[a]:
                by_target[j] = True
                if layer[a] < near.get(b, layer[b]):
                    near[b] = layer[a]
            elif out_long[a] >= _BUNDLE:
                by_source[j] = True
                if layer[b] > far.get(a, 0):
                    far[a] = layer[b]
    trunk: dict[int, int] = {}  # trunk key (source a, target as -1 - b, own chain as -1 - n - j) -> first dummy
    chain_next: list[bool] = []  # per dummy point: whether the next id continues its trunk
    nxt = n
    for j, (a, b) in enumerate(zip(le_src, le_dst)):
        la = layer[a]
        span = layer[b] - la
        if span == 1:
            p_succ[a].append(b)
            p_pred[b].append(a)
            continue
        tk = -1 - b if by_target[j] else a if by_source[j] else -1 - n - j
        base = trunk.get(tk)
        if base is None:
            base = trunk[tk] = nxt
            lo, hi = (near[b], layer[b]) if by_target[j] else (la, far[a]) if by_source[j] else (la, layer[b])
            prev = -1
            for L in range(lo + 1, hi):
                d = nxt
                nxt += 1
                p_layer.append(L)
                p_width.append(DUMMY_WIDTH)
                p_comp.append(comp[a])
                p_succ.append([])
                p_pred.append([])
                chain_next.append(L + 1 < hi)
                if prev >= 0:
                    p_succ[prev].append(d)
                    p_pred[d].append(prev)
                prev = d
            if by_target[j]:
                p_succ[prev].append(b)
                p_pred[b].append(prev)
            else:
                p_succ[a].append(base)
                p_pred[base].append(a)
        if by_target[j]:
            first = base + la - near[b]
            p_succ[a].append(first)
            p_pred[first].append(a)
        else:
            first = base
            last = base + span - 2
            p_succ[last].append(b)
            p_pred[b].append(last)
        first_dummy[j] = first
    n_proper = nxt

    # ---- 4. order ---------------------------------------------------------------------------------------------
    layers = _initial_order(n, n_layers, p_layer, p_succ, p_pred, p_comp, connected)
    if previous is not None and previous.centers:
        layers = _seed_from_previous(layers, keys, previous.centers, n, p_pred, p_succ, p_comp)
    pos = [0] * n_proper
    for order in layers:
        for i, v in enumerate(order):
            pos[v] = i
    if sweeps > 0 and n_proper > 2:
        layers, pos = _reduce_crossings(layers, pos, p_layer, p_succ, p_pred, sweeps)

    # ---- 5. x ---------------------------------------------------------------------------------------------------
    x = _assign_x(n, layers, pos, p_succ, p_pred, p_width, p_comp, node_gap)

    # components side by side, then items without edges in a row on layer 0
    x = _pack(n, layers, x, p_width, p_comp, node_gap)
    right = max((x[v] + p_width[v] / 2 for order in layers for v in order), default=-node_gap)
    isolated = [v for v in range(n) if not connected[v]]
    cursor = right + node_gap if layers else 0.0
    for v in isolated:
        x[v] = cursor + widths[v] / 2
        cursor += widths[v] + node_gap
        layer[v] = 0
    if isolated and not n_layers:
        n_layers = 1

    # ---- 6. y -----------------------------------------------------------------------------------------------------
    band = [0.0] * n_layers
    for v in range(n):
        if heights[v] > band[layer[v]]:
            band[layer[v]] = heights[v]
    top = [0.0] * n_layers
    y = 0.0
    for L in range(n_layers):
        top[L] = y
        y += band[L] + layer_gap
    height = y - layer_gap if n_layers else 0.0
    bottom = [top[L] + band[L] for L in range(n_layers)]
    mid = [top[L] + band[L] / 2 for L in range(n_layers)]

    # normalise: left edge at 0
    left = min((x[v] - p_width[v] / 2 for v in range(n_proper)), default=0.0) if n_proper else 0.0
    if left != 0.0:
        x = [xv - left for xv in x]
    width = max((x[v] + p_width[v] / 2 for v in range(n_proper)), default=0.0)

    centers = {keys[v]: (x[v], mid[layer[v]]) for v in range(n)}
    layer_of = {keys[v]: layer[v] for v in range(n)}

    # ---- routes -------------------------------------------------------------------------------------------------
    # run_end[d]: the last dummy point of the vertical run (same trunk, same x) that dummy point d starts
    run_end = list(range(n_proper))
    for d in range(n_proper - 2, n - 1, -1):
        if chain_next[d - n] and x[d + 1] == x[d]:
            run_end[d] = run_end[d + 1]
    forward: list[list[tuple[float, float]] | None] = [None] * len(le_src)
    routes: list[EdgeRoute] = []
    for e in range(m):
        j = le_of[e]
        pts = forward[j]
        if pts is None:
            a, b = le_src[j], le_dst[j]
            la, lb = layer[a], layer[b]
            xa, xb = x[a], x[b]
            raw = [(xa, mid[la] + heights[a] / 2)]
            if raw[0][1] < bottom[la]:
                raw.append((xa, bottom[la]))
            d = first_dummy[j]
            last = d + lb - la - 2
            while d <= last:  # one vertical run of dummy points with the same x at a time
                r = run_end[d]
                if r > last:
                    r = last
                xd = x[d]
                y0, y1 = top[p_layer[d]], bottom[p_layer[r]]
                raw.append((xd, y0))
                if y1 > y0:
                    raw.append((xd, y1))
                d = r + 1
            end = (xb, mid[lb] - heights[b] / 2)
            if top[lb] < end[1]:
                raw.append((xb, top[lb]))
            raw.append(end)
            pts = forward[j] = _drop_vertical_midpoints(raw)
        if backward[e]:
            s, t = e_src[e], e_dst[e]  # s lies below t
            route = [(x[s], mid[layer[s]] + heights[s] / 2)] + pts[::-1] + [(x[t], mid[layer[t]] - heights[t] / 2)]
        else:
            route = list(pts)
        routes.append(EdgeRoute(keys[e_src[e]], keys[e_dst[e]], route))

    return LayoutResult(centers=centers, layer_of=layer_of, edges=routes, width=width, height=height, seconds=0.0,
                        dummies=n_proper - n)


def _drop_vertical_midpoints(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(pts) < 3:
        return pts
    out = [pts[0]]
    for i in range(1, len(pts) - 1):
        if not (pts[i][0] == out[-1][0] == pts[i + 1][0]):
            out.append(pts[i])
    out.append(pts[-1])
    return out


def _back_edges(n: int, e_src: list[int], e_dst: list[int]) -> list[bool]:
    """Edges that close a cycle in a depth-first search following the item order (iterative)."""
    out: list[list[int]] = [[] for _ in range(n)]
    for e, a in enumerate(e_src):
        out[a].append(e)
    state = [0] * n  # 0 new, 1 on the stack, 2 done
    back = [False] * len(e_src)
    for root in range(n):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, 0)]
        while stack:
            v, i = stack[-1]
            ov = out[v]
            if i < len(ov):
                stack[-1] = (v, i + 1)
                e = ov[i]
                w = e_dst[e]
                if state[w] == 1:
                    back[e] = True
                elif state[w] == 0:
                    state[w] = 1
                    stack.append((w, 0))
            else:
                state[v] = 2
                stack.pop()
    return back


def _longest_path_layers(n: int, succ: list[list[int]], pred: list[list[int]]) -> list[int]:
    """Longest path from the sources (Kahn order), then sources pulled down next to their first consumer."""
    indeg = [len(p) for p in pred]
    layer = [0] * n
    queue = [v for v in range(n) if indeg[v] == 0]
    head = 0
    while head < len(queue):
        u = queue[head]
        head += 1
        lu = layer[u] + 1
        for v in succ[u]:
            if layer[v] < lu:
                layer[v] = lu
            indeg[v] -= 1
            if indeg[v] == 0:
                queue.append(v)
    for v in range(n):
        if not pred[v] and succ[v]:
            first = min(layer[w] for w in succ[v]) - 1
            if first > layer[v]:
                layer[v] = first
    return layer


def _components(n: int, succ, pred, connected) -> list[int]:
    """Connected components numbered in the order of their first item."""
    comp = [-1] * n
    c = 0
    for r in range(n):
        if comp[r] >= 0 or not connected[r]:
            continue
        comp[r] = c
        stack = [r]
        while stack:
            v = stack.pop()
            for w in succ[v]:
                if comp[w] < 0:
                    comp[w] = c
                    stack.append(w)
            for w in pred[v]:
                if comp[w] < 0:
                    comp[w] = c
                    stack.append(w)
        c += 1
    return comp


def _initial_order(n, n_layers, p_layer, p_succ, p_pred, p_comp, connected) -> list[list[int]]:
    """Depth-first order from the sources in item order; components kept contiguous in every layer."""
    layers: list[list[int]] = [[] for _ in range(n_layers)]
    seen = [False] * len(p_layer)
    for r in range(n):
        if seen[r] or not connected[r] or p_pred[r]:
            continue
        seen[r] = True
        layers[p_layer[r]].append(r)
        stack = [(r, 0)]
        while stack:
            v, i = stack[-1]
            sv = p_succ[v]
            if i < len(sv):
                stack[-1] = (v, i + 1)
                w = sv[i]
                if not seen[w]:
                    seen[w] = True
                    layers[p_layer[w]].append(w)
                    stack.append((w, 0))
            else:
                stack.pop()
    if any(p_comp[order[i]] > p_comp[order[i + 1]] for order in layers for i in range(len(order) - 1)):
        layers = [sorted(order, key=p_comp.__getitem__) for order in layers]
    return layers


def _seed_from_previous(layers, keys, prev_centers: Mapping[str, tuple[float, float]], n, p_pred, p_succ, p_comp):
    """Order each layer by the previous x of items present before; others follow their neighbours."""
    key: dict[int, float] = {}
    for order in layers:
        for v in order:
            if v < n and keys[v] in prev_centers:
                key[v] = float(prev_centers[keys[v]][0])
    if not key:
        return layers
    for neighbours, seq in ((p_pred, layers), (p_succ, layers[::-1])):
        for order in seq:
            for v in order:
                if v in key:
                    continue
                ks = [key[u] for u in neighbours[v] if u in key]
                if ks:
                    key[v] = sum(ks) / len(ks)
    out = []
    for order in layers:
        last = -math.inf
        k_of: dict[int, float] = {}
        for v in order:  # a node without any key follows the keyed node before it in the depth-first order
            last = key.get(v, last)
            k_of[v] = last
        out.append(sorted(order, key=lambda v: (p_comp[v], k_of[v])))
    return out


# ---------------------------------------------------------------------------------------------------------------
# crossing reduction
# ---------------------------------------------------------------------------------------------------------------
def _reduce_crossings(layers, pos, p_layer, p_succ, p_pred, sweeps):
    """Barycenter sweeps with neighbour swaps, keeping the order with the fewest crossings."""
    eu: list[int] = []
    ev: list[int] = []
    for u, sv in enumerate(p_succ):
        for v in sv:
            eu.append(u)
            ev.append(v)
    eu_a = np.array(eu, dtype=np.int64)
    ev_a = np.array(ev, dtype=np.int64)
    lay_a = np.array(p_layer, dtype=np.int64)[eu_a] if len(eu) else np.zeros(0, dtype=np.int64)
    n_layers = len(layers)

    def per_gap(pos_list) -> np.ndarray:
        p = np.array(pos_list, dtype=np.int64)
        return _crossings(lay_a, p[eu_a], p[ev_a], max(n_layers - 1, 1))

    def improve(order_layers, gaps, rounds) -> int:
        """Neighbour swaps in the layers next to crossings; returns by how much the count fell."""
        dirty = np.zeros(n_layers, dtype=bool)
        hot = np.flatnonzero(gaps)
        dirty[hot] = True
        dirty[np.minimum(hot + 1, n_layers - 1)] = True
        return _transpose(order_layers, pos, p_succ, p_pred, rounds, dirty.tolist())

    gaps = per_gap(pos)
    best = int(gaps.sum())
    best_layers = [list(o) for o in layers]
    down = range(1, n_layers)
    up = range(n_layers - 2, -1, -1)
    for _ in range(sweeps):
        if best == 0:
            break
        for rng, nbrs in ((down, p_pred), (up, p_succ)):
            _barycenter_pass(layers, pos, rng, nbrs)
            c = int(per_gap(pos).sum())
            if c < best:
                best = c
                best_layers = [list(o) for o in layers]
                if c == 0:
                    break
    for order in best_layers:
        for i, v in enumerate(order):
            pos[v] = i
    if best > 0:  # then swap neighbours where that removes crossings (sweeping again would undo the swaps)
        improve(best_layers, per_gap(pos), _TRANSPOSE_ROUNDS)
    return best_layers, pos


def _pair_crossings(nu, nv, pos) -> int:
    """Crossings between the edges of u (to ``nu``) and of v (to ``nv``) when u lies left of v."""
    if not nu or not nv:
        return 0
    if len(nu) * len(nv) <= 64:
        c = 0
        for a in nu:
            pa = pos[a]
            for b in nv:
                if pa > pos[b]:
                    c += 1
        return c
    pb = sorted(pos[b] for b in nv)
    return sum(bisect.bisect_left(pb, pos[a]) for a in nu)


def _transpose(layers, pos, p_succ, p_pred, rounds, dirty) -> int:
    """Swap neighbours in the ``dirty`` layers while that removes crossings; returns how many it removed."""
    n_layers = len(layers)
    removed = 0
    for _ in range(rounds):
        again = [False] * n_layers
        for L in range(n_layers):
            if not dirty[L]:
                continue
            order = layers[L]
            changed = False
            for i in range(len(order) - 1):
                u, v = order[i], order[i + 1]
                pu, pv, su, sv = p_pred[u], p_pred[v], p_succ[u], p_succ[v]
                if len(pu) == 1 and len(pv) == 1:
                    a, b = pos[pu[0]], pos[pv[0]]
                    keep, swap = a > b, b > a
                else:
                    keep, swap = _pair_crossings(pu, pv, pos), _pair_crossings(pv, pu, pos)
                if len(su) == 1 and len(sv) == 1:
                    a, b = pos[su[0]], pos[sv[0]]
                    keep += a > b
                    swap += b > a
                else:
                    keep += _pair_crossings(su, sv, pos)
                    swap += _pair_crossings(sv, su, pos)
                if swap < keep:
                    order[i], order[i + 1] = v, u
                    pos[u], pos[v] = i + 1, i
                    removed += keep - swap
                    changed = True
            if changed:
                again[L] = True
                if L > 0:
                    again[L - 1] = True
                if L + 1 < n_layers:
                    again[L + 1] = True
        dirty = again
        if not any(dirty):
            break
    return removed


def _barycenter_pass(layers, pos, rng, nbrs) -> None:
    """Sort every layer in ``rng`` by the mean position of its neighbours in the layer just visited.

    Nodes without such neighbours keep their place; ties keep the current order (stable sort)."""
    getpos = pos.__getitem__
    for L in rng:
        order = layers[L]
        k = len(order)
        if k < 2:
            continue
        keys = []
        free = False
        for v in order:
            ns = nbrs[v]
            c = len(ns)
            if c == 1:
                keys.append(pos[ns[0]])
            elif c:
                keys.append(sum(map(getpos, ns)) / c)
            else:
                keys.append(None)
                free = True
        if not free:
            idx = sorted(range(k), key=keys.__getitem__)
            new = [order[i] for i in idx]
        else:
            movable = sorted((i for i in range(k) if keys[i] is not None), key=keys.__getitem__)
            new = list(order)
            slots = [i for i in range(k) if keys[i] is not None]
            for slot, i in zip(slots, movable):
                new[slot] = order[i]
        layers[L] = new
        for i, v in enumerate(new):
            pos[v] = i


# ---------------------------------------------------------------------------------------------------------------
# x coordinates
# ---------------------------------------------------------------------------------------------------------------
def _preferred(v, nbrs, pos, n):
    """The neighbour a node lines up with: the only one, or the middle of an odd number.

    Real items that continue the graph beyond the neighbour (not a constant feeding only this node, not a lone
    output) come first, then real items, then dummy points."""
    ns = nbrs[v]
    if len(ns) == 1:
        return ns[0]
    if not ns:
        return -1
    if v >= n:  # a trunk of shared long edges runs straight on
        on = [u for u in ns if u >= n]
        if len(on) == 1:
            return on[0]
    cand = [u for u in ns if u < n and nbrs[u]]
    if not cand:
        cand = [u for u in ns if u < n] or ns
    if len(cand) % 2 == 0:
        return -1
    if len(cand) == 1:
        return cand[0]
    cand = sorted(cand, key=pos.__getitem__)
    return cand[len(cand) // 2]


def _blocks(n, layers, pos, p_succ, p_pred, bridge=True) -> tuple[list[int], int, list[int]]:
    """Vertical blocks: non-crossing alignments of nodes with a neighbour above, decided top-down.

    A join lines up as :func:`_join_input` says. Where it shares x with a fork instead (``bridge``), the block
    spans layers it has no node in; a block graph made cyclic by that (possible only around crossings) is
    rebuilt without bridges."""
    n_proper = len(pos)
    pref_down = [_preferred(v, p_succ, pos, n) for v in range(n_proper)]
    align_up = [-1] * n_proper
    bridge_to = [-1] * n_proper
    blk = [-1] * n_proper
    top: list[int] = []  # the topmost node of each block
    bottom: list[int] = []  # the lowest layer of each block so far
    for v in layers[0] if layers else ():
        blk[v] = len(top)
        top.append(v)
        bottom.append(0)
    for L in range(len(layers) - 1):
        cands = []
        for v in layers[L + 1]:
            pv = p_pred[v]
            if len(pv) == 1:
                u = pv[0]
            elif v >= n and sum(1 for w in pv if w >= n) == 1:
                u = next(w for w in pv if w >= n)  # a trunk that long edges join runs straight on
            else:
                u, fork = _join_input(v, pv, blk, top, p_pred, pos, n, bridge)
                if fork >= 0:
                    bridge_to[v] = fork
            if u < 0 or pref_down[u] != v:
                continue
            prio = 0 if (u >= n and v >= n) else 1 if (len(p_succ[u]) == 1 and len(pv) == 1) else 2
            cands.append((prio, pos[u], pos[v], u, v))
        if cands:
            if all(cands[i][1] < cands[i + 1][1] for i in range(len(cands) - 1)):
                for c in cands:  # already non-crossing (the usual case)
                    align_up[c[4]] = c[3]
            else:
                chosen_u: list[int] = []
                chosen_v: list[int] = []
                for prio, pu, pv_, u, v in sorted(cands):
                    i = bisect.bisect_left(chosen_u, pu)
                    if (i > 0 and chosen_v[i - 1] > pv_) or (i < len(chosen_u) and chosen_v[i] < pv_):
                        continue
                    chosen_u.insert(i, pu)
                    chosen_v.insert(i, pv_)
                    align_up[v] = u
        for v in layers[L + 1]:
            u = align_up[v]
            if u >= 0:
                blk[v] = blk[u]
                bottom[blk[v]] = L + 1
                continue
            fork = bridge_to[v]
            if fork >= 0 and bottom[fork] < L + 1:
                blk[v] = fork  # the join shares the x of the fork its branches left
                bottom[fork] = L + 1
                continue
            blk[v] = len(top)
            top.append(v)
            bottom.append(L + 1)
    return blk, len(top), align_up


def _fork_of_join(v, p_pred, blk, top, n) -> int:
    """For a join that no input's block leads into: the block that all its branches left in one step, or -1.

    Such a fork and join (the input and the Concat of an inception block, the input and the Add of a projected
    residual) belong on one vertical line with the branches spread symmetrically between them."""
    preds = p_pred[v]
    if len(preds) < 2:
        return -1
    origin = -1
    branches = 0
    for w in preds:
        if w < n and not p_pred[w]:
            continue  # a constant
        ps = p_pred[top[blk[w]]]
        if len(ps) != 1:
            return -1
        o = blk[ps[0]]
        if origin >= 0 and o != origin:
            return -1
        origin = o
        branches += 1
    if branches < 2 or any(blk[w] == origin for w in preds):
        return -1
    return origin


_MAX_JOIN = 16  # joins with more inputs skip the spine test (it is quadratic in the inputs)
_HOPS = 8


def _join_input(v, preds, blk, top, p_pred, pos, n, bridge) -> tuple[int, int]:
    """How a join ``v`` lines up: (the input to align with, -1), (-1, the fork block to share x with) or (-1, -1).

    In this order: the input whose block the other inputs branched off from (a residual Add under its spine); the
    fork all inputs branched off from one step up (inception blocks: symmetric, whatever the branch lengths); the
    only real input among long edges arriving beside it; the middle one of an odd number of inputs."""
    if len(preds) <= _MAX_JOIN:
        for u in sorted(preds, key=lambda w: (w >= n, pos[w])):
            if not p_pred[u]:
                continue  # a constant
            spine = blk[u]
            if all(w == u or _hangs_from(w, spine, blk, top, p_pred) for w in preds):
                return u, -1
    if bridge:
        fork = _fork_of_join(v, p_pred, blk, top, n)
        if fork >= 0:
            return -1, fork
    cand = [u for u in preds if u >= n or p_pred[u]]  # constants feeding only this join do not count
    real = [u for u in cand if u < n]
    if len(real) == 1:
        return real[0], -1
    if len(cand) % 2 == 0:
        return -1, -1
    cand.sort(key=pos.__getitem__)
    return cand[len(cand) // 2], -1


def _hangs_from(w, spine, blk, top, p_pred) -> bool:
    """Whether ``w`` lies on a branch that left block ``spine`` higher up (or is a constant)."""
    if not p_pred[w]:
        return True
    for _ in range(_HOPS):
        t = top[blk[w]]
        ps = p_pred[t]
        if len(ps) != 1:
            return False
        w = ps[0]
        if blk[w] == spine:
            return True
    return False


def _assign_x(n, layers, pos, p_succ, p_pred, p_width, p_comp, node_gap) -> list[float]:
    n_proper = len(pos)
    if n_proper == 0:
        return []
    dummy_gap = node_gap / 2
    blk, nb, align_up = _blocks(n, layers, pos, p_succ, p_pred)
    built = _block_graph(n, layers, blk, nb, p_width, p_comp, node_gap, dummy_gap)
    if built is None:  # a fork and join sharing x across crossings: without those bridges (always acyclic)
        blk, nb, align_up = _blocks(n, layers, pos, p_succ, p_pred, bridge=False)
        built = _block_graph(n, layers, blk, nb, p_width, p_comp, node_gap, dummy_gap)
    if built is None:  # cannot happen with non-crossing alignments; one block per node
        blk = list(range(n_proper))
        align_up = [-1] * n_proper
        nb = n_proper
        built = _block_graph(n, layers, blk, nb, p_width, p_comp, node_gap, dummy_gap)
    topo, left, right = built

    # Block-level neighbour pairs for the desired positions. A block follows the neighbours at its ends (above
    # its top, below its bottom); side branches leaving or joining it midway barely pull it, so they arrange
    # themselves around a straight spine instead of dragging it sideways.
    has_down = [False] * n_proper
    for u in align_up:
        if u >= 0:
            has_down[u] = True
    ea: list[int] = []
    eb: list[int] = []
    wa: list[float] = []  # weight of the pair for block ea (the upper one)
    wb: list[float] = []
    for u, sv in enumerate(p_succ):
        bu = blk[u]
        w_u = _SIDE_WEIGHT if has_down[u] else 1.0
        for v in sv:
            bv = blk[v]
            if bu != bv:
                ea.append(bu)
                eb.append(bv)
                wa.append(w_u)
                wb.append(_SIDE_WEIGHT if align_up[v] >= 0 else 1.0)
    src = np.array(ea + eb, dtype=np.int64)
    dst = np.array(eb + ea, dtype=np.int64)
    wgt = np.array(wa + wb, dtype=np.float64)
    deg = np.bincount(src, weights=wgt, minlength=nb)

    xb = _balanced(topo, left, right, [0.0] * nb)
    for _ in range(_X_PASSES):
        xa = np.array(xb)
        xb = _balanced(topo, left, right, _weighted_median(src, xa[dst], wgt, deg, xa))
    return [xb[b] if b >= 0 else 0.0 for b in blk]  # items without edges are placed later


def _weighted_median(group, vals, w, total, default) -> list[float]:
    """Per group, the weighted median of ``vals`` (the mean of the two middle values at an exact half)."""
    out = default.copy()
    if len(group) == 0:
        return out.tolist()
    order = np.lexsort((vals, group))
    g = group[order]
    v = vals[order]
    cw = np.cumsum(w[order])
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    gid = g[starts]
    base = np.r_[0.0, cw[:-1]][starts]  # cumulative weight before each group
    half = base + total[gid] / 2
    idx = np.searchsorted(cw, half - 1e-9, side="left")
    ends = np.r_[starts[1:], len(g)] - 1
    idx = np.minimum(idx, ends)
    med = v[idx]
    exact = (np.abs(cw[idx] - half) <= 1e-9) & (idx < ends)
    med = np.where(exact, (v[idx] + v[np.minimum(idx + 1, len(v) - 1)]) / 2, med)
    out[gid] = med
    return out.tolist()


def _block_graph(n, layers, blk, nb, p_width, p_comp, node_gap, dummy_gap):
    """Separation constraints between blocks next to each other in a layer; their topological order."""
    sep: dict[int, float] = {}
    for order in layers:
        for i in range(len(order) - 1):
            u, v = order[i], order[i + 1]
            if p_comp[u] != p_comp[v]:
                continue
            gap = dummy_gap if (u >= n and v >= n) else node_gap
            s = (p_width[u] + p_width[v]) / 2 + gap
            code = blk[u] * nb + blk[v]
            if sep.get(code, -1.0) < s:
                sep[code] = s
    left: list[list[tuple[int, float]]] = [[] for _ in range(nb)]
    right: list[list[tuple[int, float]]] = [[] for _ in range(nb)]
    indeg = [0] * nb
    for code, s in sep.items():
        a, b = divmod(code, nb)
        left[b].append((a, s))
        right[a].append((b, s))
        indeg[b] += 1
    topo = [b for b in range(nb) if indeg[b] == 0]
    head = 0
    while head < len(topo):
        a = topo[head]
        head += 1
        for b, _ in right[a]:
            indeg[b] -= 1
            if indeg[b] == 0:
                topo.append(b)
    if len(topo) != nb:
        return None
    return topo, left, right


def _balanced(topo, left, right, want) -> list[float]:
    """Blocks as near ``want`` as the separations allow: the mean of the placement pushed right (blocks taken
    left to right) and the one pushed left (right to left). Both are feasible, so their mean is too."""
    nb = len(topo)
    xl = [0.0] * nb
    for b in topo:
        x = want[b]
        for a, s in left[b]:
            t = xl[a] + s
            if t > x:
                x = t
        xl[b] = x
    xr = [0.0] * nb
    for b in reversed(topo):
        x = want[b]
        for c, s in right[b]:
            t = xr[c] - s
            if t < x:
                x = t
        xr[b] = x
    return [(a + b) / 2 for a, b in zip(xl, xr)]


def _pack(n, layers, x, p_width, p_comp, node_gap) -> list[float]:
    """Components side by side, in the order of their first item, ``2 * node_gap`` apart."""
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for order in layers:
        for v in order:
            c = p_comp[v]
            a = x[v] - p_width[v] / 2
            b = x[v] + p_width[v] / 2
            if a < lo.get(c, math.inf):
                lo[c] = a
            if b > hi.get(c, -math.inf):
                hi[c] = b
    shift: dict[int, float] = {}
    cursor = 0.0
    for c in sorted(lo):
        shift[c] = cursor - lo[c]
        cursor += hi[c] - lo[c] + 2 * node_gap
    out = list(x)
    for order in layers:
        for v in order:
            out[v] = x[v] + shift[p_comp[v]]
    return out


# ---------------------------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------------------------
def _item_map(items) -> dict[str, LayoutItem]:
    if isinstance(items, Mapping):
        return dict(items)
    return {it.key: it for it in items}


def count_crossings(result: LayoutResult) -> int:
    """Crossings between edge segments of adjacent layers, from the drawn routes.

    Each route is followed through the layers it spans: its x at the centre line of every layer (the source's and
    target's centre x at its ends, the dummy point's x between). Two segments cross between layers L and L + 1 when
    their order at L and at L + 1 differ (shared ends do not count); routes sharing a trunk of long edges draw
    their common segments once, and these count once.
    """
    if not result.edges:
        return 0
    ys: dict[int, float] = {}
    for k, L in result.layer_of.items():
        ys.setdefault(L, result.centers[k][1])
    gl: list[int] = []
    xa: list[float] = []
    xb: list[float] = []
    for r in result.edges:
        la, lb = result.layer_of[r.src], result.layer_of[r.dst]
        pts = r.points
        if la > lb:
            la, lb = lb, la
            pts = pts[::-1]
            xs = [result.centers[r.dst][0]]
            x_end = result.centers[r.src][0]
        elif la < lb:
            xs = [result.centers[r.src][0]]
            x_end = result.centers[r.dst][0]
        else:
            continue
        i = 0
        for L in range(la + 1, lb):
            yl = ys[L]
            while i < len(pts) - 2 and pts[i + 1][1] < yl:
                i += 1
            (x0, y0), (x1, y1) = pts[i], pts[i + 1]
            xs.append(x0 if y1 == y0 else x0 + (x1 - x0) * (yl - y0) / (y1 - y0))
        xs.append(x_end)
        for k in range(len(xs) - 1):
            gl.append(la + k)
            xa.append(xs[k])
            xb.append(xs[k + 1])
    if len(gl) < 2:
        return 0
    # routes that share a trunk draw the same segment once: count distinct segments
    uniq = np.unique(np.stack([np.array(gl, dtype=np.float64), np.array(xa), np.array(xb)], axis=1), axis=0)
    g = uniq[:, 0].astype(np.int64)
    a = uniq[:, 1]
    b = uniq[:, 2]
    ra = np.unique(a, return_inverse=True)[1].astype(np.int64)
    rb = np.unique(b, return_inverse=True)[1].astype(np.int64)
    return int(_crossings(g, ra, rb, int(g.max()) + 1).sum())


def overlapping_boxes(result: LayoutResult, items) -> int:
    """Pairs of item boxes that overlap (with positive area; touching is fine)."""
    its = _item_map(items)
    boxes = []
    for k, (cx, cy) in result.centers.items():
        it = its[k]
        boxes.append((cx - it.width / 2, cy - it.height / 2, cx + it.width / 2, cy + it.height / 2))
    if len(boxes) < 2:
        return 0
    cell = _cell_size(boxes)
    grid = _grid(boxes, cell)
    eps = 1e-6
    count = 0
    for (gx, gy), members in grid.items():
        for ii in range(len(members)):
            i = members[ii]
            a = boxes[i]
            for jj in range(ii + 1, len(members)):
                b = boxes[members[jj]]
                ox0, oy0 = max(a[0], b[0]), max(a[1], b[1])
                ox1, oy1 = min(a[2], b[2]), min(a[3], b[3])
                if ox1 - ox0 > eps and oy1 - oy0 > eps:
                    # count each pair once: in the cell holding the top-left corner of the overlap
                    if (math.floor(ox0 / cell), math.floor(oy0 / cell)) == (gx, gy):
                        count += 1
    return count


def edges_through_boxes(result: LayoutResult, items) -> int:
    """Edge segments that cross the inside of an item box other than their own source and target."""
    its = _item_map(items)
    keys = list(result.centers)
    kidx = {k: i for i, k in enumerate(keys)}
    boxes = []
    for k in keys:
        cx, cy = result.centers[k]
        it = its[k]
        boxes.append((cx - it.width / 2, cy - it.height / 2, cx + it.width / 2, cy + it.height / 2))
    if not boxes:
        return 0
    cell = _cell_size(boxes)
    grid = _grid(boxes, cell)
    eps = 1e-6
    count = 0
    for r in result.edges:
        own = (kidx[r.src], kidx[r.dst])
        pts = r.points
        for s in range(len(pts) - 1):
            (x0, y0), (x1, y1) = pts[s], pts[s + 1]
            gx0, gx1 = math.floor(min(x0, x1) / cell), math.floor(max(x0, x1) / cell)
            gy0, gy1 = math.floor(min(y0, y1) / cell), math.floor(max(y0, y1) / cell)
            hit: set[int] = set()
            for gx in range(gx0, gx1 + 1):
                for gy in range(gy0, gy1 + 1):
                    for i in grid.get((gx, gy), ()):
                        if i in own or i in hit:
                            continue
                        if _segment_hits_box(x0, y0, x1, y1, boxes[i], eps):
                            hit.add(i)
            count += len(hit)
    return count


def _cell_size(boxes) -> float:
    sizes = sorted(max(b[2] - b[0], b[3] - b[1]) for b in boxes)
    return max(2.0 * sizes[len(sizes) // 2], 1.0)


def _grid(boxes, cell) -> dict[tuple[int, int], list[int]]:
    grid: dict[tuple[int, int], list[int]] = {}
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        for gx in range(math.floor(x0 / cell), math.floor(x1 / cell) + 1):
            for gy in range(math.floor(y0 / cell), math.floor(y1 / cell) + 1):
                grid.setdefault((gx, gy), []).append(i)
    return grid


def _segment_hits_box(x0, y0, x1, y1, box, eps) -> bool:
    """Whether the segment meets the open box shrunk by ``eps`` (Liang–Barsky clipping)."""
    bx0, by0, bx1, by1 = box[0] + eps, box[1] + eps, box[2] - eps, box[3] - eps
    if bx0 >= bx1 or by0 >= by1:
        return False
    t0, t1 = 0.0, 1.0
    dx, dy = x1 - x0, y1 - y0
    for p, q in ((-dx, x0 - bx0), (dx, bx1 - x0), (-dy, y0 - by0), (dy, by1 - y0)):
        if p == 0:
            if q <= 0:
                return False
        else:
            t = q / p
            if p < 0:
                if t > t1:
                    return False
                if t > t0:
                    t0 = t
            else:
                if t < t0:
                    return False
                if t < t1:
                    t1 = t
    return t0 < t1
