"""Synthetic, neural-network-shaped layer graphs of any size (for layout tests, benchmarks and demos).

``synthetic_graph(n, seed)`` builds a deterministic :class:`LayerGraph` of exactly ``n`` nodes that looks like a
real image model: a stem, four stages of residual bottlenecks, inception-like blocks (2–4 branches joined by a
Concat) and attention blocks (LayerNorm, q/k/v MatMuls, Softmax, a relative-position bias, an MLP), then a
classifier head. Scopes are several levels deep (``stage2.block7.branch1.conv2``) so a viewer can collapse them;
shapes, parameters and MACs are plausible and counted with the project's own MAC rules.
"""

from __future__ import annotations

import random
from math import prod

from .graph import LayerGraph, Node
from .opcount import count_macs, fold_batchnorm
from .shapes import TensorSpec

Shape = tuple[int, ...]

# (output channels, bottleneck width, spatial size) of the four stages; where each stage ends (fraction of nodes)
_STAGES = [(256, 64, 56), (512, 128, 28), (1024, 256, 14), (2048, 512, 7)]
_STAGE_ENDS = [0.15, 0.40, 0.80, 1.0]
# block kinds per stage with their weights
_KINDS = [
    (("residual", 0.6), ("inception", 0.4)),
    (("residual", 0.55), ("inception", 0.45)),
    (("residual", 0.4), ("inception", 0.3), ("attention", 0.3)),
    (("residual", 0.4), ("attention", 0.6)),
]
_HEAD = 3  # GlobalAveragePool, Flatten, Gemm
_STEM = 4  # Conv, BatchNormalization, Relu, MaxPool
_CLASSES = 1000


