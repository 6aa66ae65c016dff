import random

from workbench.core.pareto import pareto_front


def _brute(points):
    def dominated(p):
        return any(q is not p and q[1] <= p[1] and q[2] >= p[2] and (q[1] < p[1] or q[2] > p[2]) for q in points)
    return {p[0] for p in points if not dominated(p)}


def test_front_keeps_only_undominated_points_in_cost_order():
    points = [("base", 100, 0.99), ("prune", 40, 0.98), ("int8", 25, 0.985), ("bad", 60, 0.90), ("tiny", 5, 0.5)]
    assert pareto_front(points) == ["tiny", "int8", "base"]


def test_front_agrees_with_brute_force_on_random_points_with_ties():
    rng = random.Random(0)
    for _ in range(200):
        points = [(i, rng.randint(0, 8), rng.randint(0, 8) / 8) for i in range(rng.randint(0, 12))]
        front = pareto_front(points)
        assert set(front) == _brute(points)
        costs = [next(p[1] for p in points if p[0] == k) for k in front]
        assert costs == sorted(costs)
