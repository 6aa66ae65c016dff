"""The bundled demo: a small MobileNetV2-style digit classifier and 5,000 real MNIST digits."""

from __future__ import annotations

import json
from pathlib import Path


def resources_dir() -> Path:
    """The package's ``resources/`` folder: demo model and data, icons. It ships inside the wheel and the bundle."""
    found = Path(__file__).resolve().parents[1] / "resources"
    if not (found / "demo").is_dir():
        raise FileNotFoundError(f"the bundled resources folder is missing ({found}); reinstall Model Workbench")
    return found


def demo_dir() -> Path:
    return resources_dir() / "demo"


def demo_model_path() -> Path:
    return demo_dir() / "demo_digits.pt"


def demo_info() -> dict:
    """Architecture, input shape, normalisation, classes and measured accuracy of the demo checkpoint."""
    return json.loads((demo_dir() / "demo_digits.json").read_text())


def demo_request():
    """An OpenRequest for the bundled checkpoint (a state_dict of the built-in ``demo_digits`` architecture)."""
    from .readers.base import OpenRequest

    return OpenRequest(path=demo_model_path(), architecture=demo_info().get("architecture", "demo_digits"))
