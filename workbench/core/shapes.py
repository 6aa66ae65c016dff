"""Input specifications: parsing ``--input-shape`` and binding dynamic axes."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputShapeError

Dim = int | str | None  # a fixed size, a named dynamic axis, or an unnamed dynamic axis


@dataclass
class TensorSpec:
    """One model input or output: name, shape (dims may be dynamic) and dtype name (numpy spelling)."""

    name: str
    shape: list[Dim]
    dtype: str = "float32"

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def parse_input_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """Parse one ``--input-shape`` value.

    Accepts ``1x3x224x224``, ``1,3,224,224`` or ``name:1x3x224x224``. Returns ``(name or None, dims)``.
    """
    name = None
    spec = text.strip()
    if ":" in spec:
        name, spec = spec.rsplit(":", 1)
        name = name.strip() or None
    parts = [p for p in spec.replace(",", "x").replace("X", "x").split("x") if p.strip()]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise InputShapeError(
            f"input shape '{text}' is not a list of integers",
            "write it as 1x3x224x224 (or name:1x3x224x224 for one of several inputs)",
        ) from None
    if not dims or any(d <= 0 for d in dims):
        raise InputShapeError(
            f"input shape '{text}' must have positive sizes", "write it as 1x3x224x224"
        )
    return name, dims


@dataclass
class ShapeRequest:
    """Shapes the user gave, by input name or by position."""

    by_name: dict[str, tuple[int, ...]] = field(default_factory=dict)
    by_position: list[tuple[int, ...]] = field(default_factory=list)

    @classmethod
    def parse(cls, values: list[str] | None) -> "ShapeRequest":
        req = cls()
        for v in values or []:
            name, dims = parse_input_shape(v)
            if name:
                req.by_name[name] = dims
            else:
                req.by_position.append(dims)
        return req

    def __bool__(self) -> bool:
        return bool(self.by_name or self.by_position)

    def for_input(self, index: int, name: str) -> tuple[int, ...] | None:
        if name in self.by_name:
            return self.by_name[name]
        if index < len(self.by_position):
            return self.by_position[index]
        return None


def bind_shapes(inputs: list[TensorSpec], request: ShapeRequest, source: str) -> list[tuple[int, ...]]:
    """Resolve every input to concrete dims: the user's shape where given, else the file's fixed shape.

    A user shape must agree with every fixed dim of the file. Raises :class:`InputShapeError` naming the input
    and what to pass when a shape is missing or does not fit.
    """
    unknown = set(request.by_name) - {s.name for s in inputs}
    if unknown:
        names = ", ".join(s.name for s in inputs)
        raise InputShapeError(
            f"the model has no input named {', '.join(sorted(unknown))}",
            f"its inputs are: {names}",
            source,
            inputs=inputs,
        )
    if len(request.by_position) > len(inputs):
        raise InputShapeError(
            f"{len(request.by_position)} input shapes given but the model has {len(inputs)} input(s)",
            "pass one --input-shape per input",
            source,
            inputs=inputs,
        )
    bound = []
    for i, spec in enumerate(inputs):
        given = request.for_input(i, spec.name)
        if given is None:
            if not spec.is_static:
                shown = "x".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in spec.shape)
                raise InputShapeError(
                    f"input '{spec.name}' has dynamic shape {shown or '?'}",
                    f"pass --input-shape {spec.name}:{_example(spec.shape)}",
                    source,
                    inputs=inputs,
                )
            bound.append(tuple(int(d) for d in spec.shape))
            continue
        if spec.shape and len(given) != len(spec.shape):
            raise InputShapeError(
                f"input '{spec.name}' has {len(spec.shape)} dimensions but --input-shape gave {len(given)}",
                f"pass --input-shape {spec.name}:{_example(spec.shape)}",
                source,
            )
        for axis, (want, got) in enumerate(zip(spec.shape, given)):
            if isinstance(want, int) and want > 0 and want != got:
                raise InputShapeError(
                    f"input '{spec.name}' has fixed size {want} on axis {axis} but --input-shape gave {got}",
                    f"pass --input-shape {spec.name}:{_example(spec.shape)}",
                    source,
                    inputs=inputs,
                )
        bound.append(tuple(given))
    return bound


def _example(shape: list[Dim]) -> str:
    fill = [1, 3, 224, 224]
    out = []
    for i, d in enumerate(shape):
        out.append(str(d) if isinstance(d, int) and d > 0 else str(fill[i] if i < 4 else 1))
    return "x".join(out) or "1x3x224x224"
