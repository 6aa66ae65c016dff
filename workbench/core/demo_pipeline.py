"""The demo pipeline behind ``workbench demo --headless``: one project, four compressed variants, all measured.

From the bundled digits model: 50 % channel pruning then a fine-tune (two variants in the tree), static int8
quantization of the base, and knowledge distillation into a fresh ``small_cnn`` student. Every variant is counted and
evaluated on the demo validation split as it is made; at the end all of them are timed together with ONNX Runtime on
this machine, interleaved. The settings are chosen so the whole run stays well under five minutes on two cores;
tests pass shorter ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Generator

from .datasets import DatasetConfig
from .fileio import write_atomic
from .modelspec import ModelSpec
from .progress import CancelToken, Progress
from .project import ROOT_ID, Project
from .report_html import RUN_LOG, cpu_model
from .variants import Step, Variant


@dataclass(frozen=True)
class DemoSettings:
    """Epochs and run counts of the demo; the defaults are what ``workbench demo`` uses."""

    prune_ratio: float = 0.5
    finetune_epochs: int = 5
    distill_epochs: int = 10
    latency_runs: int = 200
    student: str = "small_cnn"
    student_options: str = "hidden=32"  # about half the base model's parameters and a fifth of its MACs
    seed: int = 0


@dataclass(frozen=True)
class DemoStage:
    """One step of the demo: the variant it makes (``key``), its parent's key, the step and a readable name."""

    key: str
    parent: str
    step: Step
    name: str


@dataclass
class DemoResult:
    project: Project
    variants: dict[str, Variant]  # stage key -> the measured variant ("base" for the base model)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per variant id, and "total"


def demo_stages(settings: DemoSettings) -> list[DemoStage]:
    """The steps in the order they run (a stage's parent always runs before it)."""
    pct = f"{round(100 * settings.prune_ratio)} %"
    return [
        DemoStage("pruned", ROOT_ID, Step("prune.channels", {"ratio": settings.prune_ratio}), f"pruned {pct}"),
        DemoStage("finetuned", "pruned", Step("finetune", {"epochs": settings.finetune_epochs}),
                  f"pruned {pct} + fine-tuned"),
        DemoStage("int8", ROOT_ID, Step("quantize.int8_static", {}), "int8 static"),
        DemoStage("distilled", ROOT_ID, Step("distill.kd", {"student": settings.student,
                                                            "architecture_options": settings.student_options,
                                                            "epochs": settings.distill_epochs}),
                  f"distilled {settings.student}"),
    ]


def run_demo(folder: Path, settings: DemoSettings | None = None,
             token: CancelToken | None = None) -> Generator[Progress, None, DemoResult]:
    """Create a project in ``folder`` (which must not hold one), measure the base model and run every stage.

    Cancelling stops at the next progress step; the project keeps what finished (the running variant is marked
    cancelled by the runner).
    """
    from .runner import evaluate_variant, run_step, scaled

    settings = settings or DemoSettings()
    token = token or CancelToken()
    started = time.perf_counter()
    project = Project.create(Path(folder), name="demo digits")
    project.set_base_model(ModelSpec.demo())
    project.set_dataset(DatasetConfig(kind="demo"))
    project.set_seed(settings.seed)
    stages = demo_stages(settings)
    share = 0.98 / (len(stages) + 1)
    seconds: dict[str, float] = {}
    try:  # a cancel or failure still saves what finished (and the stopped variant, marked by the runner)
        t = time.perf_counter()
        variants = {ROOT_ID: (yield from scaled(evaluate_variant(project, ROOT_ID, None, token), 0.0, share,
                                                "base model: "))}
        seconds[ROOT_ID] = time.perf_counter() - t
        for i, stage in enumerate(stages, start=1):
            t = time.perf_counter()
            parent = variants[stage.parent]
            variants[stage.key] = yield from scaled(
                run_step(project, parent.id, stage.step, name=stage.name, token=token),
                share * i, share * (i + 1), f"{i}/{len(stages)} {stage.name}: ")
            seconds[variants[stage.key].id] = time.perf_counter() - t
            project.save()
        token.check()
        yield Progress(0.98, f"timing {len(variants)} variants, interleaved")
        t = time.perf_counter()
        variants = time_interleaved(project, variants, settings.latency_runs)
        seconds["latency"] = time.perf_counter() - t
    finally:
        project.save()
    seconds["total"] = time.perf_counter() - started
    write_atomic(project.folder / RUN_LOG, json.dumps({"settings": asdict(settings), "seconds": seconds}, indent=1))
    yield Progress(1.0, "demo finished")
    return DemoResult(project, variants, seconds)


def time_interleaved(project: Project, variants: dict[str, Variant], runs: int, warmup: int = 20,
                     threads: int = 1) -> dict[str, Variant]:
    """Time every variant's ONNX file with ONNX Runtime here, round-robin (one run of each in turn), and record it.

    On a shared machine the load changes over a minute; interleaving gives every variant the same conditions, so
    their ratios hold even when the absolute figures drift (what one-after-the-other timing cannot promise).
    """
    from .latency import measure_interleaved, session
    from .variants import LatencyMetric

    paths = {key: project.artifact_path(v.deploy) for key, v in variants.items()}
    first = session(paths[ROOT_ID] if ROOT_ID in paths else next(iter(paths.values())), threads)
    shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in first.get_inputs()[0].shape)
    stats = measure_interleaved(paths, shape, runs=runs, warmup=warmup, threads=threads)
    device = cpu_model()
    for key, s in stats.items():
        project.record_latency(variants[key].id, LatencyMetric("local", s.p50, s.p90, s.p99, s.runs, s.threads,
                                                               device))
    return {key: project.variant(v.id) for key, v in variants.items()}


QUICK = DemoSettings(finetune_epochs=1, distill_epochs=1, latency_runs=50)  # tests and a first look


def demo_folder() -> Path:
    """Where ``workbench demo`` keeps its project when no folder is given: the user's cache."""
    import os

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "workbench" / "demo"


def prepare_demo_project(folder: Path) -> Project:
    """The demo project to open in the app: the one in ``folder`` (or ``folder/project``, where the headless demo
    puts it) when there is one, else a new one with the demo model and digits, nothing run yet."""
    from .project import PROJECT_FILE

    folder = Path(folder)
    for candidate in (folder, folder / "project"):
        if (candidate / PROJECT_FILE).is_file():
            return Project.open(candidate)
    project = Project.create(folder, name="demo digits")
    project.set_base_model(ModelSpec.demo())
    project.set_dataset(DatasetConfig(kind="demo"))
    project.save()
    return project


def summary_lines(result: DemoResult) -> list[str]:
    """One line per variant (figures and the time its stage took) and the total, for the command line."""
    lines = []
    for v in result.variants.values():
        acc = v.accuracy_on()
        lat = v.latency[-1] if v.latency else None
        lines.append(f"{v.id:<5} {v.name:<28} params {v.params.value:>8,}  size {v.size_bytes.value:>9,} B  "
                     f"top-1 {100 * acc.top1:6.2f} %" + (f"  p50 {lat.p50:.3f} ms ({lat.runs} runs)" if lat else "")
                     + f"  [{result.seconds.get(v.id, 0.0):.1f} s]")
    lines.append(f"demo pipeline: {result.seconds.get('total', 0.0):.1f} s; project: {result.project.folder}")
    return lines
