"""Registry of built-in architectures.

Listing names must stay cheap, so this module never imports torch: each
builder imports its architecture module only when it is called.

Typical use::

    from workbench.core import architectures
    architectures.names()                  # ['demo_digits', 'mobilenet_v2', ...]
    model = architectures.build("resnet18", num_classes=10)
    shape = architectures.ARCHITECTURES["resnet18"].default_input_shape
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "DEMO_CLASSES",
    "DEMO_MEAN",
    "DEMO_STD",
    "build",
    "names",
]

# Normalisation of the demo digits: pixels are scaled to [0, 1] by /255, then
# standardised with the usual MNIST statistics.  Training, evaluation and the
# GUI must all use these same constants.
DEMO_MEAN = 0.1307
DEMO_STD = 0.3081
DEMO_CLASSES = [str(d) for d in range(10)]


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture.

    Attributes:
        name: registry key.
        builder: callable taking keyword arguments and returning an ``nn.Module``.
        description: one line for lists and tooltips.
        default_input_shape: example input shape (batch first) for the defaults.
    """

    name: str
    builder: Callable[..., Any]
    description: str
    default_input_shape: tuple[int, ...]


def _lazy(module: str, func: str) -> Callable[..., Any]:
    """Return a builder that imports ``workbench.core.architectures.<module>``
    and calls ``func`` from it only when invoked (keeps torch unloaded)."""

    def builder(**kwargs: Any) -> Any:
        mod = importlib.import_module(f"{__name__}.{module}")
        return getattr(mod, func)(**kwargs)

    builder.__name__ = func
    builder.__qualname__ = func
    builder.__doc__ = f"Build ``{func}`` from ``{__name__}.{module}`` with the given kwargs."
    return builder


def _spec(name: str, module: str, description: str, shape: tuple[int, ...]) -> ArchSpec:
    return ArchSpec(name, _lazy(module, name), description, shape)


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        _spec("mobilenet_v2", "mobilenet_v2",
              "MobileNetV2 (inverted residuals, ReLU6), 3.5 M params for ImageNet",
              (1, 3, 224, 224)),
        _spec("resnet18", "resnet", "ResNet-18 (basic blocks), 11.7 M params for ImageNet",
              (1, 3, 224, 224)),
        _spec("resnet50", "resnet", "ResNet-50 (bottleneck blocks), 25.6 M params for ImageNet",
              (1, 3, 224, 224)),
        _spec("vit_b_16", "vit", "ViT-Base/16 (12 layers, dim 768), 86.6 M params for ImageNet",
              (1, 3, 224, 224)),
        _spec("vit_small", "vit",
              "Small ViT (patch 4, 6 layers, dim 192) for 32x32 images, 2.7 M params",
              (1, 3, 32, 32)),
        _spec("small_cnn", "small_cnn", "Tiny CNN (2 conv + 2 linear) for 28x28 grey images",
              (1, 1, 28, 28)),
        _spec("demo_digits", "mobilenet_v2",
              "Demo digit classifier: reduced MobileNetV2 for 1x28x28 MNIST, ~107 k params",
              (1, 1, 28, 28)),
    )
}


def names() -> list[str]:
    """Return the registered architecture names, sorted."""
    return sorted(ARCHITECTURES)


def build(name: str, **kwargs: Any) -> Any:
    """Build architecture ``name`` with keyword overrides (e.g. ``num_classes=10``).

    Returns a freshly initialised ``torch.nn.Module`` (in training mode).
    Raises KeyError, listing the known names, when ``name`` is not registered.
    """
    try:
        spec = ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(names())}") from None
    return spec.builder(**kwargs)
