"""Recipes: a lineage of steps saved as YAML and replayed headless (``workbench run RECIPE``).

The schema is the pydantic models below; docs/recipe.schema.json is generated from them (:func:`json_schema`) and a
test keeps the two equal. Relative paths in a recipe start at the recipe file's folder. A replay builds a project
(in ``--out`` or a temporary folder), applies each step to the previous result with the recipe's seed, measures
every variant and checks the goals against the base model.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .datasets import DatasetConfig
from .errors import WorkbenchError, first_problem
from .modelspec import ModelSpec, file_sha256
from .progress import CancelToken, Progress
from .project import ROOT_ID, Project
from .variants import Step, Variant

RECIPE_VERSION = 1


class StepSpec(BaseModel):
    """One step: a method id (see `workbench methods`), its parameters and per-layer overrides."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="method id, e.g. prune.channels")
    params: dict[str, Any] = Field(default_factory=dict, description="parameter values; unset ones take defaults")
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                                 description="layer name or scope -> {parameter: value}")


class EvaluateSpec(BaseModel):
    """How every variant is measured: accuracy on the validation split always, latency on ``device``."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["local", "none"] = Field("local", description="where latency is measured; none skips it")
    runs: int = Field(100, ge=1, le=100000, description="timed runs per variant (after 10 warm-up runs)")
    threads: int = Field(1, ge=1, le=256, description="intra-op threads for latency")


class Goals(BaseModel):
    """Limits the final variant must meet; a missed goal makes `workbench run` exit with status 3."""

    model_config = ConfigDict(extra="forbid")

    max_accuracy_drop: float | None = Field(None, ge=0, description="points of top-1 below the base model")
    min_top1: float | None = Field(None, ge=0, le=100, description="top-1 accuracy in percent")
    max_latency_ms: float | None = Field(None, gt=0, description="p50 latency in milliseconds")
    max_size_bytes: int | None = Field(None, gt=0, description="size of the deployed ONNX file")
    max_params: int | None = Field(None, gt=0, description="parameter count")
    max_macs: int | None = Field(None, gt=0, description="multiply-accumulates per inference")


class Recipe(BaseModel):
    """A model, a dataset, a seed, the steps in order, the evaluation settings and the goals."""

    model_config = ConfigDict(extra="forbid", title="Model Workbench recipe")

    schema_version: Literal[1] = Field(1, description="recipe format version")
    model: Literal["demo"] | ModelSpec = Field("demo", description="'demo' or {path, input_shape, sha256, …}")
    dataset: Literal["demo"] | DatasetConfig | None = Field(
        "demo", description="'demo', {kind, path, preprocess, …}, or null: no data, so accuracy is not measured "
                            "(and steps that need data fail)")
    seed: int = Field(0, ge=0, description="seeds every step, so a replay gives the same figures")
    steps: list[StepSpec] = Field(default_factory=list, description="applied in order, each to the previous result")
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec, description="measurement settings")
    goals: Goals = Field(default_factory=Goals, description="limits for the final variant")

    def model_spec(self) -> ModelSpec:
        return ModelSpec.demo() if self.model == "demo" else self.model

    def dataset_config(self) -> DatasetConfig | None:
        return DatasetConfig(kind="demo") if self.dataset == "demo" else self.dataset

    def to_doc(self) -> dict:
        """A plain dict for YAML: version, model, dataset, seed and steps always; other fields when not default."""
        full = self.model_dump(mode="json")
        short = self.model_dump(mode="json", exclude_defaults=True)
        always = ("schema_version", "model", "dataset", "seed")
        head = {k: full[k] for k in always} | {"steps": short.get("steps", [])}
        return head | {k: v for k, v in short.items() if k not in head}


def json_schema() -> dict:
    return Recipe.model_json_schema()


def _yaml():
    try:
        import yaml
    except ImportError:
        raise WorkbenchError("recipes need PyYAML, which is not installed", "install it with `pip install pyyaml`") \
            from None
    return yaml


def parse_recipe(doc: Any, source: str = "") -> Recipe:
    if not isinstance(doc, dict):
        raise WorkbenchError("a recipe is a mapping (schema_version, model, dataset, steps, …)",
                             "see docs/recipes.md", source or None)
    version = doc.get("schema_version")
    if version != RECIPE_VERSION:
        raise WorkbenchError(f"recipe schema_version {version!r} is not supported (this version reads "
                             f"{RECIPE_VERSION})", "set schema_version: 1", source or None)
    try:
        return Recipe.model_validate(doc)
    except ValidationError as exc:
        where, what = first_problem(exc, "recipe")
        raise WorkbenchError(f"{where}: {what}", "see docs/recipes.md",
                             source or None) from None


def load_recipe(path: Path) -> Recipe:
    path = Path(path)
    yaml = _yaml()
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WorkbenchError(f"cannot read the recipe ({exc.strerror or exc})", "check the path", path) from None
    except yaml.YAMLError as exc:
        raise WorkbenchError(f"not valid YAML ({str(exc).splitlines()[0]})", "fix the recipe's syntax", path) \
            from None
    return parse_recipe(doc, str(path))


def dump_recipe(recipe: Recipe) -> str:
    return _yaml().safe_dump(recipe.to_doc(), sort_keys=False)


def save_recipe(recipe: Recipe, path: Path) -> None:
    from .fileio import write_atomic

    write_atomic(Path(path), dump_recipe(recipe))


def recipe_from_lineage(project: Project, variant_id: str, recipe_dir: Path | None = None) -> Recipe:
    """The steps from the base model to ``variant_id`` as a recipe, with the model's sha256 pinned.

    File paths are written relative to ``recipe_dir`` (where the recipe will be saved) when given, else absolute.
    """
    if project.base_model is None:
        raise WorkbenchError("the project has no base model", "open a model first")

    def place(path: Path) -> str:
        path = path.resolve()
        return os.path.relpath(path, Path(recipe_dir).resolve()) if recipe_dir is not None else str(path)

    spec = project.base_model
    if not spec.is_demo:
        path = spec.resolve(project.folder)
        spec = spec.model_copy(update={"path": place(path), "sha256": spec.sha256 or file_sha256(path)})
    dataset = project.dataset  # None: the project has no data, and neither has the recipe
    if dataset is not None and dataset.path:
        dataset = dataset.model_copy(update={"path": place(dataset.resolve(project.folder))})
    steps = [StepSpec(method=v.step.method, params=dict(v.step.params), overrides=dict(v.step.overrides))
             for v in project.lineage(variant_id) if v.step is not None]
    return Recipe(model="demo" if spec.is_demo else spec,
                  dataset="demo" if dataset == DatasetConfig() else dataset,
                  seed=project.seed, steps=steps)


# ---- replay --------------------------------------------------------------------------------------------------
@dataclass
class RecipeResult:
    project: Project
    variants: list[Variant]
    goals_met: bool
    details: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"project": str(self.project.folder), "variants": [_variant_json(v) for v in self.variants],
                "goals": {"met": self.goals_met, "details": self.details}}


def _variant_json(v: Variant) -> dict:
    acc = v.accuracy_on()
    lat = v.latency[-1] if v.latency else None
    return {"id": v.id, "parent": v.parent, "method": v.step.method if v.step else None,
            "params": v.step.params if v.step else {}, "params_count": v.params.value if v.params else None,
            "macs": v.macs.value if v.macs else None, "size_bytes": v.size_bytes.value if v.size_bytes else None,
            "accuracy": {"top1": acc.top1, "top5": acc.top5, "loss": acc.loss, "samples": acc.samples,
                         "dataset": acc.dataset} if acc else None,
            "latency_ms": {"p50": lat.p50, "p90": lat.p90, "p99": lat.p99, "runs": lat.runs, "threads": lat.threads,
                           "device": lat.device} if lat else None}


def check_goals(goals: Goals, base: Variant, final: Variant) -> tuple[bool, list[dict]]:
    """Each set goal with its target, the final variant's figure and whether it is met."""
    base_acc, acc = base.accuracy_on(), final.accuracy_on()
    lat = final.latency[-1].p50 if final.latency else None
    actual = {
        "max_accuracy_drop": 100 * (base_acc.top1 - acc.top1) if base_acc and acc else None,
        "min_top1": 100 * acc.top1 if acc else None,
        "max_latency_ms": lat,
        "max_size_bytes": final.size_bytes.value if final.size_bytes else None,
        "max_params": final.params.value if final.params else None,
        "max_macs": final.macs.value if final.macs else None,
    }
    details = []
    for name, target in goals.model_dump().items():
        if target is None:
            continue
        value = actual[name]
        met = value is not None and (value >= target if name == "min_top1" else value <= target)
        details.append({"goal": name, "target": target, "actual": None if value is None else round(value, 6),
                        "met": met})
    return all(d["met"] for d in details), details


