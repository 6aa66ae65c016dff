"""A demo project with hand-written measurements, for report tests that must not train anything.

Base model (measured), a pruned variant and its fine-tuned child (measured), an int8 variant (measured) and a
planned variant (estimated figures only). The figures are made up but plausible; the report only formats them.
"""

from __future__ import annotations

from pathlib import Path

from workbench.core.datasets import DatasetConfig
from workbench.core.modelspec import ModelSpec
from workbench.core.project import ROOT_ID, Project
from workbench.core.variants import ESTIMATED, AccuracyMetric, Figure, LatencyMetric, Step, Variant

FP = "0123456789abcdef"


def _acc(top1: float, top5: float) -> tuple[AccuracyMetric, ...]:
    return (AccuracyMetric(top1, top5, 0.1, 1000, "demo/val", FP),)


def _lat(p50: float, runs: int = 200) -> tuple[LatencyMetric, ...]:
    return (LatencyMetric("local", p50, p50 * 1.1, p50 * 1.3, runs, 1, "x86_64"),)


def made_up_project(folder: Path) -> Project:
    project = Project.create(folder, name="report test")
    project.set_base_model(ModelSpec.demo())
    project.set_dataset(DatasetConfig(kind="demo"))
    base = project.variant(ROOT_ID)
    project.update_variant(base.with_changes(status="done", deploy="base.onnx", params=Figure(106954),
                                             macs=Figure(5633608), size_bytes=Figure(436429),
                                             accuracy=_acc(0.989, 1.0), latency=_lat(0.101)), "measure base")
    variants = [
        Variant("v1", ROOT_ID, "pruned 50 %", Step("prune.channels", {"ratio": 0.5}), "done", artifact="v1.pt2",
                deploy="v1.onnx", params=Figure(32330), macs=Figure(1827576), size_bytes=Figure(142293),
                accuracy=_acc(0.10, 0.514), latency=_lat(0.060)),
        Variant("v2", "v1", "pruned + fine-tuned", Step("finetune", {"epochs": 5}), "done", artifact="v2.pt2",
                deploy="v2.onnx", params=Figure(32330), macs=Figure(1827576), size_bytes=Figure(142293),
                accuracy=_acc(0.983, 0.998), latency=_lat(0.062)),
        Variant("v3", ROOT_ID, "int8 <static>", Step("quantize.int8_static", {}), "done", artifact="v3.onnx",
                deploy="v3.onnx", params=Figure(102928), macs=Figure(6368406), size_bytes=Figure(148661),
                accuracy=_acc(0.990, 1.0), latency=_lat(0.079)),
        Variant("v4", ROOT_ID, "planned magnitude", Step("prune.magnitude", {"sparsity": 0.5}), "planned",
                params=Figure(106954, ESTIMATED), macs=Figure(5633608, ESTIMATED),
                size_bytes=Figure(300000, ESTIMATED)),
        Variant("v5", ROOT_ID, "broken run", Step("distill.kd", {}), "failed", error="out of patience"),
    ]
    for v in variants:
        project.add_variant(v)
    project.save()
    return project
