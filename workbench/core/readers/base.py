"""What a reader is, and the request it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..graph import LayerGraph
from ..shapes import ShapeRequest


@dataclass
class OpenRequest:
    """Everything the user said about how to open a model file."""

    path: Path
    shapes: ShapeRequest = field(default_factory=ShapeRequest)
    trust_code: bool = False
    architecture: str | None = None  # built-in architecture for a bare state_dict
    factory: str | None = None  # "build" in path/model.py:build
    weights: Path | None = None  # optional weights file for a factory


class Reader(Protocol):
    """One model format. ``match`` is cheap (name and first bytes); ``open`` builds the LayerGraph."""

    format: str
    label: str

    def match(self, path: Path, head: bytes) -> bool: ...

    def open(self, request: OpenRequest) -> LayerGraph: ...
