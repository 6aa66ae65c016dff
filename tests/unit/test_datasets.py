"""Dataset configs, splits, image folders, plugins, fit checks and previews."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.core import datasets
from workbench.core.data import ArrayData, DataBundle, check_fits, load_data
from workbench.core.datasets import DatasetConfig, PreprocessConfig, SplitConfig, fingerprint, load_dataset, preview
from workbench.core.errors import WorkbenchError


def _write_images(root: Path, classes: dict[str, int], size=(40, 30), mode="RGB") -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / name / f"{i}.png")


def test_config_round_trips_through_a_dict():
    config = DatasetConfig(kind="image_folder", path="imgs", preprocess=PreprocessConfig(resize=32, crop=28,
                           color="grayscale", mean=[0.5], std=[0.25]), splits=SplitConfig(val_fraction=0.3), seed=4)
    assert DatasetConfig.from_dict(config.to_dict()) == config
    assert DatasetConfig.parse("demo").kind == "demo"
    assert DatasetConfig.parse("x.npz").kind == "npz"
    with pytest.raises(WorkbenchError, match="splits.val_fraction"):
        DatasetConfig.from_dict({"kind": "npz", "splits": {"val_fraction": 2}})


def test_stratified_split_is_seeded_and_keeps_class_shares():
    labels = np.array([0] * 80 + [1] * 20)
    config = SplitConfig(val_fraction=0.25)
    train, val = datasets.split_indices(100, labels, config, seed=3)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    assert np.bincount(labels[val]).tolist() == [20, 5]
    again = datasets.split_indices(100, labels, config, seed=3)
    other = datasets.split_indices(100, labels, config, seed=4)
    assert np.array_equal(val, again[1]) and not np.array_equal(np.sort(val), np.sort(other[1]))


def test_npz_kind_splits_and_fingerprints(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((50, 1, 4, 4)).astype(np.float32), y=np.arange(50) % 5)
    config = DatasetConfig(kind="npz", path="d.npz", splits=SplitConfig(val_fraction=0.2, calibration=7))
    bundle = load_dataset(config, tmp_path)
    assert (len(bundle.train), len(bundle.val), len(bundle.calibration)) == (40, 10, 7)
    assert np.bincount(bundle.val.y).tolist() == [2] * 5
    fp = fingerprint(config, tmp_path)
    assert fp == fingerprint(config, tmp_path)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((50, 1, 4, 4)).astype(np.float32), y=np.arange(50) % 5)
    assert fingerprint(config, tmp_path) != fp  # new content, new fingerprint
    assert load_data(str(tmp_path / "d.npz")).train.x.shape == (40, 1, 4, 4)  # the old entry point still works


def test_image_folder_preprocesses_and_previews(tmp_path):
    _write_images(tmp_path / "imgs", {"cat": 6, "dog": 4})
    pre = PreprocessConfig(resize=20, crop=16, color="grayscale", mean=[0.5], std=[0.5])
    config = DatasetConfig(kind="image_folder", path=str(tmp_path / "imgs"), preprocess=pre,
                           splits=SplitConfig(val_fraction=0.5))
    bundle = load_dataset(config)
    assert bundle.train.x.shape[1:] == (1, 16, 16) and bundle.train.x.dtype == np.float32
    assert bundle.num_classes == 2 and np.bincount(bundle.val.y).tolist() == [3, 2]
    assert -1.0 <= bundle.train.x.min() and bundle.train.x.max() <= 1.0  # (x/255 - 0.5) / 0.5
    images = preview(config.model_copy(update={"preprocess": pre.model_copy(update={"color": "rgb"})}), n=3)
    assert len(images) == 3 and all(im.shape == (16, 16, 3) and im.dtype == np.uint8 for im in images)


def test_image_folder_without_pillow_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "a" / "0.png").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(WorkbenchError, match="Pillow"):
        load_dataset(DatasetConfig(kind="image_folder", path=str(tmp_path / "imgs")))


def test_mismatched_sizes_after_preprocessing_are_named(tmp_path):
    _write_images(tmp_path / "imgs" , {"a": 2}, size=(20, 20))
    _write_images(tmp_path / "more", {"b": 2}, size=(30, 20))
    (tmp_path / "more" / "b").rename(tmp_path / "imgs" / "b")
    with pytest.raises(WorkbenchError, match="different sizes"):
        load_dataset(DatasetConfig(kind="image_folder", path=str(tmp_path / "imgs")))


def test_check_fits_names_channels_size_and_labels():
    def bundle(shape, labels):
        data = ArrayData("d", np.zeros(shape, np.float32), np.asarray(labels, np.int64))
        return DataBundle("d", data, data, data)

    with pytest.raises(WorkbenchError, match="shape 3x28x28.*3 channel.*takes 1.*grayscale"):
        check_fits(bundle((2, 3, 28, 28), [0, 1]), (1, 1, 28, 28))
    with pytest.raises(WorkbenchError, match="shape 1x32x32 but the model takes 1x28x28.*resize and crop"):
        check_fits(bundle((2, 1, 32, 32), [0, 1]), (1, 1, 28, 28))
    with pytest.raises(WorkbenchError, match="12 classes.*outputs 10"):
        check_fits(bundle((2, 1, 28, 28), [0, 11]), (1, 1, 28, 28), num_outputs=10)
    check_fits(bundle((2, 1, 28, 28), [0, 9]), (1, 1, 28, 28), num_outputs=10)


class _EntryPoint:
    def __init__(self, name, target):
        self.name, self._target = name, target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_plugins_provide_kinds_and_a_broken_one_is_reported(monkeypatch):
    def synthetic(config: dict) -> DataBundle:
        n = config["options"]["n"]
        data = ArrayData("syn", np.ones((n, 1, 2, 2), np.float32), np.zeros(n, np.int64))
        return DataBundle("syn", data, data, data)

    import importlib.metadata

    eps = [_EntryPoint("synthetic", synthetic), _EntryPoint("broken", ImportError("no module foo"))]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps if group == "workbench.datasets" else [])
    assert len(load_dataset(DatasetConfig(kind="synthetic", options={"n": 5})).train) == 5
    assert "no module foo" in datasets.kinds()["broken"]
    with pytest.raises(WorkbenchError, match="failed to load"):
        load_dataset(DatasetConfig(kind="broken"))
    with pytest.raises(WorkbenchError, match="unknown dataset kind 'nope'"):
        load_dataset(DatasetConfig(kind="nope"))


def test_demo_kind_and_its_preview():
    bundle = load_dataset(DatasetConfig(kind="demo", splits=SplitConfig(calibration=32)))
    assert len(bundle.val) == 1000 and len(bundle.calibration) == 32
    images = preview(DatasetConfig(kind="demo"), n=2)
    assert [im.shape for im in images] == [(28, 28), (28, 28)] and images[0].max() == 255
