"""Channel pruning on ONNX input: MobileNetV2 ONNX → converted to PyTorch layers → 50 % pruned → ONNX again.

Prints MACs and parameters before/after (the project's counter) and the ONNX Runtime latency of both files
(``workbench.core.latency.measure_interleaved``, 200 runs, 1 thread, batch 1, 224x224), never asserted. Also the time
of the conversion alone and of the whole ``prune.channels`` run. Files are cached under .bench/onnx_prune/.

Reference from the issue: onnxslim + onnx2torch + Torch-Pruning took a MobileNetV2 ONNX from 314 M to 86 M MACs and
ran 2.4x faster in ONNX Runtime.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".bench" / "onnx_prune"
SHAPE = (1, 3, 224, 224)


def _dense_onnx() -> Path:
    import torch

    from workbench.core import architectures
    from workbench.core.artifact import write_onnx

    path = CACHE / "mobilenet_v2.onnx"
    if not path.exists():
        torch.manual_seed(0)
        write_onnx(architectures.build("mobilenet_v2").eval(), [torch.randn(*SHAPE)], path, ["input"], ["output"])
    return path


def main() -> None:
    import onnx
    import torch

    from workbench.core.artifact import ModelArtifact
    from workbench.core.latency import measure_interleaved
    from workbench.core.methods import RunContext, run_to_end
    from workbench.core.onnx_torch import onnx_to_torch
    from workbench.core.readers import open_model
    from workbench.core.readers.base import OpenRequest
    from workbench.core.shapes import ShapeRequest
    from workbench.methods.pruning import ChannelPruning

    torch.set_num_threads(1)
    CACHE.mkdir(parents=True, exist_ok=True)
    dense = _dense_onnx()
    graph = open_model(OpenRequest(path=dense, shapes=ShapeRequest(by_position=[SHAPE])))
    artifact = ModelArtifact.from_graph(graph)

    t = time.perf_counter()
    onnx_to_torch(onnx.load(str(dense)), [SHAPE])
    convert_s = time.perf_counter() - t

    work = CACHE / "work"
    shutil.rmtree(work, ignore_errors=True)
    method = ChannelPruning()
    t = time.perf_counter()
    result = run_to_end(method.run(artifact, method.parse_params({"ratio": 0.5}), RunContext(work_dir=work)))
    prune_s = time.perf_counter() - t
    pruned = CACHE / "mobilenet_v2_p50.onnx"
    shutil.copyfile(result.path, pruned)
    after = open_model(OpenRequest(path=pruned, shapes=ShapeRequest(by_position=[SHAPE])))
    shutil.rmtree(work, ignore_errors=True)

    stats = measure_interleaved({"dense": dense, "pruned": pruned}, SHAPE, runs=200, threads=1)
    print(f"== prune.channels on an ONNX file: MobileNetV2 at {'x'.join(map(str, SHAPE))}, ratio 0.5, channel counts "
          f"rounded to 8; ONNX Runtime 1 thread, 200 interleaved runs ({os.cpu_count()} cores; random weights)")
    print(f"{'variant':<12} {'params':>12} {'MACs':>15} {'p50 ms':>8} {'p90 ms':>8} {'speed-up':>9}")
    base = stats["dense"].p50
    for label, g in (("dense", graph), ("pruned", after)):
        s = stats[label]
        print(f"{label:<12} {g.params:>12,} {g.macs:>15,} {s.p50:>8.2f} {s.p90:>8.2f} {base / s.p50:>8.2f}x")
    print(f"MACs {graph.macs / 1e6:.0f} M -> {after.macs / 1e6:.0f} M ({after.macs / graph.macs:.0%}); latency ratio "
          f"dense/pruned {base / stats['pruned'].p50:.2f}x (measured); conversion ONNX -> PyTorch {convert_s:.2f} s; "
          f"whole prune.channels run (convert, prune, export ONNX, recount) {prune_s:.1f} s. MACs counted from "
          "shapes by the project's counter. The machine is shared: expect ±20 %.")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
