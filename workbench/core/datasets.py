"""Datasets for calibration, fine-tuning and evaluation, described by a serialisable :class:`DatasetConfig`.

Built-in kinds: ``demo`` (the bundled digits, with their fixed train/validation split), ``npz`` (arrays ``x`` and
optionally ``y``, already model-ready) and ``image_folder`` (one sub-folder per class, preprocessed here). More kinds
come from plugins under the entry-point group ``workbench.datasets``: a plugin is a callable taking the config as a
dict and returning a :class:`~workbench.core.data.DataBundle`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Generator, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .data import ArrayData, DataBundle, demo_data, read_npz
from .errors import WorkbenchError, first_problem
from .progress import CancelToken, Progress

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.datasets"
BUILT_IN = {"demo": "the bundled MNIST digits", "npz": ".npz arrays x (and labels y), model-ready",
            "image_folder": "a folder with one sub-folder of images per class"}


class PreprocessConfig(BaseModel):
    """How image files become model inputs: resize the shorter side, center-crop, colour, scale, normalise."""

    model_config = ConfigDict(extra="forbid")

    resize: int | None = Field(None, ge=1, description="resize so the shorter side has this many pixels")
    crop: int | None = Field(None, ge=1, description="center-crop to a square of this many pixels")
    color: Literal["grayscale", "rgb"] = Field("rgb", description="channels: grayscale (1) or rgb (3)")
    scale: float = Field(1 / 255, gt=0, description="pixel values are multiplied by this first")
    mean: list[float] = Field(default_factory=lambda: [0.0], description="subtracted per channel (one or C values)")
    std: list[float] = Field(default_factory=lambda: [1.0], description="divided per channel (one or C values)")


class SplitConfig(BaseModel):
    """Train / validation / calibration split: seeded, stratified by label where labels exist."""

    model_config = ConfigDict(extra="forbid")

    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of the samples kept for validation")
    calibration: int = Field(256, ge=1, description="calibration samples, taken from the training split")
    stratify: bool = Field(True, description="keep each class's share the same in both splits")


class DatasetConfig(BaseModel):
    """What data a project or recipe uses; ``to_dict`` / ``from_dict`` round-trip it through JSON and YAML."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field("demo", description="demo, npz, image_folder, or a kind a plugin provides")
    path: str | None = Field(None, description="file or folder; relative paths start at the project/recipe folder")
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig, description="image preprocessing")
    splits: SplitConfig = Field(default_factory=SplitConfig, description="how samples are split")
    seed: int = Field(0, ge=0, description="seeds the split")
    options: dict[str, Any] = Field(default_factory=dict, description="settings for a plugin's dataset kind")

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def describe(self) -> str:
        """In a few words, for labels: ``demo digits``, ``npz: data.npz``, ``image_folder: flowers``."""
        if self.kind == "demo":
            return "demo digits"
        return f"{self.kind}: {Path(self.path).name}" if self.path else self.kind

    @classmethod
    def from_dict(cls, values: dict) -> "DatasetConfig":
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            where, what = first_problem(exc, "dataset")
            raise WorkbenchError(f"dataset {where}: {what}",
                                 "see docs/recipes.md for the dataset fields") from None

    @classmethod
    def parse(cls, value: "str | dict | DatasetConfig") -> "DatasetConfig":
        """``demo``, a path (``.npz`` file or image folder), a dict, or a config."""
        if isinstance(value, DatasetConfig):
            return value
        if isinstance(value, dict):
            return cls.from_dict(value)
        if value == "demo":
            return cls(kind="demo")
        return cls(kind="npz" if str(value).endswith(".npz") else "image_folder", path=str(value))

    def resolve(self, base_dir: Path | None = None) -> Path:
        if not self.path:
            raise WorkbenchError(f"a {self.kind} dataset needs a path", "set the dataset's path")
        path = Path(self.path).expanduser()
        return path if path.is_absolute() or base_dir is None else Path(base_dir) / path


