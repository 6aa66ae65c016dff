"""Data for calibration, fine-tuning and evaluation: the bundled demo digits or an ``.npz`` of arrays.

Arrays are model-ready float32 (N, …) matching the model input; labels are int64. Issue 5 adds image folders,
preprocessing dialogs and dataset plugins on top of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import WorkbenchError


@dataclass
class ArrayData:
    """Inputs ``x`` (float32, model layout) and optional labels ``y`` (int64)."""

    name: str
    x: np.ndarray
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def take(self, n: int) -> "ArrayData":
        return ArrayData(self.name, self.x[:n], None if self.y is None else self.y[:n])

    def batches(self, size: int):
        for i in range(0, len(self.x), size):
            yield self.x[i:i + size], None if self.y is None else self.y[i:i + size]


@dataclass
class DataBundle:
    """Train, validation and calibration splits of one source."""

    name: str
    train: ArrayData
    val: ArrayData
    calibration: ArrayData

    @property
    def num_classes(self) -> int | None:
        labels = [d.y for d in (self.train, self.val) if d.y is not None]
        return int(max(int(y.max()) for y in labels) + 1) if labels else None


def demo_data(calibration: int = 256) -> DataBundle:
    """The bundled MNIST digits, normalised as the demo model was trained (see architectures.DEMO_MEAN)."""
    from .architectures import DEMO_MEAN, DEMO_STD
    from .demo import demo_dir

    raw = np.load(demo_dir() / "digits.npz")

    def prep(x):
        return ((x.astype(np.float32) / 255.0 - DEMO_MEAN) / DEMO_STD)[:, None, :, :]

    train = ArrayData("demo/train", prep(raw["x_train"]), raw["y_train"].astype(np.int64))
    val = ArrayData("demo/val", prep(raw["x_val"]), raw["y_val"].astype(np.int64))
    return DataBundle("demo", train, val, train.take(calibration))


def load_data(spec: str, calibration: int = 256, seed: int = 0) -> DataBundle:
    """``demo`` or a path to an ``.npz`` with ``x`` (and optionally ``y``); a 80/20 train/validation split."""
    if spec == "demo":
        return demo_data(calibration)
    path = Path(spec)
    x, y = read_npz(path)
    order = np.random.default_rng(seed).permutation(len(x))
    x = x[order].astype(np.float32)
    y = None if y is None else y[order].astype(np.int64)
    cut = max(1, int(0.8 * len(x))) if len(x) > 1 else 1
    train = ArrayData(f"{path.name}/train", x[:cut], None if y is None else y[:cut])
    val = ArrayData(f"{path.name}/val", x[cut:] if len(x) > 1 else x, None if y is None else (y[cut:] if len(x) > 1
                                                                                              else y))
    return DataBundle(path.name, train, val, train.take(calibration))


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Arrays ``x`` (N, …) and optional labels ``y`` from an ``.npz``, checked; WorkbenchError when unusable."""
    if not path.is_file():
        raise WorkbenchError("no such data file", "pass --data demo or an .npz file with an array x", path)
    try:
        arrays = np.load(path, allow_pickle=False)
        x = arrays["x"]
        y = arrays["y"] if "y" in arrays.files else None
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"not a readable .npz file ({exc})", "save it with numpy.savez(path, x=..., y=...)",
                             path) from None
    except KeyError:
        raise WorkbenchError("the .npz file has no array named x", "save the inputs as x (and labels as y)",
                             path) from None
    if x.ndim < 2 or len(x) == 0:
        raise WorkbenchError(f"x has shape {x.shape}; it needs a sample axis first", "save x as (N, …)", path)
    if y is not None and len(y) != len(x):
        raise WorkbenchError(f"x has {len(x)} samples but y has {len(y)}", "save one label per sample", path)
    return x, y


def check_fits(data: DataBundle, input_shape: tuple[int, ...], source: str = "",
               num_outputs: int | None = None) -> None:
    """Raise WorkbenchError when the samples do not fit the model: shape (channels, size) or label count."""
    want = tuple(input_shape[1:])
    got = tuple(data.train.x.shape[1:])
    if want != got:
        shown = "x".join(map(str, want))
        problem = f"the data '{data.name}' has samples of shape {'x'.join(map(str, got))} but the model takes {shown}"
        remedy = f"provide inputs of shape N x {shown}"
        if len(want) == len(got) == 3 and want[1:] == got[1:]:
            problem += f" ({got[0]} channel(s) where the model takes {want[0]})"
            remedy = "set the dataset's colour to " + ("grayscale" if want[0] == 1 else "rgb") if want[0] in (1, 3) \
                else f"provide {want[0]}-channel inputs"
        elif len(want) == len(got) == 3 and want[0] == got[0]:
            remedy = f"set the dataset's resize and crop to give {want[1]}x{want[2]} images"
        raise WorkbenchError(problem, remedy, source or None)
    classes = data.num_classes
    if num_outputs is not None and classes is not None and classes > num_outputs:
        raise WorkbenchError(f"the data '{data.name}' has labels up to {classes - 1} ({classes} classes) but the "
                             f"model outputs {num_outputs} scores", "use data with labels 0 … "
                             f"{num_outputs - 1}, or a model with {classes} outputs", source or None)


def check_training_data(data: DataBundle | None, input_shape: tuple[int, ...], method_id: str) -> DataBundle:
    """The checks every training method needs: data given, labelled, fitting the model, at least two samples."""
    if data is None:
        raise WorkbenchError(f"{method_id} needs training data", "pass --data demo or an .npz with x and y")
    if data.train.y is None:
        raise WorkbenchError(f"{method_id} needs labels: the data '{data.name}' has none",
                             "save the labels as y next to x in the .npz")
    check_fits(data, input_shape)
    if len(data.train) < 2:
        raise WorkbenchError(f"the data '{data.name}' has {len(data.train)} training sample(s)",
                             "provide at least a batch of labelled samples")
    return data
