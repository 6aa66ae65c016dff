"""Latency of ONNX models with ONNX Runtime on this machine, measured the way comparisons need.

Variants are run interleaved (one run of each in turn) so that load from other processes hits all alike, after a
warm-up, with a fixed thread count (one by default: on a small machine more threads mostly add noise).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class LatencyStats:
    """Measured latency in milliseconds over ``runs`` timed runs."""

    p50: float
    p90: float
    p99: float
    min: float
    std: float
    runs: int
    threads: int

    @classmethod
    def from_samples(cls, samples_ms: list[float], threads: int) -> "LatencyStats":
        a = np.asarray(samples_ms)
        return cls(float(np.percentile(a, 50)), float(np.percentile(a, 90)), float(np.percentile(a, 99)),
                   float(a.min()), float(a.std()), len(a), threads)


def session(path: Path, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def measure_interleaved(models: dict[str, Path], input_shape: tuple[int, ...], runs: int = 200, warmup: int = 20,
                        threads: int = 1, seed: int = 0, budget_s: float | None = None,
                        min_runs: int = 10) -> dict[str, LatencyStats]:
    """p50/p90/p99 per model, batch as in ``input_shape``, the same random input for all.

    With ``budget_s``, a slow model gets fewer runs (never under ``min_runs``) so the whole measurement takes about
    that long: a large network measured in the background must not hold the CPU for minutes. The stats say how
    many runs were timed.
    """
    x = np.random.default_rng(seed).standard_normal(input_shape).astype(np.float32)
    sessions = {}
    for name, path in models.items():
        sess = session(path, threads)
        sessions[name] = (sess, {sess.get_inputs()[0].name: x})
    t = time.perf_counter()
    for sess, feed in sessions.values():  # the first warm-up round, timed to fit the budget
        sess.run(None, feed)
    if budget_s is not None:
        fit = int(budget_s / max(time.perf_counter() - t, 1e-6))
        warmup, runs = min(warmup, max(1, fit // 5)), min(runs, max(min_runs, fit))
    for _ in range(warmup - 1):
        for sess, feed in sessions.values():
            sess.run(None, feed)
    samples: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(runs):
        for name, (sess, feed) in sessions.items():
            t = time.perf_counter()
            sess.run(None, feed)
            samples[name].append(1000 * (time.perf_counter() - t))
    return {name: LatencyStats.from_samples(s, threads) for name, s in samples.items()}
