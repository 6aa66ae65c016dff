"""The layered layout: geometry invariants, crossing reduction, stability with `previous`, and the synthetic graphs."""

from __future__ import annotations

import random

import pytest

from workbench.core.graph import LayerGraph
from workbench.core.layout import (
    EdgeRoute,
    LayoutItem,
    LayoutResult,
    count_crossings,
    edges_through_boxes,
    layered_layout,
    overlapping_boxes,
)
from workbench.core.synthetic import synthetic_graph


# ---- helpers ----------------------------------------------------------------------------------------------------
def graph_items(graph: LayerGraph) -> tuple[list[LayoutItem], list[tuple[str, str]]]:
    """Boxes as a viewer sizes them: wider for longer op names, taller for convolutions."""
    items = [LayoutItem(n.name, 40.0 + 7.0 * len(n.op_type), 44.0 if n.op_type == "Conv" else 28.0)
             for n in graph.nodes]
    edges = [(graph.nodes[e.src].name, graph.nodes[e.dst].name) for e in graph.edges]
    return items, edges


def make_items(keys, width=60.0, height=30.0) -> list[LayoutItem]:
    return [LayoutItem(k, width, height) for k in keys]


def random_dag(n: int, m: int, seed: int, span: int = 6):
    rng = random.Random(seed)
    items = [LayoutItem(f"n{i}", rng.choice([12.0, 40.0, 90.0, 150.0]), rng.choice([10.0, 28.0, 60.0]))
             for i in range(n)]
    edges = []
    for _ in range(m):
        a = rng.randrange(n)
        b = a + rng.randint(1, span)
        if b < n:
            edges.append((f"n{a}", f"n{b}"))
    rng.shuffle(items)  # item order is not a topological order
    return items, edges


def assert_clean(result: LayoutResult, items, edges=None) -> None:
    """No overlaps, no edge through a box, every item placed, routes attached to the right points."""
    assert overlapping_boxes(result, items) == 0
    assert edges_through_boxes(result, items) == 0
    by_key = {it.key: it for it in items}
    assert set(result.centers) == set(by_key) == set(result.layer_of)
    for r in result.edges:
        (sx, sy), (tx, ty) = result.centers[r.src], result.centers[r.dst]
        assert r.points[0] == pytest.approx((sx, sy + by_key[r.src].height / 2))
        assert r.points[-1] == pytest.approx((tx, ty - by_key[r.dst].height / 2))
    for k, (cx, cy) in result.centers.items():
        it = by_key[k]
        assert cx - it.width / 2 >= -1e-6 and cx + it.width / 2 <= result.width + 1e-6
        assert cy - it.height / 2 >= -1e-6 and cy + it.height / 2 <= result.height + 1e-6
    if edges is not None:
        expected = {(a, b) for a, b in edges if a != b}
        assert {(r.src, r.dst) for r in result.edges} == expected
        assert len(result.edges) == len(expected)


def brute_force_crossings(result: LayoutResult) -> int:
    """Pairs of route pieces between the centre lines of adjacent layers that properly intersect."""
    ys = {}
    for k, L in result.layer_of.items():
        ys[L] = result.centers[k][1]
    pieces: dict[int, list[tuple[float, float]]] = {}
    for r in result.edges:
        la, lb = result.layer_of[r.src], result.layer_of[r.dst]
        xa, xb = result.centers[r.src][0], result.centers[r.dst][0]
        if la > lb:
            la, lb, xa, xb = lb, la, xb, xa
        pts = sorted(r.points, key=lambda p: p[1])

        def x_at(y):
            for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
                if y0 <= y <= y1 and y1 > y0:
                    return x0 + (x1 - x0) * (y - y0) / (y1 - y0)
            raise AssertionError("route does not pass this layer")

        xs = [xa] + [x_at(ys[L]) for L in range(la + 1, lb)] + [xb]
        for k in range(lb - la):
            pieces.setdefault(la + k, set()).add((xs[k], xs[k + 1]))  # shared trunk segments are drawn once
    total = 0
    for segs in pieces.values():
        segs = sorted(segs)
        for i in range(len(segs)):
            for j in range(i + 1, len(segs)):
                (a0, a1), (b0, b1) = segs[i], segs[j]
                if (a0 - b0) * (a1 - b1) < 0:
                    total += 1
    return total


