"""Image folders (one sub-folder per class) read with Pillow and preprocessed into model-ready arrays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import WorkbenchError

if TYPE_CHECKING:
    from .datasets import PreprocessConfig

SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def pillow():
    """The PIL.Image module, or a WorkbenchError saying how to get it."""
    try:
        from PIL import Image
    except ImportError:
        raise WorkbenchError("image folders need Pillow, which is not installed",
                             "install it with `pip install pillow`, or convert the images to an .npz") from None
    return Image


def scan(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image files, their class indices and the class names (sub-folder names, sorted)."""
    if not folder.is_dir():
        raise WorkbenchError("the image folder does not exist", "pick a folder with one sub-folder per class", folder)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        files += found
        labels += [index] * len(found)
    if not files:
        raise WorkbenchError("the folder holds no images in class sub-folders",
                             "put the images of each class in a sub-folder named after the class", folder)
    return files, np.asarray(labels, dtype=np.int64), classes


def load_image(path: Path, pre: "PreprocessConfig") -> np.ndarray:
    """One image as float32 (channels, height, width): resize, center-crop, colour, scale, normalise."""
    Image = pillow()
    try:
        with Image.open(path) as img:
            img = img.convert("L" if pre.color == "grayscale" else "RGB")
            if pre.resize:
                w, h = img.size
                k = pre.resize / min(w, h)
                img = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.BILINEAR)
            if pre.crop:
                w, h = img.size
                left, top = (w - pre.crop) // 2, (h - pre.crop) // 2
                img = img.crop((left, top, left + pre.crop, top + pre.crop))
            array = np.asarray(img, dtype=np.float32)
    except OSError as exc:
        raise WorkbenchError(f"cannot read the image ({exc})", "remove or replace the file", path) from None
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return normalise(array * pre.scale, pre)


def normalise(x: np.ndarray, pre: "PreprocessConfig") -> np.ndarray:
    """(x - mean) / std per channel (channel axis first); one value applies to every channel."""
    mean, std = _per_channel(pre.mean, x.shape[0]), _per_channel(pre.std, x.shape[0])
    return ((x - mean) / std).astype(np.float32)


def _per_channel(values: list[float], channels: int) -> np.ndarray:
    if len(values) not in (1, channels):
        raise WorkbenchError(f"{len(values)} mean/std values for {channels} channel(s)",
                             "give one value, or one per channel")
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)