# ---- plugins -------------------------------------------------------------------------------------------------
def plugins() -> dict[str, Callable[[dict], DataBundle] | str]:
    """Dataset kinds from entry points: name -> loader, or name -> the error that stopped it loading."""
    from importlib.metadata import entry_points

    found: dict[str, Callable[[dict], DataBundle] | str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loader = ep.load()
            if not callable(loader):
                raise TypeError("not callable")
            found[ep.name] = loader
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the others
            found[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("dataset plugin %s failed to load: %s", ep.name, found[ep.name])
    return found


def kinds() -> dict[str, str]:
    """Every dataset kind with a description (or why its plugin failed)."""
    out = dict(BUILT_IN)
    for name, loader in plugins().items():
        out.setdefault(name, f"plugin failed: {loader}" if isinstance(loader, str) else "plugin")
    return out


# ---- splits --------------------------------------------------------------------------------------------------
def split_indices(n: int, labels: np.ndarray | None, splits: SplitConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, validation) indices; per class when stratifying so each class keeps its share."""
    rng = np.random.default_rng(seed)
    if n < 2:
        everything = np.arange(n)
        return everything, everything
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if (labels is not None and splits.stratify) \
        else [np.arange(n)]
    train, val = [], []
    for group in groups:
        group = rng.permutation(group)
        # At least one sample of a class on each side where the class has two or more.
        k = min(max(int(round(splits.val_fraction * len(group))), 1), len(group) - 1)
        val.append(group[:k])
        train.append(group[k:])
    train_idx, val_idx = np.concatenate(train), np.concatenate(val)
    if len(val_idx) == 0:  # every class had one sample: still hold one out
        val_idx, train_idx = train_idx[:1], train_idx[1:]
    return rng.permutation(train_idx), rng.permutation(val_idx)


def split_arrays(name: str, x: np.ndarray, y: np.ndarray | None, config: DatasetConfig) -> DataBundle:
    train_idx, val_idx = split_indices(len(x), y, config.splits, config.seed)
    train = ArrayData(f"{name}/train", x[train_idx], None if y is None else y[train_idx])
    val = ArrayData(f"{name}/val", x[val_idx], None if y is None else y[val_idx])
    return DataBundle(name, train, val, train.take(config.splits.calibration))


# ---- loading -------------------------------------------------------------------------------------------------
def iter_load(config: DatasetConfig, base_dir: Path | None = None,
              token: CancelToken | None = None) -> Generator[Progress, None, DataBundle]:
    """Load and split the data, yielding progress (image folders decode one file at a time)."""
    token = token or CancelToken()
    if config.kind == "demo":
        yield Progress(None, "loading the demo digits")
        return demo_data(config.splits.calibration)
    if config.kind == "npz":
        path = config.resolve(base_dir)
        yield Progress(None, f"reading {path.name}")
        x, y = read_npz(path)
        return split_arrays(path.name, x.astype(np.float32), None if y is None else y.astype(np.int64), config)
    if config.kind == "image_folder":
        from .image_folder import load_image, scan

        folder = config.resolve(base_dir)
        files, labels, _ = scan(folder)
        images = []
        for i, file in enumerate(files):
            token.check()
            if i % 64 == 0:
                yield Progress(i / len(files), f"reading images {i}/{len(files)}")
            images.append(load_image(file, config.preprocess))
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise WorkbenchError(f"the images have {len(shapes)} different sizes after preprocessing",
                                 "set preprocess resize and crop so every image ends the same size", folder)
        return split_arrays(folder.name, np.stack(images), labels, config)
    loader = plugins().get(config.kind)
    if loader is None:
        raise WorkbenchError(f"unknown dataset kind '{config.kind}'", f"use one of: {', '.join(kinds())}")
    if isinstance(loader, str):
        raise WorkbenchError(f"the dataset plugin '{config.kind}' failed to load ({loader})",
                             "reinstall the plugin that provides it")
    yield Progress(None, f"loading {config.kind} data")
    bundle = loader(config.to_dict())
    if not isinstance(bundle, DataBundle):
        raise WorkbenchError(f"the dataset plugin '{config.kind}' returned {type(bundle).__name__}, not a DataBundle",
                             "fix the plugin")
    return bundle


def load_dataset(config: DatasetConfig, base_dir: Path | None = None, token: CancelToken | None = None) -> DataBundle:
    from .methods import run_to_end

    return run_to_end(iter_load(config, base_dir, token))


def fingerprint(config: DatasetConfig, base_dir: Path | None = None) -> str:
    """A short hash of the config and the data it reads: files by content (demo, npz) or by name, size and mtime
    (image folders, where hashing every image would cost more than it saves)."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    if config.kind == "demo":
        from .demo import demo_dir

        digest.update(_file_hash(demo_dir() / "digits.npz").encode())
    elif config.kind == "npz":
        digest.update(_file_hash(config.resolve(base_dir)).encode())
    elif config.kind == "image_folder":
        from .image_folder import scan

        folder = config.resolve(base_dir)
        for file in scan(folder)[0]:
            stat = file.stat()
            digest.update(f"{file.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _file_hash(path: Path) -> str:
    if not path.is_file():
        raise WorkbenchError("the data file does not exist", "fix the dataset path", path)
    from .modelspec import file_sha256

    return file_sha256(path)


def preview(config: DatasetConfig, n: int = 8, base_dir: Path | None = None) -> list[np.ndarray]:
    """Up to ``n`` preprocessed validation samples as uint8 images (H x W, or H x W x 3) for a preview."""
    if config.kind == "image_folder":
        from .image_folder import load_image, scan

        files = scan(config.resolve(base_dir))[0]
        picks = np.random.default_rng(config.seed).permutation(len(files))[:n]
        samples = [load_image(files[i], config.preprocess) for i in sorted(picks)]
    else:
        samples = list(load_dataset(config, base_dir).val.x[:n])
    return [to_uint8(s) for s in samples]


def to_uint8(sample: np.ndarray) -> np.ndarray:
    """A (C, H, W) float sample stretched to 0..255 for display (normalisation makes absolute values moot)."""
    x = np.asarray(sample, dtype=np.float32)
    lo, hi = float(x.min()), float(x.max())
    scaled = np.zeros_like(x) if hi <= lo else (x - lo) / (hi - lo) * 255.0
    image = np.rint(scaled).astype(np.uint8)
    if image.ndim == 3:
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    return image