class _Builder:
    """Appends nodes with unique names, one output tensor each, and counts their figures."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._names: dict[str, int] = {}

    def add(self, op: str, scope: str, inputs: list[tuple[str, Shape]], out: Shape, *,
            weights: list[Shape] | None = None, attrs: dict | None = None) -> tuple[str, Shape]:
        base = f"{scope}/{op}" if scope else op
        k = self._names.get(base, 0)
        self._names[base] = k + 1
        name = base if k == 0 else f"{base}_{k}"
        weights = weights or []
        in_shapes: list[Shape | None] = [s for _, s in inputs] + list(weights)
        params = sum(prod(w) for w in weights)
        node = Node(name=name, op_type=op, scope=scope, attributes=dict(attrs or {}),
                    inputs=[t for t, _ in inputs], outputs=[f"{name}:0"], input_shapes=in_shapes,
                    output_shapes=[out], weights=[f"{scope}.w{i}" for i in range(len(weights))],
                    params=params, weight_bytes=4 * params, activation_bytes=4 * prod(out))
        node.macs, node.mac_rule = count_macs(op, node.attributes, node.input_shapes, node.output_shapes)
        self.nodes.append(node)
        return node.outputs[0], out

    # ---- composite layers ---------------------------------------------------------------------------------
    def conv(self, scope: str, x: tuple[str, Shape], cout: int, k: int = 1, stride: int = 1,
             suffix: str = "") -> tuple[str, Shape]:
        n, cin, h, w = x[1]
        out = (n, cout, max(1, h // stride), max(1, w // stride))
        return self.add("Conv", f"{scope}.conv{suffix}", [x], out, weights=[(cout, cin, k, k)],
                        attrs={"kernel_shape": [k, k], "strides": [stride, stride], "pads": [k // 2] * 4})

    def bn(self, scope: str, x: tuple[str, Shape], suffix: str = "") -> tuple[str, Shape]:
        c = x[1][1]
        return self.add("BatchNormalization", f"{scope}.bn{suffix}", [x], x[1], weights=[(c,), (c,)])

    def relu(self, scope: str, x: tuple[str, Shape], suffix: str = "") -> tuple[str, Shape]:
        return self.add("Relu", f"{scope}.relu{suffix}", [x], x[1])

    def conv_bn_relu(self, scope, x, cout, k=1, stride=1, suffix="", act=True):
        y = self.bn(scope, self.conv(scope, x, cout, k, stride, suffix), suffix)
        return self.relu(scope, y, suffix) if act else y


def _residual(b: _Builder, scope: str, x, cout: int, mid: int, stride: int, rng: random.Random):
    """A ResNet bottleneck: 1×1 → 3×3 → 1×1 with a skip (projected when the shape changes), Add, Relu."""
    y = b.conv_bn_relu(scope, x, mid, 1, 1, "1")
    y = b.conv_bn_relu(scope, y, mid, 3, stride, "2")
    y = b.conv_bn_relu(scope, y, cout, 1, 1, "3", act=False)
    skip = x
    if stride != 1 or x[1][1] != cout:
        skip = b.conv_bn_relu(f"{scope}.downsample", x, cout, 1, stride, act=False)
    y = b.add("Add", f"{scope}.add", [y, skip], y[1])
    return b.relu(scope, y, "_out")


def _inception(b: _Builder, scope: str, x, cout: int, rng: random.Random):
    """2–4 parallel branches of Conv→BN→Relu chains (one may start with a pooling), joined by a Concat."""
    branches = rng.choice([2, 3, 3, 4])
    widths = [cout // branches] * branches
    widths[-1] += cout - sum(widths)
    outs = []
    for i, c in enumerate(widths):
        bscope = f"{scope}.branch{i}"
        y = x
        if i == branches - 1 and rng.random() < 0.5:
            op = rng.choice(["MaxPool", "AveragePool"])
            y = b.add(op, f"{bscope}.pool", [y], y[1], attrs={"kernel_shape": [3, 3], "strides": [1, 1]})
        for j in range(rng.randint(1, 3)):
            y = b.conv_bn_relu(bscope, y, c, 1 if j == 0 else rng.choice([3, 3, 5]), 1, str(j + 1))
        outs.append(y)
    n, _, h, w = x[1]
    y = b.add("Concat", f"{scope}.concat", outs, (n, cout, h, w), attrs={"axis": 1})
    if rng.random() < 0.4:  # Inception-ResNet: project and add the input back
        y = b.conv_bn_relu(f"{scope}.project", y, cout, 1, 1, act=False)
        y = b.add("Add", f"{scope}.add", [y, x], y[1])
        y = b.relu(scope, y, "_out")
    return y


def _attention(b: _Builder, scope: str, x, rng: random.Random):
    """Self-attention over the H×W tokens with a relative-position bias, then an MLP; both residual."""
    n, c, h, w = x[1]
    t = h * w
    heads = max(1, min(8, c // 64))
    s = b.add("Reshape", f"{scope}.tokens.reshape", [x], (n, c, t))
    tok = b.add("Transpose", f"{scope}.tokens.transpose", [s], (n, t, c), attrs={"perm": [0, 2, 1]})
    a = f"{scope}.attn"
    y = b.add("LayerNormalization", f"{a}.norm", [tok], tok[1], weights=[(c,), (c,)])
    q = b.add("MatMul", f"{a}.q", [y], (n, t, c), weights=[(c, c)])
    k = b.add("MatMul", f"{a}.k", [y], (n, t, c), weights=[(c, c)])
    v = b.add("MatMul", f"{a}.v", [y], (n, t, c), weights=[(c, c)])
    kt = b.add("Transpose", f"{a}.k", [k], (n, c, t), attrs={"perm": [0, 2, 1]})
    sc = b.add("MatMul", f"{a}.scores", [q, kt], (n, t, t))
    sc = b.add("Mul", f"{a}.scale", [sc], (n, t, t))
    span = 2 * max(h, w) - 1
    bias = b.add("Gather", f"{a}.rel_pos", [], (1, t, t), weights=[(span * span, heads)])
    sc = b.add("Add", f"{a}.rel_pos", [sc, bias], (n, t, t))
    p = b.add("Softmax", f"{a}.softmax", [sc], (n, t, t), attrs={"axis": -1})
    o = b.add("MatMul", f"{a}.context", [p, v], (n, t, c))
    o = b.add("MatMul", f"{a}.proj", [o], (n, t, c), weights=[(c, c)])
    r = b.add("Add", f"{a}.residual", [o, tok], (n, t, c))
    m = f"{scope}.mlp"
    hid = 4 * c if rng.random() < 0.7 else 2 * c
    y = b.add("LayerNormalization", f"{m}.norm", [r], r[1], weights=[(c,), (c,)])
    y = b.add("MatMul", f"{m}.fc1", [y], (n, t, hid), weights=[(c, hid)])
    y = b.add("Gelu", f"{m}.act", [y], (n, t, hid))
    y = b.add("MatMul", f"{m}.fc2", [y], (n, t, c), weights=[(hid, c)])
    r = b.add("Add", f"{m}.residual", [y, r], (n, t, c))
    y = b.add("Transpose", f"{scope}.spatial.transpose", [r], (n, c, t), attrs={"perm": [0, 2, 1]})
    return b.add("Reshape", f"{scope}.spatial.reshape", [y], (n, c, h, w))


def _chain(n_nodes: int) -> LayerGraph:
    """Fewer nodes than a stem and a head: a plain chain of the first ``n_nodes`` layers of a tiny CNN."""
    b = _Builder()
    x: tuple[str, Shape] = ("input", (1, 3, 32, 32))
    ops = ["conv", "bn", "relu"]
    for i in range(n_nodes):
        kind = ops[i % 3]
        scope = f"features.{i // 3}"
        x = b.conv(scope, x, 16) if kind == "conv" else b.bn(scope, x) if kind == "bn" else b.relu(scope, x)
    return _finish(b, n_nodes, x)


def _finish(b: _Builder, n_nodes: int, last: tuple[str, Shape], output: str = "output") -> LayerGraph:
    fold_batchnorm(b.nodes)
    outputs = []
    if b.nodes:
        b.nodes[-1].outputs = [output]
        outputs = [TensorSpec(output, list(last[1]))]
    graph = LayerGraph(format="synthetic", source=f"synthetic:{n_nodes}", nodes=b.nodes,
                       inputs=[TensorSpec("input", [1, 3, 224, 224] if n_nodes >= _STEM + _HEAD else [1, 3, 32, 32])],
                       outputs=outputs)
    graph.build_edges()
    return graph


def synthetic_graph(n_nodes: int, seed: int = 0) -> LayerGraph:
    """A deterministic, realistic-looking image-model graph with exactly ``n_nodes`` nodes."""
    if n_nodes < 0:
        raise ValueError("n_nodes must be >= 0")
    if n_nodes < _STEM + _HEAD:
        return _chain(n_nodes)
    rng = random.Random(seed)
    b = _Builder()
    x: tuple[str, Shape] = ("input", (1, 3, 224, 224))
    x = b.conv_bn_relu("stem", x, 64, 7, 2)
    x = b.add("MaxPool", "stem.pool", [x], (1, 64, 56, 56), attrs={"kernel_shape": [3, 3], "strides": [2, 2]})

    budget = n_nodes - _HEAD  # nodes before the head
    stage, block = 0, 0
    failures = 0
    while len(b.nodes) < budget and failures < 8:
        done = len(b.nodes) / budget
        while stage < 3 and done >= _STAGE_ENDS[stage]:
            stage, block = stage + 1, 0
        cout, mid, size = _STAGES[stage]
        scope = f"stage{stage + 1}.block{block + 1}"
        first = block == 0 or x[1][1] != cout or x[1][2] != size
        kinds, weights = zip(*_KINDS[stage])
        kind = "residual" if first else rng.choices(kinds, weights)[0]
        mark, state = len(b.nodes), rng.getstate()
        if kind == "residual":
            stride = max(1, x[1][2] // size)
            y = _residual(b, scope, x, cout, mid, stride, rng)
        elif kind == "inception":
            y = _inception(b, scope, x, cout, rng)
        else:
            y = _attention(b, scope, x, rng)
        if len(b.nodes) > budget:  # does not fit: undo it and try another kind
            del b.nodes[mark:]
            b._names = {}
            for nd in b.nodes:
                base = f"{nd.scope}/{nd.op_type}"
                b._names[base] = b._names.get(base, 0) + 1
            rng.setstate(state)
            rng.random()
            failures += 1
            continue
        x, block = y, block + 1
    # fill what is left with 1×1 Conv → BatchNormalization → Relu units, one node at a time
    unit = 0
    while len(b.nodes) < budget:
        scope = f"neck.unit{unit // 3 + 1}"
        kind = unit % 3
        x = b.conv(scope, x, x[1][1]) if kind == 0 else b.bn(scope, x) if kind == 1 else b.relu(scope, x)
        unit += 1
    n, c, h, w = x[1]
    x = b.add("GlobalAveragePool", "head.pool", [x], (n, c, 1, 1))
    x = b.add("Flatten", "head.flatten", [x], (n, c), attrs={"axis": 1})
    x = b.add("Gemm", "head.fc", [x], (n, _CLASSES), weights=[(_CLASSES, c), (_CLASSES,)], attrs={"transB": 1})
    graph = _finish(b, n_nodes, x, "logits")
    assert len(graph.nodes) == n_nodes
    return graph
