"""What users rely on through the facade, on the real ONNX Runtime: input forms, typed input
errors, cache hits and rebuilds, artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import unirun
from unirun import ArtifactError, InputError
from unirun.testing import conv_net, multi_io


def _image(batch: int = 2, size: int = 16, dtype: Any = np.float32) -> np.ndarray[Any, Any]:
    return np.random.default_rng(7).standard_normal((batch, 3, size, size)).astype(dtype)


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "cnn.onnx"
    onnx.save(conv_net(size=16), str(path))
    return path


@pytest.fixture
def cnn(cnn_file: Path) -> Any:
    with unirun.load(cnn_file, backend="onnxruntime") as model:
        yield model


def test_three_input_forms(cnn: unirun.Model, cnn_file: Path) -> None:
    x = _image()
    native = ort.InferenceSession(str(cnn_file), providers=["CPUExecutionProvider"])
    expected = native.run(None, {"image": x})[0]
    for form in ({"image": x}, [x], x):
        np.testing.assert_array_equal(cnn(form)["logits"], expected)


def test_multi_input_sequence_follows_declared_order() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    mask = np.array([[True, False, True], [False, True, False]])
    with unirun.load(multi_io(), backend="onnxruntime") as model:
        by_name = model({"mask": mask, "x": x})
        positional = model((x, mask))
    assert by_name["total"] == positional["total"] == pytest.approx(0 + 2 + 4)
    np.testing.assert_array_equal(by_name["flag"], ~mask)


@pytest.mark.parametrize(
    ("feeds", "match"),
    [
        ({}, r"missing input 'image'"),
        ({"image": _image(), "label": _image()}, r"unknown input name\(s\) 'label'"),
        ({"image": _image()[0]}, r"got rank 3"),
        ({"image": _image(size=16)[:, :2]}, r"expects float32\[N, 3, 16, 16\], got shape \(2, 2,"),
        ({"image": _image(dtype=np.int32)}, r"got dtype int32; convert it with \.astype"),
    ],
)
def test_bad_feeds_never_reach_onnxruntime(
    cnn: unirun.Model, feeds: dict[str, Any], match: str
) -> None:
    with pytest.raises(InputError, match=match) as info:
        cnn(feeds)
    assert info.value.__cause__ is None  # refused by unirun, not translated from an engine error


def test_cache_hit_then_rebuild_after_corruption(cnn_file: Path, cache_dir: Path) -> None:
    with unirun.load(cnn_file, backend="onnxruntime") as first:
        assert first.cache_status == "miss"
        expected = first(_image())["logits"]
        entry = first.artifact.directory
    with unirun.load(cnn_file, backend="onnxruntime") as second:
        assert second.cache_status == "hit"
    payload = entry / "model.onnx"
    payload.write_bytes(payload.read_bytes()[: payload.stat().st_size // 2])
    with unirun.load(cnn_file, backend="onnxruntime") as third:
        assert third.cache_status == "rebuilt"
        np.testing.assert_array_equal(third(_image())["logits"], expected)


def test_artifact_manifest_records_the_engine(cnn_file: Path, tmp_path: Path) -> None:
    saved = unirun.compile(cnn_file, backend="onnxruntime").save(tmp_path / "cnn.unirun")
    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backend"] == "onnxruntime"
    assert manifest["runtime_version"] == ort.__version__
    assert manifest["device"] == "cpu"
    assert manifest["extra"]["providers"] == ["CPUExecutionProvider"]
    with unirun.load(saved) as model:
        assert model.cache_status == "artifact"
    (saved / "model.onnx").write_bytes(b"\x00" * 64)
    with pytest.raises(ArtifactError, match="does not match its checksum"):
        unirun.load(saved)