def _absolute(recipe: Recipe, base_dir: Path) -> tuple[ModelSpec, DatasetConfig | None]:
    spec, data = recipe.model_spec(), recipe.dataset_config()
    if not spec.is_demo:
        spec = spec.model_copy(update={"path": str(spec.resolve(base_dir).resolve())})
    if data is not None and data.path:
        data = data.model_copy(update={"path": str(data.resolve(base_dir).resolve())})
    return spec, data


def run_recipe(recipe: Recipe, base_dir: Path, out: Path | None = None,
               token: CancelToken | None = None) -> Generator[Progress, None, RecipeResult]:
    """Replay ``recipe`` into a new project folder ``out`` (a temporary one when None) and check its goals."""
    from .methods import get
    from .runner import evaluate_variant, local_latency, run_step, scaled

    token = token or CancelToken()
    for s in recipe.steps:  # every parameter checked before anything runs
        get(s.method).parse_params(s.params)
    spec, data = _absolute(recipe, Path(base_dir))
    folder = Path(out) if out else Path(tempfile.mkdtemp(prefix="workbench-run-")) / "project"
    project = Project.create(folder, name=f"recipe {folder.name}")
    project.set_base_model(spec)
    project.set_dataset(data)
    project.set_seed(recipe.seed)
    ev = recipe.evaluate
    latency = local_latency(runs=ev.runs, threads=ev.threads) if ev.device == "local" else None
    share = 1.0 / (len(recipe.steps) + 1)
    variants = [(yield from scaled(evaluate_variant(project, ROOT_ID, latency, token), 0.0, share, "base: "))]
    for i, s in enumerate(recipe.steps):
        variant = yield from scaled(run_step(project, variants[-1].id, Step(s.method, s.params, s.overrides),
                                             measure_latency=latency, token=token),
                                    share * (i + 1), share * (i + 2), f"step {i + 1}/{len(recipe.steps)} ")
        variants.append(variant)
    project.save()
    met, details = check_goals(recipe.goals, variants[0], variants[-1])
    return RecipeResult(project, variants, met, details)


def write_schema(path: Path) -> None:
    """Regenerate docs/recipe.schema.json."""
    Path(path).write_text(json.dumps(json_schema(), indent=2) + "\n")
