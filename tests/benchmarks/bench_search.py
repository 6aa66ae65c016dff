"""Search throughput on the demo: candidates per minute with 1 and 2 worker processes (prints, never asserts).

Space: channel-pruning ratio {0.1, 0.2, 0.3} x {fp32, int8 static}: 6 candidates, 6 steps (3 prunings, 3 int8
quantizations), each measured on the 1,000 validation digits. Every run starts from a fresh project whose base
model is already measured, so the figure includes starting the worker processes but not the parent's measurement.

    .venv/bin/python tests/benchmarks/bench_search.py
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _run(workers: int) -> tuple[float, int, int]:
    from workbench.core.datasets import DatasetConfig
    from workbench.core.methods import run_to_end
    from workbench.core.modelspec import ModelSpec
    from workbench.core.project import Project
    from workbench.core.runner import evaluate_variant
    from workbench.core.search import SearchConfig, search
    from workbench.core.search_space import pruning_x_bits

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        project = Project.create(Path(tmp) / "p")
        project.set_base_model(ModelSpec.demo())
        project.set_dataset(DatasetConfig(kind="demo"))
        run_to_end(evaluate_variant(project, "base"))
        config = SearchConfig(name="bench", space=pruning_x_bits(ratios=[0.1, 0.2, 0.3], bits=["fp32", "int8"]),
                              workers=workers, max_drop=1.0)
        t = time.perf_counter()
        result = run_to_end(search(project, config))
        wall = time.perf_counter() - t
    return wall, len(result.candidates), result.steps_run


def main() -> None:
    import os

    warnings.filterwarnings("ignore")
    print(f"{'workers':>7} {'candidates':>10} {'steps run':>9} {'wall s':>7} {'candidates/min':>15} "
          f"(machine: {os.cpu_count()} cores, shared)")
    for workers in (1, 2):
        wall, n, steps = _run(workers)
        print(f"{workers:>7} {n:>10} {steps:>9} {wall:>7.1f} {60 * n / wall:>15.1f}")
    print("wall = search() from start to result: starting spawn workers (each imports torch), pruning (torch.export "
          "and ONNX export), int8 calibration, and accuracy on 1,000 digits per candidate.")


if __name__ == "__main__":
    main()