# ---- shapes of simple graphs ----------------------------------------------------------------------------------------
def test_a_chain_is_one_vertical_column():
    keys = [f"c{i}" for i in range(12)]
    items = [LayoutItem(k, 30.0 + 17 * (i % 5), 20.0 + 9 * (i % 3)) for i, k in enumerate(keys)]
    edges = list(zip(keys, keys[1:]))
    r = layered_layout(items, edges)
    assert_clean(r, items, edges)
    assert [r.layer_of[k] for k in keys] == list(range(12))
    assert len({r.centers[k][0] for k in keys}) == 1
    ys = [r.centers[k][1] for k in keys]
    assert ys == sorted(ys)
    for route in r.edges:  # straight down: two points, same x
        assert len(route.points) == 2 and route.points[0][0] == route.points[1][0]


def test_chains_inside_branches_stay_vertical():
    # a → (b1 → b2 → b3) and (c1 → c2 → c3) → d: both branches are straight columns
    keys = ["a", "b1", "b2", "b3", "c1", "c2", "c3", "d"]
    edges = [("a", "b1"), ("b1", "b2"), ("b2", "b3"), ("b3", "d"), ("a", "c1"), ("c1", "c2"), ("c2", "c3"),
             ("c3", "d")]
    items = make_items(keys)
    r = layered_layout(items, edges)
    assert_clean(r, items, edges)
    assert len({r.centers[k][0] for k in ("b1", "b2", "b3")}) == 1
    assert len({r.centers[k][0] for k in ("c1", "c2", "c3")}) == 1
    assert r.centers["a"][0] == pytest.approx(r.centers["d"][0])


def test_a_diamond_is_balanced_and_uncrossed():
    items = make_items("abcd")
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    r = layered_layout(items, edges)
    assert_clean(r, items, edges)
    assert count_crossings(r) == 0
    xa, xb, xc, xd = (r.centers[k][0] for k in "abcd")
    assert r.layer_of == {"a": 0, "b": 1, "c": 1, "d": 2}
    assert xa == pytest.approx(xd) and xa == pytest.approx((xb + xc) / 2)
    assert abs(xb - xc) >= 60 + 24 - 1e-6


def test_a_residual_block_keeps_its_spine_straight_and_the_skip_beside_it():
    keys = ["x", "a", "b", "c", "add", "out"]
    edges = [("x", "a"), ("a", "b"), ("b", "c"), ("c", "add"), ("x", "add"), ("add", "out")]
    items = make_items(keys)
    r = layered_layout(items, edges)
    assert_clean(r, items, edges)
    assert count_crossings(r) == 0
    assert len({r.centers[k][0] for k in keys}) == 1  # x, a, b, c, add, out in one column
    skip = next(e for e in r.edges if (e.src, e.dst) == ("x", "add"))
    inner = [p for p in skip.points[1:-1]]
    assert inner and all(abs(p[0] - r.centers["x"][0]) >= 30 + 24 for p in inner[1:-1])


def test_inception_branches_are_centred_under_their_fork():
    edges = [("in", "pool")]
    for i, length in enumerate((1, 2, 3, 2)):
        prev = "pool"
        for j in range(length):
            edges.append((prev, f"b{i}.{j}"))
            prev = f"b{i}.{j}"
        edges.append((prev, "concat"))
    edges.append(("concat", "out"))
    keys = sorted({k for e in edges for k in e})
    items = make_items(keys)
    r = layered_layout(items, edges)
    assert_clean(r, items, edges)
    assert count_crossings(r) == 0
    heads = sorted(r.centers[f"b{i}.0"][0] for i in range(4))
    assert r.centers["pool"][0] == pytest.approx((heads[1] + heads[2]) / 2)
    assert r.centers["concat"][0] == pytest.approx(r.centers["pool"][0])
    assert r.centers["out"][0] == pytest.approx(r.centers["concat"][0])


