"""Channel pruning: latency of pruned MobileNetV2 and ResNet-50 (ONNX Runtime, 1 thread), printed, never asserted.

For each model (built-in architecture, random weights: latency does not depend on the values) at 1x3x224x224:
the dense fp32 model, 50 % channel pruning with channel counts rounded to multiples of 8, and — for contrast —
30 % pruning rounded to 8 and with no rounding (odd channel counts). All are exported to ONNX and timed
interleaved (``workbench.core.latency.measure_interleaved``, 200 runs, 1 thread). Parameters and MACs come from
the project's own counter. Files are cached under .bench/pruning/ (delete it to rebuild).

Target on the development machine: 50 % channel pruning at least 1.5x faster than the dense model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".bench" / "pruning"
MODELS = ["mobilenet_v2", "resnet50"]
SHAPE = (1, 3, 224, 224)
VARIANTS = [  # (file key, label, ChannelPruning parameters)
    ("p50_r8", "pruned 50 % /8", {"ratio": 0.5, "round_to": 8}),
    ("p30_r8", "pruned 30 % /8", {"ratio": 0.3, "round_to": 8}),
    ("p30_r1", "pruned 30 % /1", {"ratio": 0.3, "round_to": 1}),
]


def _dense(name: str):
    """The dense model as a state_dict artifact (random weights, seeded) and its ONNX copy."""
    import torch

    from workbench.core import architectures
    from workbench.core.artifact import ModelArtifact, export_onnx
    from workbench.core.shapes import TensorSpec

    CACHE.mkdir(parents=True, exist_ok=True)
    weights = CACHE / f"{name}.pt"
    if not weights.exists():
        torch.manual_seed(0)
        torch.save(architectures.build(name).eval().state_dict(), str(weights))
    artifact = ModelArtifact(path=weights, format="torch-state-dict", architecture=name,
                             inputs=[TensorSpec("input", list(SHAPE), "float32")])
    onnx_path = CACHE / f"{name}.onnx"
    if not onnx_path.exists():
        export_onnx(artifact, onnx_path)
    return artifact, onnx_path


def _variant(name: str, artifact, key: str, values: dict) -> tuple[Path, dict]:
    """Prune, export to ONNX, and remember params/MACs before and after (cached with the file)."""
    import shutil

    from workbench.core.artifact import export_onnx
    from workbench.core.methods import RunContext, run_to_end
    from workbench.methods.pruning import ChannelPruning

    onnx_path = CACHE / f"{name}_{key}.onnx"
    info_path = onnx_path.with_suffix(".json")
    if onnx_path.exists() and info_path.exists():
        return onnx_path, json.loads(info_path.read_text())
    method = ChannelPruning()
    t = time.perf_counter()
    work = CACHE / "work" / f"{name}_{key}"
    result = run_to_end(method.run(artifact, method.parse_params(values), RunContext(work_dir=work)))
    prune_s = time.perf_counter() - t
    export_onnx(result, onnx_path)
    info = {k: result.meta[k] for k in ("params_before", "params_after", "macs_before", "macs_after")}
    info["prune_s"] = prune_s
    info["odd_channels"] = sum(1 for c in result.meta["channels"].values() if c[1] % 2)
    info_path.write_text(json.dumps(info))
    shutil.rmtree(work, ignore_errors=True)  # the ONNX copy is what is timed
    return onnx_path, info


def main() -> None:
    import os

    from workbench.core.latency import measure_interleaved

    print(f"== Channel pruning: ONNX Runtime latency at {'x'.join(map(str, SHAPE))}, 1 thread, 200 interleaved runs "
          f"({os.cpu_count()} cores; random weights)")
    header = (f"{'model':<13} {'variant':<16} {'params':>12} {'MACs':>15} {'p50 ms':>8} {'p90 ms':>8} "
              f"{'speed-up':>9} {'odd layers':>10} {'prune s':>8}")
    for name in MODELS:
        artifact, dense_path = _dense(name)
        files = {"fp32 dense": dense_path}
        infos: dict[str, dict] = {}
        for key, label, values in VARIANTS:
            files[label], infos[label] = _variant(name, artifact, key, values)
        stats = measure_interleaved(files, SHAPE, runs=200, threads=1)
        print(header)
        base = stats["fp32 dense"].p50
        first = next(iter(infos.values()))
        print(f"{name:<13} {'fp32 dense':<16} {first['params_before']:>12,} {first['macs_before']:>15,} "
              f"{base:>8.2f} {stats['fp32 dense'].p90:>8.2f} {1.0:>8.2f}x {'':>10}")
        for label, info in infos.items():
            s = stats[label]
            print(f"{name:<13} {label:<16} {info['params_after']:>12,} {info['macs_after']:>15,} {s.p50:>8.2f} "
                  f"{s.p90:>8.2f} {base / s.p50:>8.2f}x {info['odd_channels']:>10} {info['prune_s']:>8.1f}")
        print()
    print("/8 = channel counts rounded to multiples of 8; /1 = no rounding. 'odd layers' counts layers left with an "
          "odd number of output channels; prune s = the whole prune.channels run (load, count, prune, save, "
          "recount) when the file was made. Speed-up = dense p50 / variant p50. Parameters and MACs are counted from "
          "shapes by the project's counter. The machine is shared: expect ±20 %.")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
