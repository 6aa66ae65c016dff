"""Search spaces: which chains of steps a search tries, as a pydantic model that round-trips through YAML.

A space is an ordered list of dimensions. A candidate picks one value per dimension; each value stands for zero or
more steps, and the candidate's steps are the dimensions' steps in order, applied to the search's parent variant.
Two kinds of dimension:

- ``param``: one parameter of one method, over listed ``values`` or a ``low``..``high`` range with a ``step`` (the
  grid takes every step; optuna draws from the range). ``skip`` names the value that means "no step" (a pruning
  ratio of 0 applies nothing, so the candidate is its parent, not a pruning run that changes nothing).
- ``choice``: labelled options, each a list of steps (``[]`` = nothing), e.g. bit widths.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import WorkbenchError, first_problem
from .recipes import StepSpec
from .variants import Step

SPACE_VERSION = 1
Scalar = Union[bool, int, float, str]


def round_value(value: Any) -> Any:
    """Grid and sampler floats as people write them (0.3, not 0.30000000000000004): they name variants and keys."""
    return round(value, 6) if isinstance(value, float) else value


class ParamDimension(BaseModel):
    """One method parameter: listed ``values``, or ``low``..``high`` by ``step`` (``integer`` for int params)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["param"] = "param"
    name: str = Field(min_length=1, description="dimension name, shown in tables and used by optuna")
    method: str = Field(description="method id, e.g. prune.channels")
    param: str = Field(description="the parameter this dimension sets, e.g. ratio")
    values: list[Scalar] | None = Field(None, min_length=1, description="the values to try (instead of a range)")
    low: float | None = Field(None, description="range start (inclusive)")
    high: float | None = Field(None, description="range end (inclusive when a step lands on it)")
    step: float | None = Field(None, gt=0, description="range step: the grid's spacing and optuna's resolution")
    integer: bool = Field(False, description="an integer parameter (range values are whole numbers)")
    skip: Scalar | None = Field(None, description="the value that means no step at all, e.g. ratio 0")
    fixed: dict[str, Any] = Field(default_factory=dict, description="other parameters of the step, fixed")

    @model_validator(mode="after")
    def _one_kind_of_range(self) -> "ParamDimension":
        ranged = (self.low, self.high, self.step)
        if self.values is None and None in ranged:
            raise ValueError(f"{self.name}: give values, or low, high and step")
        if self.values is not None and any(v is not None for v in ranged):
            raise ValueError(f"{self.name}: give either values or a range (low, high, step), not both")
        if self.values is None and self.low > self.high:
            raise ValueError(f"{self.name}: low is above high")
        if self.param in self.fixed:
            raise ValueError(f"{self.name}: {self.param} is both searched and fixed")
        return self

    def grid(self) -> list[Any]:
        if self.values is not None:
            return [round_value(v) for v in self.values]
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        points = [self.low + i * self.step for i in range(count)]
        return [int(round(p)) for p in points] if self.integer else [round_value(p) for p in points]

    def steps_for(self, value: Any) -> list[Step]:
        if self.skip is not None and value == self.skip:
            return []
        return [Step(self.method, {**self.fixed, self.param: value})]


