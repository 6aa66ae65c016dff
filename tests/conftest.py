"""Shared fixtures: real model files in every supported format, made once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_files import ModelFiles

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def small_cnn(model_dir) -> ModelFiles:
    return ModelFiles("small_cnn", (1, 1, 28, 28), model_dir / "small_cnn")


@pytest.fixture(scope="session")
def mobilenet(model_dir) -> ModelFiles:
    return ModelFiles("mobilenet_v2", (1, 3, 224, 224), model_dir / "mobilenet_v2")
