"""The device agent against a direct ONNX Runtime measurement of the same model here (prints, never asserts).

MobileNetV2 at 1x3x224x224 (fp32 ONNX cached under .bench/), one intra-op thread, batch 1. The agent runs on
127.0.0.1 in its own process and measures in a child process; ``workbench.core.latency.measure_interleaved``
measures in this process. Rounds alternate agent / direct so drift on the shared machine hits both. Target: the
agent's p50 within 15 % of the direct p50 (ratio 0.85-1.15).

    .venv/bin/python tests/benchmarks/bench_agent.py [--runs N] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

CACHE = ROOT / ".bench"
SHAPE = (1, 3, 224, 224)


def mobilenet_onnx() -> Path:
    path = CACHE / "mobilenet_v2.onnx"
    if path.exists():
        return path
    import torch

    from workbench.core import architectures

    CACHE.mkdir(exist_ok=True)
    module = architectures.build("mobilenet_v2").eval()
    tmp = path.with_suffix(".part.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*SHAPE),), str(tmp), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"])
    tmp.replace(path)
    return path


def main(runs: int = 200, rounds: int = 3) -> None:
    from agent_process import AgentProcess
    from workbench.core.latency import measure_interleaved
    from workbench.devices import BenchConfig

    model = mobilenet_onnx()
    config = BenchConfig(runs=runs, warmup=20, threads=1, profile_runs=0, input_shapes={"input": list(SHAPE)})
    with tempfile.TemporaryDirectory() as tmp:
        agent = AgentProcess(Path(tmp))
        try:
            device = agent.device()
            device.upload(model)
            print(f"MobileNetV2 {'x'.join(map(str, SHAPE))}, 1 thread, {runs} runs after 20 warm-up, "
                  f"{rounds} rounds; agent at 127.0.0.1:{agent.port}")
            print(f"{'round':>5} {'agent p50 ms':>13} {'direct p50 ms':>14} {'ratio':>7} {'agent p90':>10} "
                  f"{'direct p90':>11}")
            ratios = []
            for i in range(rounds):
                remote = device.benchmark(model, config)
                direct = measure_interleaved({"direct": model}, SHAPE, runs=runs, warmup=20, threads=1)["direct"]
                ratios.append(remote.p50_ms / direct.p50)
                print(f"{i + 1:>5} {remote.p50_ms:>13.2f} {direct.p50:>14.2f} {ratios[-1]:>7.3f} "
                      f"{remote.p90_ms:>10.2f} {direct.p90:>11.2f}")
            median = statistics.median(ratios)
            verdict = "within" if abs(median - 1) <= 0.15 else "OUTSIDE"
            print(f"median ratio agent/direct {median:.3f} ({verdict} the 15 % target); load "
                  f"{remote.load_ms:.0f} ms, first inference {remote.first_inference_ms:.1f} ms on the agent")
        finally:
            agent.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.runs, args.rounds)