def test_long_edges_pass_between_layers_and_constants_sit_by_their_consumer():
    keys = ["in", "a", "b", "c", "d", "const"]
    edges = [("in", "a"), ("a", "b"), ("b", "c"), ("c", "d"), ("in", "d"), ("const", "c")]
    items = make_items(keys)
    r = layered_layout(items, edges)
    assert_clean(r, items, edges)
    assert r.layer_of["const"] == r.layer_of["c"] - 1  # pulled down next to its only consumer
    long_edge = next(e for e in r.edges if (e.src, e.dst) == ("in", "d"))
    assert len(long_edge.points) > 2 and r.dummies == 3  # "in" → "d" spans four layers
    ys = [p[1] for p in long_edge.points]
    assert ys == sorted(ys)


# ---- crossing reduction --------------------------------------------------------------------------------------------
def test_tangled_parallel_chains_are_untangled():
    # Two chains with cross-links in both directions; drawable without crossings. A random previous x tangles the
    # initial order; the sweeps must find a crossing-free one.
    n = 14
    keys = [f"{c}{i}" for i in range(n) for c in "ab"]
    edges = [(f"a{i}", f"a{i + 1}") for i in range(n - 1)] + [(f"b{i}", f"b{i + 1}") for i in range(n - 1)]
    edges += [(f"a{i}", f"b{i + 1}") if i % 2 == 0 else (f"b{i}", f"a{i + 1}") for i in range(n - 1)]
    items = make_items(keys)
    rng = random.Random(3)
    tangled = LayoutResult(centers={k: (rng.random() * 500, 0.0) for k in keys}, layer_of={}, edges=[],
                           width=0.0, height=0.0, seconds=0.0)
    before = layered_layout(items, edges, sweeps=0, previous=tangled)
    assert count_crossings(before) > 0
    after = layered_layout(items, edges, previous=tangled)
    assert count_crossings(after) == 0
    assert_clean(after, items, edges)
    # the two chains end up as two straight columns
    assert len({after.centers[f"a{i}"][0] for i in range(n)}) == 1
    assert len({after.centers[f"b{i}"][0] for i in range(n)}) == 1


def test_sweeps_reduce_crossings_on_random_dags():
    for seed in range(3):
        items, edges = random_dag(150, 260, seed, span=8)
        none = count_crossings(layered_layout(items, edges, sweeps=0))
        some = count_crossings(layered_layout(items, edges, sweeps=4))
        assert some < none
        assert some <= 0.6 * none


def test_count_crossings_matches_a_brute_force_count():
    for seed in range(4):
        items, edges = random_dag(60, 110, seed, span=5)
        r = layered_layout(items, edges, sweeps=seed % 2)
        assert count_crossings(r) == brute_force_crossings(r)


def test_synthetic_graphs_have_no_crossings():
    for n in (300, 2000):
        r = layered_layout(*graph_items(synthetic_graph(n)))
        assert count_crossings(r) == 0


# ---- geometry on larger graphs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [300, 2000])
def test_synthetic_graphs_are_clean(n):
    items, edges = graph_items(synthetic_graph(n, seed=n))
    r = layered_layout(items, edges)
    assert_clean(r, items, edges)
    # layer bands: the same centre y within a layer, bands apart by at least layer_gap
    by_layer: dict[int, list[str]] = {}
    for k, L in r.layer_of.items():
        by_layer.setdefault(L, []).append(k)
    heights = {it.key: it.height for it in items}
    prev_bottom = None
    for L in sorted(by_layer):
        ks = by_layer[L]
        assert len({r.centers[k][1] for k in ks}) == 1
        top = min(r.centers[k][1] - heights[k] / 2 for k in ks)
        if prev_bottom is not None:
            assert top - prev_bottom >= 40.0 - 1e-6
        prev_bottom = max(r.centers[k][1] + heights[k] / 2 for k in ks)
    # every edge points down
    assert all(r.layer_of[e.src] < r.layer_of[e.dst] for e in r.edges)


