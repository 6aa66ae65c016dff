"""`make bench`: print figures (never asserts). Model files are cached under .bench/.

Inspect: for ResNet-50 and ViT-B/16 as ONNX and TorchScript, the wall time of `workbench inspect --json` as a user
runs it (fresh process, median of 3), the time to open the model inside the process, and peak memory above the
process's baseline compared with the model file's size. Targets on the 2-core machine: under 3 s, under 3x the file.
Layout: synthetic graphs of 1 k, 5 k and 20 k layers. GUI: file chosen -> graph drawn, and the longest GUI stall.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".bench"
MODELS = ["resnet50", "vit_b_16"]
SHAPE = (1, 3, 224, 224)


def _files(name: str) -> dict[str, Path]:
    import torch

    from workbench.core import architectures

    CACHE.mkdir(exist_ok=True)
    out = {"onnx": CACHE / f"{name}.onnx", "torchscript": CACHE / f"{name}.pt"}
    if all(p.exists() for p in out.values()):
        return out
    module = architectures.build(name).eval()
    x = torch.randn(*SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(out["onnx"]), dynamo=False, opset_version=17)
        torch.jit.save(torch.jit.trace(module, x), str(out["torchscript"]))
    return out


def bench_inspect() -> None:
    print("== workbench inspect (2-core machine; targets: < 3 s, peak memory < 3x the model file)")
    header = f"{'model':<10} {'format':<12} {'file MB':>8} {'CLI wall s':>11} {'open s':>7} " \
             f"{'import s':>9} {'peak MB':>8} {'x file':>7}"
    print(header)
    shape_arg = ["--input-shape", "x".join(map(str, SHAPE))]
    for name in MODELS:
        for fmt, path in _files(name).items():
            extra = shape_arg if fmt == "torchscript" else []
            walls = []
            for _ in range(3):
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "workbench.cli", "inspect", str(path), "--json", *extra],
                               check=True, stdout=subprocess.DEVNULL)
                walls.append(time.perf_counter() - t)
            once = subprocess.run([sys.executable, str(Path(__file__).with_name("inspect_once.py")), str(path),
                                   *extra[1:]], check=True, capture_output=True, text=True)
            m = json.loads(once.stdout)
            size = path.stat().st_size
            peak = max(0, m["peak_rss"] - m["baseline_rss"])
            print(f"{name:<10} {fmt:<12} {size / 1e6:>8.1f} {statistics.median(walls):>11.2f} "
                  f"{m['open_s']:>7.2f} {m['import_s']:>9.2f} {peak / 1e6:>8.1f} {peak / size:>7.2f}")
    print("CLI wall = whole `workbench inspect --json` process, median of 3; open = reading and counting inside the "
          "process; peak = highest RSS while opening, above the RSS after importing the libraries.")


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_agent
    import bench_demo
    import bench_experiments
    import bench_gui
    import bench_layout
    import bench_onnx_prune
    import bench_projects
    import bench_pruning
    import bench_quantize
    import bench_search

    bench_inspect()
    print("\n== Layered layout, synthetic network graphs")
    bench_layout.main()
    files = {}
    for name in MODELS:
        for fmt, path in _files(name).items():
            files[f"{name} ({fmt})"] = path
    bench_gui.main(files)
    print("\n== int8 static quantization vs fp32 (ONNX Runtime, 1 thread, batch 1, interleaved)")
    bench_quantize.main()
    print("\n== channel pruning vs fp32 (ONNX Runtime, 1 thread, batch 1, interleaved)")
    bench_pruning.main()
    print("\n== channel pruning of an ONNX file (converted to PyTorch layers and back)")
    bench_onnx_prune.main()
    print("\n== Experiments: evaluation throughput (ONNX Runtime) and variant chart updates")
    bench_experiments.main()
    print("\n== device agent vs direct ONNX Runtime (same model, this machine, 1 thread)")
    bench_agent.main()
    print("\n== Projects: evaluation cache, project.json save/open, recipe replay")
    bench_projects.main()
    print("\n== workbench demo --headless (full settings, fresh process; target < 5 min)")
    bench_demo.main()
    print("\n== Search: candidates per minute with 1 and 2 worker processes (demo, pruning x int8)")
    bench_search.main()


if __name__ == "__main__":
    main()
