"""Latency on this machine within a time budget: a slow model gets fewer timed runs, and the stats say so."""

from __future__ import annotations

import torch

from workbench.core.latency import measure_interleaved


def test_a_latency_budget_gives_a_slow_model_fewer_runs_and_says_how_many(tmp_path):
    torch.onnx.export(torch.nn.Linear(6, 3).eval(), (torch.randn(1, 6),), str(tmp_path / "m.onnx"), dynamo=False)
    models = {"m": tmp_path / "m.onnx"}
    full = measure_interleaved(models, (1, 6), runs=40, warmup=2)["m"]
    assert full.runs == 40
    # a budget far below one run's time: the fewest runs allowed, recorded as such
    short = measure_interleaved(models, (1, 6), runs=40, warmup=20, budget_s=1e-9, min_runs=7)["m"]
    assert short.runs == 7 and short.p50 > 0
    roomy = measure_interleaved(models, (1, 6), runs=40, warmup=2, budget_s=1e6)["m"]
    assert roomy.runs == 40  # a budget never adds runs
