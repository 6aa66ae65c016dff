"""Experiments: evaluation speed, cache hits, project save/open and a recipe replay (prints, never asserts).

Evaluation of the demo's 1,000 validation digits through ONNX Runtime (one thread, batches of 256), fp32 and int8,
against the target "well under a second"; the same with the accuracy cache warm; project.json save and open with
500 variants; and the wall time of replaying prune.channels 20 % + quantize.int8_static.

    .venv/bin/python tests/benchmarks/bench_experiments.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _median_s(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    import torch

    from workbench.core.artifact import ModelArtifact
    from workbench.core.evaluation import AccuracyCache, evaluate
    from workbench.core.methods import run_to_end
    from workbench.core.project import Project
    from workbench.core.recipes import parse_recipe, run_recipe
    from workbench.core.runner import variant_artifact
    from workbench.core.variants import AccuracyMetric, Figure, Step, Variant

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    print("(2-core machine; target: evaluating 1,000 digits well under 1 s)")
    with tempfile.TemporaryDirectory() as tmp:
        recipe = parse_recipe({"schema_version": 1, "evaluate": {"device": "none"}, "steps": [
            {"method": "prune.channels", "params": {"ratio": 0.2}},
            {"method": "quantize.int8_static", "params": {"calibration_samples": 64}}]})
        t = time.perf_counter()
        result = run_to_end(run_recipe(recipe, Path(tmp), Path(tmp) / "project"))
        print(f"recipe replay (base + prune 20 % + int8, measured): {time.perf_counter() - t:.1f} s wall")
        project = result.project
        from workbench.core.data import demo_data

        val = demo_data().val
        for vid, label in (("base", "fp32"), ("v2", "int8")):
            artifact = variant_artifact(project, project.variants[vid], deploy=True)
            cold = _median_s(lambda: run_to_end(evaluate(artifact, val, threads=1)))
            cache = AccuracyCache(Path(tmp) / f"cache-{vid}.json")
            run_to_end(evaluate(artifact, val, "fp", cache))
            warm = _median_s(lambda: run_to_end(evaluate(ModelArtifact(artifact.path, "onnx", artifact.inputs), val,
                                                         "fp", AccuracyCache(cache.path))))
            print(f"evaluate {label} on {len(val)} digits: {cold * 1000:.0f} ms (ONNX Runtime, 1 thread), "
                  f"cached {warm * 1000:.1f} ms (includes hashing the file)")
        big = Project.create(Path(tmp) / "big")
        for i in range(500):
            big.add_variant(Variant(f"v{i + 1}", None if i == 0 else f"v{i}", f"variant {i}",
                                    step=Step("prune.channels", {"ratio": 0.3}), status="done",
                                    artifact=f"v{i + 1}.pt2", params=Figure(100_000), macs=Figure(5_000_000),
                                    accuracy=(AccuracyMetric(0.9, 1.0, 0.3, 1000, "demo/val", "fp"),)))
        save = _median_s(big.save)
        load = _median_s(lambda: Project.open(big.folder))
        size = (big.folder / "project.json").stat().st_size
        print(f"project.json with 500 variants ({size / 1e3:.0f} kB): save {save * 1000:.1f} ms (atomic, fsync), "
              f"open {load * 1000:.1f} ms")


if __name__ == "__main__":
    main()