@pytest.mark.parametrize("n,seed", [(300, 0), (300, 5), (2000, 1)])
def test_the_spine_of_a_deep_network_is_one_vertical_line(n, seed):
    # Stem, every residual / inception / attention block's output and the head share one x: no drift sideways
    # however deep the network, so the picture stays a few boxes wide.
    graph = synthetic_graph(n, seed)
    items, edges = graph_items(graph)
    r = layered_layout(items, edges)
    last: dict[str, str] = {}
    for node in graph.nodes:
        parts = node.scope.split(".")
        last[".".join(parts[:2]) if parts[0].startswith("stage") else parts[0]] = node.name
    assert len(last) > 10
    xs = [r.centers[k][0] for k in last.values()]
    assert max(xs) - min(xs) < 1e-6
    assert r.width < 6 * max(it.width for it in items)


@pytest.mark.parametrize("seed", range(6))
def test_random_dags_are_clean(seed):
    items, edges = random_dag(120 + 40 * seed, 200 + 60 * seed, seed, span=2 + seed)
    items.append(LayoutItem("lonely", 30.0, 30.0))  # an item without edges
    r = layered_layout(items, edges, node_gap=10.0 + seed, layer_gap=20.0 + 5 * seed)
    assert_clean(r, items, edges)
    assert r.layer_of["lonely"] == 0


def test_components_are_placed_side_by_side():
    edges = [("a1", "a2"), ("a2", "a3"), ("b1", "b2"), ("b1", "b3"), ("c1", "c2")]
    keys = ["a1", "b1", "c1", "a2", "b2", "b3", "c2", "a3", "x", "y"]
    items = make_items(keys)
    r = layered_layout(items, edges)
    assert_clean(r, items, edges)

    def span(ks):
        return min(r.centers[k][0] for k in ks) - 30, max(r.centers[k][0] for k in ks) + 30

    spans = [span(["a1", "a2", "a3"]), span(["b1", "b2", "b3"]), span(["c1", "c2"]), span(["x"]), span(["y"])]
    for (lo1, hi1), (lo2, hi2) in zip(spans, spans[1:]):
        assert hi1 <= lo2  # left to right in the order of their first item, not interleaved
    assert r.layer_of["x"] == r.layer_of["y"] == 0


def test_many_long_edges_from_one_source_share_a_trunk():
    keys = [f"c{i}" for i in range(200)]
    edges = list(zip(keys, keys[1:])) + [("mask", keys[i]) for i in range(5, 200, 10)]
    edges += [(keys[i], "sink") for i in range(0, 190, 20)]  # and many into one target
    items = make_items(keys + ["mask", "sink"])
    r = layered_layout(items, edges)
    assert_clean(r, items, edges)
    separate = sum(abs(r.layer_of[e.dst] - r.layer_of[e.src]) - 1 for e in r.edges)
    assert separate > 1500 and r.dummies < 400  # one trunk each instead of a chain per edge
    assert count_crossings(r) == brute_force_crossings(r)
    assert len({r.centers[k][0] for k in keys}) == 1  # the chain stays straight beside the trunks


