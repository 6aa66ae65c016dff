"""Run an ONNX Runtime session over many rows, whatever batch size the model's input fixes.

Models are often exported with a fixed batch of 1. Evaluation, distillation teachers and export checks feed many
rows at once; here they go in chunks of the fixed size (the last one padded by repeating its final row, and the
padding's outputs dropped), or in chunks of ``batch`` when the batch axis is free.
"""

from __future__ import annotations

import numpy as np

_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def fixed_batch_of(session) -> int | None:
    """The batch size the session's first input fixes, or None when the batch axis is free."""
    shape = session.get_inputs()[0].shape
    return shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None


def run_rows(session, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """The first output (as float32) for every row of ``x``."""
    spec = session.get_inputs()[0]
    x = np.ascontiguousarray(x, dtype=_NUMPY.get(spec.type, np.float32))
    fixed = fixed_batch_of(session)
    step = fixed or max(1, batch)
    rows = []
    for start in range(0, len(x), step):
        chunk = x[start:start + step]
        n = len(chunk)
        if fixed and n < fixed:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        rows.append(np.asarray(session.run(None, {spec.name: chunk})[0])[:n])
    return np.concatenate(rows).astype(np.float32, copy=False)
