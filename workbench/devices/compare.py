"""Several models on one device, measured in interleaved rounds so that load from other work hits all alike.

Each round runs every model once (``runs / rounds`` timed runs each, after its warm-up), in turn. The combined
figures are the median over rounds of each round's p50 and p90, the worst round's p99, the best run, and the sum of
runs: a slow patch of the machine then shifts every model's round, not one model's whole measurement.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Generator

from workbench.core.progress import CancelToken, Progress, scaled

from .base import BenchConfig, Device, LatencyReport


def combine(reports: list[LatencyReport]) -> LatencyReport:
    """One report from the rounds of one model (the last round's profile and load times)."""
    last = reports[-1]
    return replace(last, p50_ms=statistics.median(r.p50_ms for r in reports),
                   p90_ms=statistics.median(r.p90_ms for r in reports), p99_ms=max(r.p99_ms for r in reports),
                   min_ms=min(r.min_ms for r in reports), std_ms=statistics.median(r.std_ms for r in reports),
                   runs=sum(r.runs for r in reports))


def measure_interleaved(device: Device, models: dict[str, Path], config: BenchConfig, rounds: int = 3,
                        token: CancelToken | None = None) -> Generator[Progress, None, dict[str, LatencyReport]]:
    """Latency of every model in ``models`` (key -> ONNX path) on ``device``; yields progress, honours cancel."""
    token = token or CancelToken()
    rounds = max(1, min(rounds, config.runs))
    per_round = replace(config, runs=max(1, config.runs // rounds), profile_runs=0)
    last_round = replace(per_round, profile_runs=config.profile_runs)
    results: dict[str, list[LatencyReport]] = {key: [] for key in models}
    total = rounds * len(models)
    done = 0
    for r in range(rounds):
        for key, path in models.items():
            token.check()
            yield Progress(done / total, f"round {r + 1}/{rounds}: {key}: starting on {device.name}")
            cfg = last_round if r == rounds - 1 else per_round
            report = yield from scaled(device.benchmark_steps(path, cfg, token), done / total, (done + 1) / total,
                                       f"round {r + 1}/{rounds}: {key}: ")
            results[key].append(report)
            done += 1
    yield Progress(1.0, f"measured {len(models)} models on {device.name}")
    return {key: combine(reports) for key, reports in results.items()}
