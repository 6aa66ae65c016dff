"""Accuracy of an artifact on labelled data: ONNX through ONNX Runtime (what would be deployed), PyTorch directly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .artifact import ModelArtifact
from .data import ArrayData
from .ort_rows import run_rows
from .progress import CancelToken


@dataclass
class Accuracy:
    """Measured top-1/top-5 accuracy (fractions) and mean cross-entropy on ``samples`` examples of ``data``."""

    top1: float
    top5: float
    loss: float
    samples: int
    data: str
    runtime: str

    def points(self) -> float:
        return 100.0 * self.top1


def _score(logits: np.ndarray, labels: np.ndarray) -> tuple[int, int, float]:
    top1 = int((logits.argmax(1) == labels).sum())
    k = min(5, logits.shape[1])
    top5 = int((np.argsort(-logits, axis=1)[:, :k] == labels[:, None]).any(1).sum())
    shifted = logits - logits.max(1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    loss = float(-logp[np.arange(len(labels)), labels].sum())
    return top1, top5, loss


def accuracy(artifact: ModelArtifact, data: ArrayData, batch: int = 256, threads: int = 0,
             token: CancelToken | None = None) -> Accuracy:
    """Run the artifact over ``data`` in batches and score its predictions against the labels (no cache, no
    progress: :func:`workbench.core.evaluation.evaluate` is the generator behind it)."""
    from .evaluation import evaluate

    steps = evaluate(artifact, data, batch=batch, threads=threads, token=token)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _onnx_runner(artifact: ModelArtifact, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
    return lambda x: run_rows(session, x, batch=len(x))  # a model with a fixed batch (often 1) gets chunks of it


def _torch_runner(artifact: ModelArtifact):
    import torch

    module = artifact.load_torch()

    def run(x):
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    return run
