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


@pytest.fixture(scope="module")
def one_thread():
    """Training on the shared 2-core machine: one intra-op thread is steadier than two competing ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def demo_setup():
    """The bundled demo opened once: (LayerGraph, ModelArtifact, DataBundle)."""
    from workbench.core.artifact import ModelArtifact
    from workbench.core.data import demo_data
    from workbench.core.demo import demo_request
    from workbench.core.readers import open_model

    graph = open_model(demo_request())
    return graph, ModelArtifact.from_graph(graph), demo_data()
