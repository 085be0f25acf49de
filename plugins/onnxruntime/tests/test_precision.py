"""Reduced precision on the real ONNX Runtime: fp16 graphs, int8 from calibration data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import unirun
from unirun import InputError, OptionsError
from unirun.quantize import Calibration, compute_precision, within_bound
from unirun.testing import conv_net, resnet_like, transformer_block

Array = np.ndarray[Any, Any]


def _images(count: int, size: int = 16, seed: int = 0) -> list[dict[str, Array]]:
    rng = np.random.default_rng(seed)
    return [
        {"image": rng.standard_normal((2, 3, size, size)).astype(np.float32)} for _ in range(count)
    ]


# -- fp16 ---------------------------------------------------------------------------------------


def test_fp16_converts_the_graph_and_keeps_float32_io(caplog: pytest.LogCaptureFixture) -> None:
    model = conv_net(size=16)
    x = _images(1)[0]
    with unirun.load(model, backend="onnxruntime") as fp32:
        want = fp32(x)["logits"]
    with caplog.at_level(logging.WARNING, logger="unirun"):
        half = unirun.load(model, backend="onnxruntime", precision="fp16")
    with half:
        assert [s.dtype for s in (*half.inputs, *half.outputs)] == [unirun.DType.FLOAT32] * 2
        got = half(x)["logits"]
        payload = onnx.load(str(half.artifact.path("model.onnx")))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)
    assert any(t.data_type == TensorProto.FLOAT16 for t in payload.graph.initializer)
    # What ONNX Runtime computes in is read from its own optimized graph, not assumed: CPUs
    # without fp16 kernels get Casts to fp32 around the convolutions.
    engine_says, counts = compute_precision(payload)
    assert half.precision == engine_says
    assert half.artifact.manifest.extra["fp16_heavy_ops"] == counts
    if engine_says == "fp32":
        assert "computes in fp32" in caplog.text
        with pytest.raises(OptionsError, match="strict_precision=True refuses"):
            unirun.load(model, backend="onnxruntime", precision="fp16", strict_precision=True)


def test_fp16_io_on_request() -> None:
    x = _images(1)[0]["image"]
    with unirun.load(
        conv_net(size=16), backend="onnxruntime", precision="fp16", options={"fp16_io": True}
    ) as model:
        assert model.inputs[0].dtype is unirun.DType.FLOAT16
        assert model(x.astype(np.float16))["logits"].dtype == np.float16
        with pytest.raises(InputError, match="astype"):
            model(x)


def test_fp16_keeps_constants_beyond_its_range_exact() -> None:
    """A division by 1e5 would become one by 65504 (the fp16 maximum) if converted."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
            helper.make_node("Div", ["h", "big"], ["y"], name="div"),
        ],
        "scaled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        [
            numpy_helper.from_array(np.eye(8, dtype=np.float32), "w"),
            numpy_helper.from_array(np.array(1e5, np.float32), "big"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32) * 1e3
    with unirun.load(model, backend="onnxruntime", precision="fp16") as half:
        np.testing.assert_allclose(half(x)["y"], x / 1e5, rtol=2e-3)


# -- int8 ---------------------------------------------------------------------------------------


def _cnn() -> Any:
    return resnet_like(width=16, size=16, classes=10)


def _record(model: unirun.Model | unirun.Artifact) -> dict[str, Any]:
    manifest = model.artifact.manifest if isinstance(model, unirun.Model) else model.manifest
    record: dict[str, Any] = manifest.extra["quantization"]
    return record


@pytest.mark.slow
def test_int8_cnn_is_within_the_bound_and_smaller() -> None:
    model, feeds = _cnn(), _images(24)
    with unirun.load(model, backend="onnxruntime", precision="int8", calibration=feeds) as q:
        assert q.precision == "int8" and q.options.precision == "int8"
        record = _record(q)
        got = q(feeds[-1])["logits"]
    assert record["verified"] is True and record["form"] in ("qdq-static", "dynamic")
    static = record["tried"][0]
    assert static["form"] == "qdq-static"  # the declared order; dynamic only if it was slower
    assert within_bound(record["accuracy"]["logits"]), record["accuracy"]
    assert within_bound(static["accuracy"]["logits"]), static["accuracy"]
    assert static["payload_bytes"] < 0.4 * record["fp32_payload_bytes"]
    assert record["parameters"]["reduce_range"] is (record["cpu"]["int8_dot_product"] is not True)
    with unirun.load(model, backend="onnxruntime") as fp32:
        want = fp32(feeds[-1])["logits"]
    cosine = float(np.dot(got.ravel(), want.ravel()) / np.linalg.norm(got) / np.linalg.norm(want))
    assert cosine > 0.999


