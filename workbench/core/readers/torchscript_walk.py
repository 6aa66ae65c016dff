"""Run a TorchScript module graph by graph, so every operator is known to run inside a module path.

The TorchScript interpreter keeps no module information at run time, and inlining the graph to read it compares
constants (impossible on the meta device). Executing the nested graphs here instead — ``prim::CallMethod`` recurses
into the submodule's own graph — gives each ATen call the exact module path it runs in. Graphs with control flow
(``prim::If``, ``prim::Loop``) raise :class:`Unsupported`; the caller then runs the module normally and derives
scopes from weight names.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


class Unsupported(Exception):
    """The graph uses a construct this walker does not execute."""


_SCHEMAS: dict[str, Any] = {}


def _call(node, inputs: list) -> Any:
    kind = node.kind()
    op = torch._C._jit_get_operation(kind)
    op = op[0] if isinstance(op, tuple) else op
    text = node.schema()
    if text == "(no schema)":
        return op(*inputs)
    schema = _SCHEMAS.get(text)
    if schema is None:
        schema = _SCHEMAS[text] = torch._C.parse_schema(text)
    args, kwargs = [], {}
    for arg, value in zip(schema.arguments, inputs):
        if arg.kwarg_only:
            kwargs[arg.name] = value
        else:
            args.append(value)
    return op(*args, **kwargs)


def run(module, inputs: list, on_scope: Callable[[str], None]) -> Any:
    """Execute ``module.forward`` on ``inputs``, calling ``on_scope(path)`` before each operator runs."""
    return _run_graph(module.graph, module, "", inputs, on_scope)


def _run_graph(graph, module, path: str, args: list, on_scope) -> Any:
    env: dict = {}
    paths: dict = {}
    graph_inputs = list(graph.inputs())
    env[graph_inputs[0]] = module
    paths[graph_inputs[0]] = path
    for value, arg in zip(graph_inputs[1:], args):
        env[value] = arg
    for node in graph.nodes():
        kind = node.kind()
        ins = [env[v] for v in node.inputs()]
        outs = list(node.outputs())
        if kind == "prim::Constant":
            results = [outs[0].toIValue()] if outs else []
        elif kind == "prim::GetAttr":
            name = node.s("name")
            obj = getattr(ins[0], name)
            results = [obj]
            if hasattr(obj, "graph") or isinstance(obj, torch.nn.Module):
                parent = paths.get(node.inputsAt(0), "")
                paths[outs[0]] = f"{parent}.{name}" if parent else name
        elif kind == "prim::CallMethod":
            sub = ins[0]
            sub_path = paths.get(node.inputsAt(0), "")
            results = [_run_graph(getattr(sub, node.s("name")).graph, sub, sub_path, ins[1:], on_scope)]
        elif kind == "prim::ListConstruct":
            results = [list(ins)]
        elif kind == "prim::TupleConstruct":
            results = [tuple(ins)]
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            results = list(ins[0])
        elif kind == "prim::TupleIndex":
            results = [ins[0][ins[1]]]
        elif kind in ("prim::If", "prim::Loop", "prim::CallFunction", "prim::fork", "prim::Closure"):
            raise Unsupported(kind)
        else:
            on_scope(path)
            result = _call(node, ins)
            results = list(result) if len(outs) > 1 else [result]
        for value, result in zip(outs, results):
            env[value] = result
    returns = [env[v] for v in graph.outputs()]
    return returns[0] if len(returns) == 1 else tuple(returns)