# ---- robustness ----------------------------------------------------------------------------------------------------
def test_cycles_self_loops_and_duplicates_do_not_break_it():
    keys = ["a", "b", "c", "d", "e"]
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "d"), ("a", "b"), ("d", "e"), ("e", "c"),
             ("b", "a")]
    items = make_items(keys)
    r = layered_layout(items, edges)
    assert_clean(r, items)
    assert {(e.src, e.dst) for e in r.edges} == {(a, b) for a, b in edges if a != b}
    assert len(r.edges) == 7  # one self loop and one duplicate dropped
    back = [e for e in r.edges if r.layer_of[e.src] > r.layer_of[e.dst]]
    assert back  # some edges of the cycles are drawn back up
    assert layered_layout(make_items(["s"]), [("s", "s")]).edges == []


def test_empty_and_single_item_layouts():
    r = layered_layout([], [])
    assert r.centers == {} and r.edges == [] and r.width == 0 and r.height == 0
    r = layered_layout([LayoutItem("only", 50.0, 20.0)], [])
    assert r.centers == {"only": (25.0, 10.0)} and r.width == 50.0 and r.height == 20.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        layered_layout(make_items(["a", "a"]), [])
    with pytest.raises(ValueError):
        layered_layout(make_items(["a"]), [("a", "ghost")])


def test_the_checks_find_real_faults():
    items = make_items(["a", "b", "c"])
    result = LayoutResult(centers={"a": (30.0, 15.0), "b": (60.0, 20.0), "c": (200.0, 100.0)},
                          layer_of={"a": 0, "b": 0, "c": 1}, width=230.0, height=115.0, seconds=0.0,
                          edges=[EdgeRoute("a", "c", [(30.0, 30.0), (30.0, 60.0), (200.0, 85.0)]),
                                 EdgeRoute("c", "a", [(200.0, 115.0), (60.0, 0.0), (30.0, 0.0)])])
    assert overlapping_boxes(result, items) == 1  # a and b overlap
    assert edges_through_boxes(result, items) == 1  # c → a runs through b


# ---- stability -----------------------------------------------------------------------------------------------------
def test_layout_is_deterministic():
    items, edges = graph_items(synthetic_graph(600, seed=4))
    r1 = layered_layout(items, edges)
    r2 = layered_layout(list(items), list(edges))
    assert r1.centers == r2.centers and r1.layer_of == r2.layer_of
    assert [(e.src, e.dst, e.points) for e in r1.edges] == [(e.src, e.dst, e.points) for e in r2.edges]
    items, edges = random_dag(200, 400, 9, span=7)
    assert layered_layout(items, edges).centers == layered_layout(items, edges).centers


def _collapse(graph: LayerGraph, items, edges, scope: str):
    """What a viewer does when the user collapses a scope: its nodes become one box."""
    inside = {n.name for n in graph.nodes if n.scope == scope or n.scope.startswith(scope + ".")}
    new_items = [it for it in items if it.key not in inside] + [LayoutItem(scope, 180.0, 40.0)]

    def m(k):
        return scope if k in inside else k

    new_edges = [(m(a), m(b)) for a, b in edges if not (a in inside and b in inside)]
    return new_items, new_edges


def _order_flips(before: LayoutResult, after: LayoutResult) -> tuple[int, int]:
    """Pairs of items sharing a layer in both layouts whose left-to-right order changed, and all such pairs."""
    common = [k for k in after.centers if k in before.centers]
    groups: dict[tuple[int, int], list[str]] = {}
    for k in common:
        groups.setdefault((before.layer_of[k], after.layer_of[k]), []).append(k)
    flips = pairs = 0
    for ks in groups.values():
        for i in range(len(ks)):
            for j in range(i + 1, len(ks)):
                a, b = ks[i], ks[j]
                pairs += 1
                flips += (before.centers[a][0] < before.centers[b][0]) != (after.centers[a][0] < after.centers[b][0])
    return flips, pairs