@pytest.mark.slow
def test_int8_seven_bit_weights_for_cpus_without_vnni() -> None:
    """What an AVX2-only CPU gets, forced here: still within the bound."""
    data = Calibration(tuple(_images(20)), reduce_range=True)
    art = unirun.compile(
        conv_net(size=16), backend="onnxruntime", precision="int8", calibration=data
    )
    record = _record(art)
    static = next(c for c in record["tried"] if c["form"] == "qdq-static")
    assert static["parameters"]["reduce_range"] is True
    assert within_bound(static["accuracy"]["logits"]), static["accuracy"]


@pytest.mark.slow
def test_calibration_directory_and_cache_key(tmp_path: Path, cache_dir: Path) -> None:
    data = tmp_path / "calibration"
    data.mkdir()
    for i, feed in enumerate(_images(16)):
        np.savez(data / f"{i:03d}.npz", **feed)
    model = conv_net(size=16)

    def load() -> unirun.Model:
        return unirun.load(model, backend="onnxruntime", precision="int8", calibration=data)

    with load() as first:
        assert first.cache_status == "miss"
        digest = _record(first)["calibration_sha256"]
    with load() as again:
        assert again.cache_status == "hit" and _record(again)["calibration_sha256"] == digest
    np.savez(data / "003.npz", image=_images(1, seed=9)[0]["image"])  # one sample changes
    with load() as changed:
        assert changed.cache_status == "miss" and _record(changed)["calibration_sha256"] != digest
    assert len(list((cache_dir / "calibration").iterdir())) == 2  # one range cache per data set


def test_bad_calibration_sets_are_refused(tmp_path: Path) -> None:
    model = conv_net(size=16)
    feeds = _images(16)
    feeds[4] = {"image": feeds[4]["image"][:, :, :8]}
    with pytest.raises(InputError, match=r"calibration sample #4: input 'image' expects"):
        unirun.load(model, backend="onnxruntime", precision="int8", calibration=feeds)
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 3, 16, 16), np.float32))
    for i in range(15):
        np.savez(tmp_path / f"b{i:02d}.npz", image=np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(InputError, match=r"calibration sample a\.npz: missing input 'image'"):
        unirun.load(model, backend="onnxruntime", precision="int8", calibration=tmp_path)
    with pytest.raises(InputError, match=r"sample #1: input 'image' expects .*\(4, 3, 16, 16\)"):
        unirun.load(
            model,
            backend="onnxruntime",
            precision="int8",
            shapes={"image": (2, 3, 16, 16)},
            calibration=[feeds[0], {"image": np.zeros((4, 3, 16, 16), np.float32)}, *feeds[2:]],
        )


@pytest.mark.slow
def test_int8_transformer_is_within_the_bound() -> None:
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 16, 64)).astype(np.float32)} for _ in range(20)]
    art = unirun.compile(
        transformer_block(dim=64, heads=4, hidden=128),
        backend="onnxruntime",
        precision="int8",
        calibration=feeds,
    )
    record = _record(art)
    assert within_bound(record["accuracy"]["y"]), record["tried"]
    assert record["tried"][0]["form"] == "qdq-static"
    assert record["tried"][0]["parameters"]["ops"] == ["MatMul", "Gemm"]  # no Softmax/LayerNorm
    for candidate in record["tried"]:
        assert candidate["speed"]["fp32_ms"] > 0 and candidate["speed"]["int8_ms"] > 0
    # static measured slower or less accurate here: dynamic MatMul/Gemm was the next form
    assert [c["form"] for c in record["tried"]] in (["qdq-static"], ["qdq-static", "dynamic"])


@pytest.mark.slow
def test_saved_int8_artifact_loads_and_is_checked_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from unirun.testing import outlier_inputs, outlier_mlp

    with caplog.at_level(logging.WARNING, logger="unirun"):
        art = unirun.compile(
            outlier_mlp(), backend="onnxruntime", precision="int8", calibration=outlier_inputs(16)
        )
    saved = art.save(tmp_path / "q.unirun")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="unirun"), unirun.load(saved) as model:
        assert model.precision == "int8"
        model(outlier_inputs(1)[0])
    assert "fails the int8 checks" in caplog.text
    with pytest.raises(OptionsError, match="strict_precision=True refuses it"):
        unirun.load(saved, strict_precision=True)