class ChoiceDimension(BaseModel):
    """Labelled options, each a list of steps applied in order (an empty list applies nothing)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["choice"] = "choice"
    name: str = Field(min_length=1, description="dimension name, shown in tables and used by optuna")
    options: dict[str, list[StepSpec]] = Field(min_length=1, description="label -> steps")

    def grid(self) -> list[str]:
        return list(self.options)

    def steps_for(self, label: str) -> list[Step]:
        return [Step(s.method, dict(s.params), dict(s.overrides)) for s in self.options[label]]


Dimension = Annotated[Union[ParamDimension, ChoiceDimension], Field(discriminator="kind")]


class SearchSpace(BaseModel):
    """Dimensions in the order their steps are applied."""

    model_config = ConfigDict(extra="forbid", title="Model Workbench search space")

    schema_version: Literal[1] = Field(1, description="search space format version")
    name: str = Field("custom", min_length=1, description="a short name, e.g. pruning_x_bits")
    dimensions: list[Dimension] = Field(min_length=1, description="applied in order")

    @model_validator(mode="after")
    def _unique_names(self) -> "SearchSpace":
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            raise ValueError("dimension names must differ")
        return self

    def dimension(self, name: str) -> ParamDimension | ChoiceDimension:
        return next(d for d in self.dimensions if d.name == name)

    def grid(self) -> list[dict[str, Any]]:
        """Every combination, the last dimension varying fastest."""
        names = [d.name for d in self.dimensions]
        return [dict(zip(names, combo)) for combo in itertools.product(*(d.grid() for d in self.dimensions))]

    def size(self) -> int:
        return math.prod(len(d.grid()) for d in self.dimensions)

    def steps(self, values: dict[str, Any]) -> list[Step]:
        """The steps of one candidate, in dimension order."""
        out: list[Step] = []
        for d in self.dimensions:
            out += d.steps_for(values[d.name])
        return out

    def check(self) -> None:
        """Every method exists and takes every value of its dimension (before anything runs)."""
        from .methods import get

        for d in self.dimensions:
            for value in d.grid():
                for step in d.steps_for(value):
                    try:
                        get(step.method).parse_params(step.params)
                    except WorkbenchError as exc:
                        raise WorkbenchError(f"search dimension '{d.name}' = {value}: {exc.problem}",
                                             exc.hint or "fix the search space") from None

    def to_doc(self) -> dict:
        """A plain dict for YAML without fields left at their defaults (but with each dimension's kind)."""
        doc = self.model_dump(mode="json", exclude_defaults=True)
        doc["dimensions"] = [{"kind": d.kind} | dd for d, dd in zip(self.dimensions, doc["dimensions"])]
        return {"schema_version": SPACE_VERSION, "name": self.name} | doc


def candidate_key(values: dict[str, Any]) -> str:
    """A stable text key of one candidate's values (journal and optuna match candidates by it)."""
    return json.dumps({k: round_value(v) for k, v in values.items()}, sort_keys=True)


def describe(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


# ---- ready spaces ---------------------------------------------------------------------------------------------
# Bit-width options. Real ones change the deployed ONNX file; simulated ones (fake quantization) show the accuracy
# cost of low-bit weights but deploy a float file, so a size objective does not reward them (see docs/search.md).
BIT_OPTIONS: dict[str, list[dict]] = {
    "fp32": [],
    "fp16": [{"method": "quantize.bits", "params": {"export": "fp16"}}],
    "int8": [{"method": "quantize.int8_static", "params": {}}],
    "int4-linear": [{"method": "quantize.bits", "params": {"export": "matmul_nbits", "weight_bits": 4}}],
    "w8-simulated": [{"method": "quantize.bits", "params": {"weight_bits": 8}}],
    "w4-simulated": [{"method": "quantize.bits", "params": {"weight_bits": 4}}],
}
DEFAULT_BITS = ("fp32", "fp16", "int8", "int4-linear")


def pruning_x_bits(ratios: list[float] | None = None, bits: tuple[str, ...] | list[str] = DEFAULT_BITS,
                   low: float = 0.0, high: float = 0.7, step: float = 0.1,
                   int8: dict[str, Any] | None = None) -> SearchSpace:
    """Channel-pruning ratio (listed ``ratios``, or ``low``..``high`` by ``step``) × bit width (``BIT_OPTIONS``
    labels); ratio 0 applies no pruning. ``int8`` sets extra quantize.int8_static params (e.g. calibration)."""
    unknown = [b for b in bits if b not in BIT_OPTIONS]
    if unknown or not bits:
        raise WorkbenchError(f"unknown bit widths {', '.join(unknown) or '(none given)'}",
                             f"choose from {', '.join(BIT_OPTIONS)}")
    options = {}
    for label in bits:
        specs = [dict(s, params={**s["params"], **(int8 or {})}) if s["method"] == "quantize.int8_static" else s
                 for s in BIT_OPTIONS[label]]
        options[label] = [StepSpec(**s) for s in specs]
    ratio = ParamDimension(name="ratio", method="prune.channels", param="ratio", skip=0.0,
                           **({"values": list(ratios)} if ratios is not None else {"low": low, "high": high,
                                                                                     "step": step}))
    return SearchSpace(name="pruning_x_bits", dimensions=[ratio, ChoiceDimension(name="bits", options=options)])


READY = {"pruning_x_bits": pruning_x_bits}


def parse_space(doc: Any, source: str = "") -> SearchSpace:
    if not isinstance(doc, dict):
        raise WorkbenchError("a search space is a mapping (schema_version, name, dimensions)", "see docs/search.md",
                             source or None)
    if doc.get("schema_version", SPACE_VERSION) != SPACE_VERSION:
        raise WorkbenchError(f"search space schema_version {doc.get('schema_version')!r} is not supported",
                             f"set schema_version: {SPACE_VERSION}", source or None)
    try:
        return SearchSpace.model_validate(doc)
    except ValidationError as exc:
        where, what = first_problem(exc, "space")
        raise WorkbenchError(f"search space {where}: {what}", "see docs/search.md",
                             source or None) from None


def load_space(value: str | Path) -> SearchSpace:
    """A ready space by name (``pruning_x_bits``) or a YAML file."""
    if str(value) in READY:
        return READY[str(value)]()
    path = Path(value)
    from .recipes import _yaml

    yaml = _yaml()
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WorkbenchError(f"cannot read the search space ({exc.strerror or exc})",
                             f"give a YAML file or one of: {', '.join(READY)}", path) from None
    except yaml.YAMLError as exc:
        raise WorkbenchError(f"not valid YAML ({str(exc).splitlines()[0]})", "fix the file's syntax", path) from None
    return parse_space(doc, str(path))


def dump_space(space: SearchSpace) -> str:
    from .recipes import _yaml

    return _yaml().safe_dump(space.to_doc(), sort_keys=False)


def save_space(space: SearchSpace, path: Path) -> None:
    from .fileio import write_atomic

    write_atomic(Path(path), dump_space(space))
