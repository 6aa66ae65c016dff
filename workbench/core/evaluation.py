"""Accuracy through the artifact that would be deployed, batched with progress and cancel, cached on disk.

The cache key is the evaluated file's sha256 plus the dataset fingerprint: the same bytes on the same data give the
same figures, so re-opening a project or replaying a recipe does not run the model again.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Generator

from .artifact import ModelArtifact
from .data import ArrayData
from .errors import WorkbenchError
from .evaluate import Accuracy, _onnx_runner, _score, _torch_runner
from .progress import CancelToken, Progress


class AccuracyCache:
    """A small JSON file mapping ``sha256:fingerprint`` to measured accuracy; written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict] | None = None

    def _load(self) -> dict[str, dict]:
        if self._entries is None:
            try:
                self._entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._entries = {}  # a missing or damaged cache only costs a re-run
        return self._entries

    def get(self, sha256: str, fingerprint: str) -> Accuracy | None:
        entry = self._load().get(f"{sha256}:{fingerprint}")
        return Accuracy(**entry) if entry else None

    def put(self, sha256: str, fingerprint: str, value: Accuracy) -> None:
        self._load()[f"{sha256}:{fingerprint}"] = asdict(value)
        from .fileio import write_atomic

        write_atomic(self.path, json.dumps(self._entries, indent=1, sort_keys=True))


def evaluate(artifact: ModelArtifact, data: ArrayData, fingerprint: str = "", cache: AccuracyCache | None = None,
             batch: int = 256, threads: int = 1,
             token: CancelToken | None = None) -> Generator[Progress, None, Accuracy]:
    """Top-1/top-5 accuracy and mean cross-entropy of ``artifact`` on ``data``, yielding progress per batch.

    ONNX files run in ONNX Runtime (``threads`` intra-op threads; one gives reproducible timing and figures),
    PyTorch ones in torch. With a ``cache`` and a ``fingerprint`` a known result returns without running.
    """
    if data.y is None:
        raise WorkbenchError(f"the data '{data.name}' has no labels", "add labels (y) to measure accuracy")
    token = token or CancelToken()
    key = artifact.sha256 if cache is not None and fingerprint else ""
    if key:
        known = cache.get(key, fingerprint)
        if known is not None:
            yield Progress(1.0, "accuracy from the cache")
            return known
    yield Progress(0.0, "loading the model for evaluation")
    if artifact.format == "onnx":
        run, runtime = _onnx_runner(artifact, threads), "onnxruntime"
    else:
        run, runtime = _torch_runner(artifact), "torch"
    hits1 = hits5 = 0
    loss = 0.0
    n = len(data)
    done = 0
    for x, y in data.batches(batch):
        token.check()
        a, b, c = _score(run(x), y)
        hits1, hits5, loss = hits1 + a, hits5 + b, loss + c
        done += len(x)
        yield Progress(done / n, f"evaluating {done}/{n}")
    result = Accuracy(hits1 / n, hits5 / n, loss / n, n, data.name, runtime)
    if key:
        cache.put(key, fingerprint, result)
    return result


def cache_for(folder: Path) -> AccuracyCache:
    return AccuracyCache(Path(folder) / "accuracy_cache.json")

