"""Experiment figures for `make bench`: evaluation throughput and the variant chart's update time.

Evaluation runs the deployed artifact in ONNX Runtime over batches, as the experiments do: the demo digits
(28×28, 1,000 validation images) and MobileNetV2 at 224×224 on random images (throughput does not depend on the
pixels). The chart figure is the time for one full update with 1,000 variants, painted, median of 5.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _throughput(artifact, data, batch: int, threads: int, repeats: int = 3) -> float:
    from workbench.core import evaluate

    evaluate.accuracy(artifact, data.take(batch), batch=batch, threads=threads)  # session creation, warm caches
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        evaluate.accuracy(artifact, data, batch=batch, threads=threads)
        rates.append(len(data) / (time.perf_counter() - t))
    return statistics.median(rates)


def bench_evaluation() -> None:
    import numpy as np

    from workbench.core.artifact import ModelArtifact, export_onnx
    from workbench.core.data import ArrayData, demo_data
    from workbench.core.demo import demo_request
    from workbench.core.readers import open_model
    from workbench.core.shapes import TensorSpec

    data = demo_data()
    with tempfile.TemporaryDirectory() as tmp:
        demo = export_onnx(ModelArtifact.from_graph(open_model(demo_request())), Path(tmp) / "demo.onnx")
        print(f"{'model':<28} {'input':<12} {'batch':>5} {'threads':>7} {'images/s':>9}")
        for threads in (1, 2):
            rate = _throughput(demo, data.val, 256, threads)
            print(f"{'demo digits (ONNX fp32)':<28} {'1x28x28':<12} {256:>5} {threads:>7} {rate:>9.0f}")
        import torch

        from workbench.core import architectures

        module = architectures.build("mobilenet_v2").eval()
        path = Path(tmp) / "mobilenet_v2.onnx"
        torch.onnx.export(module, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
        mobilenet = ModelArtifact(path, "onnx", [TensorSpec("x", [1, 3, 224, 224], "float32")])
        rng = np.random.default_rng(0)
        images = ArrayData("random 224", rng.standard_normal((64, 3, 224, 224)).astype(np.float32),
                           rng.integers(0, 1000, 64))
        for threads in (1, 2):
            rate = _throughput(mobilenet, images, 16, threads, repeats=2)
            print(f"{'MobileNetV2 (ONNX fp32)':<28} {'3x224x224':<12} {16:>5} {threads:>7} {rate:>9.1f}")


def bench_chart() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import random

    from PySide6.QtWidgets import QApplication

    from workbench.gui.charts import ChartPoint, VariantChart

    app = QApplication.instance() or QApplication(sys.argv[:1])
    chart = VariantChart()
    chart.resize(900, 600)
    chart.show()
    rng = random.Random(0)
    for n in (100, 1000):
        times = []
        for _ in range(5):
            points = [ChartPoint(f"v{i}", f"variant {i}", f"v{rng.randrange(i)}" if i else None,
                                 rng.uniform(80, 99), rng.uniform(1e5, 1e7), rng.uniform(0.1, 5.0),
                                 measured=rng.random() > 0.2) for i in range(n)]
            t = time.perf_counter()
            chart.set_points(points)
            chart.repaint()
            app.processEvents()
            times.append(1000 * (time.perf_counter() - t))
        print(f"chart update with {n:>5} variants: median {statistics.median(times):6.1f} ms "
              f"(min {min(times):.1f}, max {max(times):.1f}; set points + paint, offscreen)")
    chart.close()


def main() -> None:
    bench_evaluation()
    bench_chart()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