def test_previous_keeps_the_order_of_unchanged_items():
    graph = synthetic_graph(400, seed=2)
    items, edges = graph_items(graph)
    full = layered_layout(items, edges)
    scopes = sorted({".".join(n.scope.split(".")[:2]) for n in graph.nodes if n.scope.startswith("stage")})
    checked = 0
    for scope in scopes[1::5]:
        c_items, c_edges = _collapse(graph, items, edges, scope)
        collapsed = layered_layout(c_items, c_edges, previous=full)
        assert_clean(collapsed, c_items, c_edges)
        flips, pairs = _order_flips(full, collapsed)
        assert flips == 0
        checked += pairs
        # expanding again from the collapsed picture keeps its order too
        expanded = layered_layout(items, edges, previous=collapsed)
        assert _order_flips(collapsed, expanded)[0] == 0
    assert checked > 50


def test_previous_order_wins_over_the_default_order():
    # Without `previous`, a fork's branches follow the item order; with it, they follow the old picture.
    keys = ["top", "l", "m", "r", "bottom"]
    edges = [("top", "l"), ("top", "m"), ("top", "r"), ("l", "bottom"), ("m", "bottom"), ("r", "bottom")]
    items = make_items(keys)
    plain = layered_layout(items, edges)
    assert plain.centers["l"][0] < plain.centers["m"][0] < plain.centers["r"][0]
    old = LayoutResult(centers={"r": (0.0, 0.0), "m": (100.0, 0.0), "l": (200.0, 0.0)}, layer_of={}, edges=[],
                       width=0.0, height=0.0, seconds=0.0)
    seeded = layered_layout(items + [LayoutItem("new", 40.0, 20.0)], edges + [("top", "new")], previous=old)
    assert seeded.centers["r"][0] < seeded.centers["m"][0] < seeded.centers["l"][0]


# ---- the synthetic graphs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 6, 7, 50, 300, 1234])
def test_synthetic_graph_has_exactly_n_nodes_and_is_a_dag(n):
    g = synthetic_graph(n)
    assert len(g.nodes) == n
    assert g.format == "synthetic" and g.source == f"synthetic:{n}"
    assert len({nd.name for nd in g.nodes}) == n
    assert all(e.src < e.dst for e in g.edges)  # nodes in topological order
    if n > 1:
        assert len(g.edges) >= n - 1
    for nd in g.nodes:
        assert isinstance(nd.params, int) and (nd.macs is None or isinstance(nd.macs, int))
        assert nd.output_shapes and all(isinstance(d, int) and d > 0 for d in nd.output_shapes[0])


def test_synthetic_graph_looks_like_a_network():
    g = synthetic_graph(1500, seed=1)
    ops = {nd.op_type for nd in g.nodes}
    assert {"Conv", "BatchNormalization", "Relu", "Add", "Concat", "MatMul", "Softmax", "Gemm"} <= ops
    assert max(len(nd.scope.split(".")) for nd in g.nodes) >= 4  # stage2.block7.branch1.conv2
    assert any(".branch" in nd.scope for nd in g.nodes) and any(".attn." in nd.scope for nd in g.nodes)
    assert not g.uncounted_ops and g.params > 10_000_000 and g.macs > 10**9
    assert g.inputs[0].shape == [1, 3, 224, 224] and g.outputs[0].name == "logits"
    tree = g.scope_tree
    assert {"stem", "stage1", "stage2", "stage3", "stage4", "head"} <= set(tree.children)
    concat_fanin = max(sum(1 for e in g.edges if e.dst == i) for i, nd in enumerate(g.nodes) if nd.op_type == "Concat")
    assert 2 <= concat_fanin <= 4


def test_synthetic_graph_is_deterministic_and_seeded():
    a, b, c = synthetic_graph(500, seed=7), synthetic_graph(500, seed=7), synthetic_graph(500, seed=8)
    sig = [(n.name, n.op_type, n.output_shapes, n.params, n.macs) for n in a.nodes]
    assert sig == [(n.name, n.op_type, n.output_shapes, n.params, n.macs) for n in b.nodes]
    assert sig != [(n.name, n.op_type, n.output_shapes, n.params, n.macs) for n in c.nodes]
