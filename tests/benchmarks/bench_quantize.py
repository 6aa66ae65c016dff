"""Static int8 quantization: fp32 vs int8 latency, file size and integer-kernel coverage (prints, never asserts).

For MobileNetV2 and ResNet-50 at 1x3x224x224: export fp32 ONNX (cached under .bench/), calibrate with 64
random-normal samples, quantize with quantize.int8_static's defaults, then time both models interleaved with
ONNX Runtime (200 runs, 1 thread). Targets on the development machine: int8 >= 1.8x faster on MobileNetV2 and
>= 3x on ResNet-50, at <= 28 % of the fp32 file.

``--variants`` also times the alternatives the defaults were chosen against (QOperator format, int8 activations,
per-tensor weights, no stem channel padding).

    .venv/bin/python tests/benchmarks/bench_quantize.py [--variants] [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = ROOT / ".bench"
SHAPE = (1, 3, 224, 224)
MODELS = {"mobilenet_v2": ("MobileNetV2", 1.8), "resnet50": ("ResNet-50", 3.0)}
SIZE_TARGET = 0.28
CALIBRATION = 64
VARIANTS = {
    "qoperator": {"quant_format": "qoperator"},
    "s8s8": {"activation_type": "int8"},
    "per-tensor": {"per_channel": False},
    "no stem pad": {"pad_stem_channels": False},
}


def fp32_model(name: str) -> Path:
    """The architecture exported to ONNX (opset 17, TorchScript exporter, batch axis dynamic), cached."""
    path = CACHE / f"quant_{name}_fp32.onnx"
    if path.exists():
        return path
    import torch

    from workbench.core import architectures

    CACHE.mkdir(exist_ok=True)
    module = architectures.build(name).eval()
    tmp = path.with_suffix(".part.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*SHAPE),), str(tmp), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    tmp.replace(path)
    return path


def quantize(fp32: Path, out_dir: Path, values: dict | None = None, log=None):
    from workbench.core.artifact import ModelArtifact
    from workbench.core.data import ArrayData, DataBundle
    from workbench.core.methods import RunContext, run_to_end
    from workbench.core.shapes import TensorSpec
    from workbench.methods.quantize_int8 import StaticInt8

    x = np.random.default_rng(0).standard_normal((CALIBRATION, *SHAPE[1:])).astype(np.float32)
    calib = ArrayData("random-normal", x)
    data = DataBundle("random-normal", calib, calib, calib)
    artifact = ModelArtifact(path=fp32, format="onnx", inputs=[TensorSpec("input", list(SHAPE), "float32")])
    method = StaticInt8()
    params = method.parse_params({"calibration_samples": CALIBRATION, **(values or {})})
    ctx = RunContext(work_dir=out_dir, data=data, log=log or (lambda message: None))
    t = time.perf_counter()
    result = run_to_end(method.run(artifact, params, ctx))
    return result, time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    from workbench.core.latency import measure_interleaved
    from workbench.methods.quantize_int8 import cpu_flags, has_vnni

    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--variants", action="store_true", help="also time the non-default alternatives")
    args.add_argument("--runs", type=int, default=200)
    opts = args.parse_args([] if argv is None else argv)  # main() from run_all: defaults

    import onnxruntime

    vnni = sorted(f for f in cpu_flags() if "vnni" in f)
    print(f"== static int8 (quantize.int8_static defaults), onnxruntime {onnxruntime.__version__}, 1 thread, "
          f"{opts.runs} interleaved runs, p50")
    print(f"CPU VNNI: {'yes (' + ', '.join(vnni) + ')' if has_vnni() else 'no'}")
    header = (f"{'model':<12} {'fp32 ms':>8} {'int8 ms':>8} {'speed-up':>9} {'target':>7} {'fp32 MB':>8} "
              f"{'int8 MB':>8} {'int8 %':>7} {'target':>7} {'int/float ops':>14} {'quantize s':>11}")
    rows, logs = [], []
    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        for name, (label, speed_target) in MODELS.items():
            fp32 = fp32_model(name)
            lines: list[str] = []
            int8, seconds = quantize(fp32, Path(tmp) / name, log=lines.append)
            logs += [f"{label}: {line}" for line in lines]
            paths = {"fp32": fp32, "int8": int8.path}
            variant_meta = {}
            if opts.variants:
                for vname, values in VARIANTS.items():
                    v, _ = quantize(fp32, Path(tmp) / f"{name}-{vname}", values)
                    paths[vname] = v.path
                    variant_meta[vname] = v
            stats = measure_interleaved(paths, SHAPE, runs=opts.runs, threads=1)
            f, q = stats["fp32"].p50, stats["int8"].p50
            size_f, size_q = fp32.stat().st_size, int8.path.stat().st_size
            meta = int8.meta
            rows.append(f"{label:<12} {f:>8.2f} {q:>8.2f} {f / q:>8.2f}x {'≥' + str(speed_target) + 'x':>7} "
                        f"{size_f / 1e6:>8.2f} {size_q / 1e6:>8.2f} {100 * size_q / size_f:>6.1f}% "
                        f"{'≤' + str(int(100 * SIZE_TARGET)) + '%':>7} "
                        f"{str(meta['integer_ops']) + ' / ' + str(meta['float_compute_ops']):>14} {seconds:>11.1f}")
            for vname, v in variant_meta.items():
                s = stats[vname].p50
                rows.append(f"  {vname:<10} {'':>8} {s:>8.2f} {f / s:>8.2f}x {'':>7} {'':>8} "
                            f"{v.path.stat().st_size / 1e6:>8.2f} {100 * v.path.stat().st_size / size_f:>6.1f}% "
                            f"{'':>7} {str(v.meta['integer_ops']) + ' / ' + str(v.meta['float_compute_ops']):>14}")
            extra = f"  (min fp32 {stats['fp32'].min:.2f} ms, int8 {stats['int8'].min:.2f} ms)"
            rows.append(extra)
    print(header)
    for row in rows:
        print(row)
    print("method log:")
    for line in logs:
        print("  " + line)


if __name__ == "__main__":
    main(sys.argv[1:])
