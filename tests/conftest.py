from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from unirun.testing import conv_net, embedding_model, multi_io


@pytest.fixture
def cnn_path(tmp_path: Path) -> Path:
    path = tmp_path / "cnn.onnx"
    onnx.save(conv_net(size=8), str(path))
    return path


@pytest.fixture
def embedding_path(tmp_path: Path) -> Path:
    path = tmp_path / "embedding.onnx"
    onnx.save(embedding_model(), str(path))
    return path


@pytest.fixture
def multi_path(tmp_path: Path) -> Path:
    path = tmp_path / "multi.onnx"
    onnx.save(multi_io(), str(path))
    return path
