"""Open a model for viewing: read it, choose what to show collapsed, and lay it out — as a cancellable generator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator

from .graph import LayerGraph
from .layout import LayoutItem, LayoutResult, layered_layout
from .progress import CancelToken, Progress
from .viewgraph import ViewGraph, default_expansion

NODE_SIZE = (176.0, 54.0)
SCOPE_SIZE = (200.0, 62.0)


@dataclass
class ViewState:
    """A graph with the boxes currently shown and where they are."""

    graph: LayerGraph
    view: ViewGraph
    layout: LayoutResult


def layout_view(view: ViewGraph, previous: LayoutResult | None = None) -> LayoutResult:
    """Lay out the visible boxes; ``previous`` keeps unchanged boxes in their old order."""
    items = [LayoutItem(it.key, *(NODE_SIZE if it.kind == "node" else SCOPE_SIZE)) for it in view.items]
    return layered_layout(items, view.edges, previous=previous)


def show(graph: LayerGraph, expanded: set[str], previous: LayoutResult | None = None) -> ViewState:
    view = ViewGraph(graph, expanded)
    return ViewState(graph, view, layout_view(view, previous))


def view_steps(graph: LayerGraph, token: CancelToken | None = None,
               budget: int = 120) -> Generator[Progress, None, ViewState]:
    """Yield progress while choosing what to show of ``graph`` and laying it out; return the ViewState."""
    token = token or CancelToken()
    yield Progress(0.7, f"Laying out {len(graph.nodes):,} layers…")
    state = show(graph, default_expansion(graph, budget))
    token.check()
    yield Progress(1.0, "Drawing…")
    return state


def load_steps(request, token: CancelToken | None = None, budget: int = 120,
               loader=None) -> Generator[Progress, None, ViewState]:
    """Yield progress while opening ``request`` and laying out its graph; return the ViewState.

    ``loader`` (a :class:`~workbench.core.loader.LoaderProcess`) reads the model in a child process; without one
    it is read here. Raises WorkbenchError for bad input and Cancelled when ``token`` is set.
    """
    token = token or CancelToken()
    if loader is not None:
        graph = yield from loader.open(request, token)
    else:
        from .readers import open_model

        yield Progress(None, f"Reading {request.path.name}…")
        graph = open_model(request)
    token.check()
    return (yield from view_steps(graph, token, budget))
